"""Tushare's own exports, as the API returns them, read into the canonical frames (docs/INTERFACES.md).

Tables: ``daily`` (vol in lots, amount in thousands of CNY), ``adj_factor``, ``daily_basic`` (float_share in
10,000 shares), ``stock_basic``, ``index_member_all`` and ``namechange``; ``trade_cal`` is the calendar file
session_calendar reads. Each export is checked in its own terms (file, column, row); the joined result
then passes the same checks as canonical input files, against the export's own file and row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from factor_pipeline.market.input_files import (
    PRICE_COLUMNS,
    InputValidationError,
    MarketFrames,
    _Checker,
    _normalise_columns,
    _parse_codes,
    _parse_dates,
    _parse_numeric,
    _read_table,
    _require_columns,
    _validate_daily,
    _validate_stocks,
)
from factor_pipeline.market import session_calendar
from factor_pipeline.market.tushare import industry, units

TABLES = ("daily", "adj_factor", "daily_basic", "stock_basic", "index_member_all", "namechange")
REQUIRED_TABLES = ("daily", "stock_basic", "index_member_all")
DAILY_REQUIRED = ("ts_code", "trade_date", *PRICE_COLUMNS, "vol", "amount")


def locate_exports(directory: Path) -> dict[str, Path] | None:
    """{table: path} when ``directory`` holds Tushare exports (a stock_basic file); None when it does not."""
    files = sorted(p for p in Path(directory).iterdir() if p.is_file())
    by_table: dict[str, list[Path]] = {}
    for path in files:
        stem, suffix = path.name.lower().rsplit(".", 1) if "." in path.name else (path.name.lower(), "")
        if suffix in ("csv", "parquet") and stem in TABLES + ("stocks",):
            by_table.setdefault(stem, []).append(path)
    if "stock_basic" not in by_table:
        return None
    if "stocks" in by_table:
        names = " and ".join(p.name for p in by_table["stocks"] + by_table["stock_basic"])
        raise InputValidationError(names, None, None, None, f"both are present in {directory}: a directory holds "
                                   "either canonical files (stocks, daily) or Tushare exports (stock_basic, daily, ...)")
    for table, paths in by_table.items():
        if len(paths) > 1:
            raise InputValidationError(" and ".join(p.name for p in paths), None, None, None,
                                       f"both are present in {directory}: keep exactly one file per table")
    missing = [t for t in REQUIRED_TABLES if t not in by_table]
    if missing:
        listing = ", ".join(p.name for p in files)
        raise InputValidationError(f"{missing[0]}.csv or {missing[0]}.parquet", None, None, None,
                                   f"no {missing[0]} export in {directory}, which holds Tushare exports ({listing})")
    return {table: paths[0] for table, paths in by_table.items()}


def read_exports(files: dict[str, Path], calendar: session_calendar.SessionCalendar | None = None) -> MarketFrames:
    tables = {table: _read_table(path) for table, path in files.items()}
    return convert(tables, {table: path.name for table, path in files.items()}, calendar)


def _keyed(chk: _Checker) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ts_code (object) and trade_date (datetime64[ns]) per row, for joining."""
    code_idx, code_uniques = _parse_codes(chk, chk.raw["ts_code"])
    return code_uniques[code_idx], _parse_dates(chk, "trade_date", required=True)


def _per_bar(table: str, file: str, raw: pd.DataFrame, column: str, keys: pd.MultiIndex) -> tuple[np.ndarray, np.ndarray]:
    """``column`` of a (ts_code, trade_date) export aligned to the daily bars' keys: values, and found."""
    raw = raw.reset_index(drop=True)
    chk = _Checker(file, raw, ("ts_code", "trade_date"))
    _require_columns(chk, ("ts_code", "trade_date", column))
    codes, dates = _keyed(chk)
    values = _parse_numeric(chk, column, required=table == "adj_factor")
    if table == "adj_factor":
        chk.check(column, ~(values > 0), lambda p: (values[p], f"adj_factor {values[p]} is not positive"))
    else:
        chk.check(column, values < 0, lambda p: (values[p], f"{column} {values[p]} is negative"))
    own = pd.MultiIndex.from_arrays([codes, dates])
    duplicated = own.duplicated()
    chk.check("trade_date", duplicated, lambda p: (raw["trade_date"].iloc[p],
              f"duplicate (ts_code, trade_date) ({codes[p]}, {pd.Timestamp(dates[p]).date()})"))
    position = own.get_indexer(keys)
    found = position >= 0
    return np.where(found, values[np.maximum(position, 0)], np.nan), found


def convert(
    tables: dict[str, pd.DataFrame], labels: dict[str, str], calendar: session_calendar.SessionCalendar | None = None
) -> MarketFrames:
    """Canonical (daily, stocks) from the raw export tables; ``labels`` name each table's file in errors; the bars
    are checked against ``calendar`` (input_files' rule when None)."""
    tables = {t: _normalise_columns(df, labels[t]) for t, df in tables.items()}
    members = industry.parse_memberships(labels["index_member_all"], tables["index_member_all"])

    basic = tables["stock_basic"].reset_index(drop=True)
    chk = _Checker(labels["stock_basic"], basic, ("ts_code",))
    _require_columns(chk, ("ts_code", "name", "list_date"))
    code_idx, code_uniques = _parse_codes(chk, basic["ts_code"])
    stock_codes = code_uniques[code_idx]
    current = pd.Series(stock_codes, dtype=object).map(industry.current_industry(members))
    if current.isna().any():
        row = int(np.flatnonzero(current.isna().to_numpy())[0])
        raise industry.missing_membership_error(labels["index_member_all"], labels["stock_basic"], row, stock_codes[row])
    # Tushare's own industry column is its classification, not Shenwan's: replaced.
    stocks_raw = basic.drop(columns=["industry"], errors="ignore").assign(industry=current.to_numpy(dtype=object))
    stocks = _validate_stocks(labels["stock_basic"], stocks_raw)

    daily = tables["daily"].reset_index(drop=True)
    file = labels["daily"]
    chk = _Checker(file, daily, ("ts_code", "trade_date"))
    if "volume" in daily.columns and "vol" not in daily.columns:
        raise InputValidationError(file, "vol", None, None, "has 'volume' but not Tushare's 'vol' (lots of 100 shares): "
                                   "beside stock_basic, daily is read as a Tushare export")
    _require_columns(chk, DAILY_REQUIRED)
    codes, dates = _keyed(chk)
    vol = _parse_numeric(chk, "vol", required=True)
    amount = _parse_numeric(chk, "amount", required=True)
    for column, values in (("vol", vol), ("amount", amount)):
        chk.check(column, values < 0, lambda p, c=column, v=values: (v[p], f"{c} {v[p]} is negative"))
    keys = pd.MultiIndex.from_arrays([codes, dates])
    canonical = daily[["ts_code", "trade_date", *PRICE_COLUMNS]].assign(
        volume=units.shares_from_lots(vol), amount=units.cny_from_thousands(amount)
    )
    if "adj_factor" in tables:
        adj, found = _per_bar("adj_factor", labels["adj_factor"], tables["adj_factor"], "adj_factor", keys)
        chk.check("adj_factor", ~found, lambda p: (None, f"no row in {labels['adj_factor']} for this stock-day"))
        canonical["adj_factor"] = adj
    if "daily_basic" in tables:
        float_share, _ = _per_bar("daily_basic", labels["daily_basic"], tables["daily_basic"], "float_share", keys)
        canonical["float_shares"] = units.shares_from_ten_thousands(float_share)
    if "namechange" in tables:
        periods = industry.parse_name_periods(labels["namechange"], tables["namechange"])
        canonical["is_st"] = industry.st_on(periods, codes, dates)
    on_day = industry.industry_on(members, codes, dates)
    missing = pd.isna(on_day)
    chk.check("ts_code", missing, lambda p: (codes[p], f"{codes[p]} has no membership in {labels['index_member_all']}"))
    canonical["industry"] = on_day
    return MarketFrames(_validate_daily(file, canonical, stocks, labels["stock_basic"], calendar), stocks, None)

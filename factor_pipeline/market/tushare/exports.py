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
    ISSUE_COLUMNS,
    PRICE_COLUMNS,
    InputValidationError,
    MarketFrames,
    _Checker,
    _date_text,
    _fmt_number,
    _is_missing,
    _show_raw,
    empty_issues,
    is_code,
    _normalise_columns,
    _parse_codes,
    _parse_dates,
    _parse_numeric,
    _parse_one_date,
    _read_table,
    _require_columns,
    _validate_daily,
    _validate_stocks,
)
from factor_pipeline.market import session_calendar
from factor_pipeline.market.trading_rules import UNCLASSIFIED
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


class _Issues:
    """The irregular rows a conversion set right, as ISSUE_COLUMNS rows; never raised, always counted. An issue of
    a snapshot (stock_basic, memberships, name changes) holds for every month: its month is None."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, month: str | None, source: str, kind: str, ts_code, detail: str) -> None:
        code = None if _is_missing(ts_code) else _show_raw(ts_code).upper()
        self.rows.append({"month": month, "source": source, "kind": kind, "ts_code": code, "detail": detail})

    def frame(self) -> pd.DataFrame:
        if not self.rows:
            return empty_issues()
        frame = pd.DataFrame(self.rows, columns=list(ISSUE_COLUMNS))
        return frame.sort_values(["month", "source", "kind", "ts_code", "detail"], kind="stable", na_position="first").reset_index(drop=True)

    def drop(self, label: str, raw: pd.DataFrame, bad: np.ndarray, kind: str, detail) -> pd.DataFrame:
        """``raw`` without the rows of ``bad``, each recorded; ``detail(pos)`` says why."""
        for pos in np.flatnonzero(bad):
            row = raw.iloc[pos]
            day = row.get("trade_date")
            parsed = None if _is_missing(day) else _parse_one_date(_date_text(day))
            month = None if parsed is None else parsed.strftime("%Y-%m")
            self.add(month, label, kind, row.get("ts_code"), f"row {pos}: {detail(pos)}; dropped")
        return raw.loc[~np.asarray(bad, dtype=bool)].reset_index(drop=True)


def _without_duplicates(issues: _Issues, label: str, raw: pd.DataFrame) -> pd.DataFrame:
    """Rows repeated exactly (a page fetched twice) dropped; differing rows with one key stay for the checks."""
    repeated = raw.duplicated().to_numpy()
    return issues.drop(label, raw, repeated, "duplicate_row",
                       lambda p: "an exact repeat of an earlier row") if repeated.any() else raw


def _codes_where(raw: pd.DataFrame, keep) -> np.ndarray:
    """``keep(code)`` per row, asked once per distinct code (a day table holds millions of rows); empty codes are
    kept for the strict parsers to name."""
    index, uniques = pd.factorize(raw["ts_code"], use_na_sentinel=True)
    kept = np.array([keep(u) for u in uniques] + [True], dtype=bool)
    return kept[index]


def _without_malformed_codes(issues: _Issues, label: str, raw: pd.DataFrame) -> pd.DataFrame:
    if "ts_code" not in raw.columns:
        return raw
    malformed = ~_codes_where(raw, is_code)
    return issues.drop(label, raw, malformed, "malformed_code",
                       lambda p: f"{_show_raw(raw['ts_code'].iloc[p])!r} is not an A-share code") if malformed.any() else raw


def _without_unlisted(issues: _Issues, label: str, raw: pd.DataFrame, listed: set[str], kind: str) -> pd.DataFrame:
    """Rows of an interval table (memberships, name changes) whose code is not a stock of stock_basic."""
    if "ts_code" not in raw.columns:
        return raw
    unknown = ~_codes_where(raw, lambda code: _show_raw(code).upper() in listed)
    return issues.drop(label, raw, unknown, kind,
                       lambda p: f"{_show_raw(raw['ts_code'].iloc[p])!r} is not in stock_basic") if unknown.any() else raw


def _month_of(date) -> str:
    return pd.Timestamp(date).strftime("%Y-%m")


def _carry_adj_factor(issues: _Issues, labels: dict[str, str], daily: pd.DataFrame, codes: np.ndarray,
                      dates: np.ndarray, adj: np.ndarray, found: np.ndarray) -> np.ndarray:
    """A bar without an adj_factor row takes the factor of the listing's previous bar when its pre_close is that
    bar's close (no corporate action between them); otherwise the conversion stops naming the row to add."""
    if found.all():
        return adj
    adj = adj.copy()
    order = np.lexsort((dates, codes))
    previous = np.full(len(codes), -1)
    same = codes[order][1:] == codes[order][:-1]
    previous[order[1:][same]] = order[:-1][same]
    close = pd.to_numeric(daily["close"], errors="coerce").to_numpy(dtype=np.float64)
    pre_close = pd.to_numeric(daily["pre_close"], errors="coerce").to_numpy(dtype=np.float64)
    for pos in order[~found[order]]:  # in date order per stock, so that a run of gaps carries one factor through
        before = previous[pos]
        day = pd.Timestamp(dates[pos]).date()
        gap = before < 0 or np.round(pre_close[pos] * 100) != np.round(close[before] * 100)  # in fen
        if gap:
            why = ("it is the stock's first bar, so there is no factor to carry" if before < 0 else
                   f"its pre_close {_fmt_number(pre_close[pos])} is not the previous bar's close "
                   f"{_fmt_number(close[before])} ({pd.Timestamp(dates[before]).date()}): a corporate action happened")
            raise InputValidationError(
                labels["adj_factor"], "adj_factor", int(pos), None,
                f"no adj_factor row for {codes[pos]} on {day}, and {why}; add the row "
                f"(Tushare adj_factor, ts_code={codes[pos]}, trade_date={day:%Y%m%d}) to {labels['adj_factor']}",
                codes[pos], day.isoformat(),
            )
        adj[pos] = adj[before]
        issues.add(_month_of(dates[pos]), labels["adj_factor"], "adj_factor_carried", codes[pos],
                   f"no row for {day}: the factor {_fmt_number(adj[pos])} of {pd.Timestamp(dates[before]).date()} "
                   "carried forward (no price gap between them)")
    return adj


def _unclassified_issues(issues: _Issues, label: str, stocks: pd.DataFrame, codes: np.ndarray, dates: np.ndarray) -> None:
    """One issue per stock without any membership (each month's count of them is in its metadata)."""
    without = stocks[stocks["industry"] == UNCLASSIFIED]
    bars = pd.Series(dates, dtype="datetime64[ns]").groupby(pd.Series(codes, dtype=object)).agg(["min", "max", "size"])
    for code in without["ts_code"]:
        shown = (f"{int(bars.loc[code, 'size'])} bars from {bars.loc[code, 'min'].date()} to {bars.loc[code, 'max'].date()}"
                 if code in bars.index else "no bars")
        issues.add(None, label, "unclassified", code, f"no Shenwan level-1 membership ({shown}): industry "
                   f"{UNCLASSIFIED}: a group of its own when neutralised, left out of the industry tables")


def convert(
    tables: dict[str, pd.DataFrame], labels: dict[str, str], calendar: session_calendar.SessionCalendar | None = None
) -> MarketFrames:
    """Canonical (daily, stocks, issues) from the raw export tables; ``labels`` name each table's file in errors and
    issues; the bars are checked against ``calendar`` (input_files' rule when None).

    What can be set right is, and recorded in ``issues``: exact repeats of a row, codes that are not A-share codes
    outside ``daily``, memberships and name changes of codes not in stock_basic, stocks without a membership
    (:data:`UNCLASSIFIED`) and a missing adj_factor with no price gap. The rest raises as input_files does.
    """
    issues = _Issues()
    tables = {t: _without_duplicates(issues, labels[t], _normalise_columns(df, labels[t])) for t, df in tables.items()}

    daily = tables["daily"].reset_index(drop=True)
    file = labels["daily"]
    chk = _Checker(file, daily, ("ts_code", "trade_date"))
    if "volume" in daily.columns and "vol" not in daily.columns:
        raise InputValidationError(file, "vol", None, None, "has 'volume' but not Tushare's 'vol' (lots of 100 shares): "
                                   "beside stock_basic, daily is read as a Tushare export")
    _require_columns(chk, DAILY_REQUIRED)
    codes, dates = _keyed(chk)

    basic = _without_malformed_codes(issues, labels["stock_basic"], tables["stock_basic"])
    chk_basic = _Checker(labels["stock_basic"], basic, ("ts_code",))
    _require_columns(chk_basic, ("ts_code", "name", "list_date"))
    code_idx, code_uniques = _parse_codes(chk_basic, basic["ts_code"])
    stock_codes = code_uniques[code_idx]
    listed = set(stock_codes)
    member_rows = _without_unlisted(issues, labels["index_member_all"], tables["index_member_all"], listed, "membership_not_listed")
    members = industry.parse_memberships(labels["index_member_all"], member_rows)
    current = pd.Series(stock_codes, dtype=object).map(industry.current_industry(members)).fillna(UNCLASSIFIED)
    # Tushare's own industry column is its classification, not Shenwan's: replaced.
    stocks_raw = basic.drop(columns=["industry"], errors="ignore").assign(industry=current.to_numpy(dtype=object))
    stocks = _validate_stocks(labels["stock_basic"], stocks_raw)
    _unclassified_issues(issues, labels["index_member_all"], stocks, codes, dates)

    vol = _parse_numeric(chk, "vol", required=True)
    amount = _parse_numeric(chk, "amount", required=True)
    for column, values in (("vol", vol), ("amount", amount)):
        chk.check(column, values < 0, lambda p, c=column, v=values: (v[p], f"{c} {v[p]} is negative"))
    keys = pd.MultiIndex.from_arrays([codes, dates])
    canonical = daily[["ts_code", "trade_date", *PRICE_COLUMNS]].assign(
        volume=units.shares_from_lots(vol), amount=units.cny_from_thousands(amount)
    )
    if "adj_factor" in tables:
        adj_rows = _without_malformed_codes(issues, labels["adj_factor"], tables["adj_factor"])
        adj, found = _per_bar("adj_factor", labels["adj_factor"], adj_rows, "adj_factor", keys)
        canonical["adj_factor"] = _carry_adj_factor(issues, labels, daily, codes, dates, adj, found)
    if "daily_basic" in tables:
        basic_rows = _without_malformed_codes(issues, labels["daily_basic"], tables["daily_basic"])
        float_share, _ = _per_bar("daily_basic", labels["daily_basic"], basic_rows, "float_share", keys)
        canonical["float_shares"] = units.shares_from_ten_thousands(float_share)
    if "namechange" in tables:
        name_rows = _without_unlisted(issues, labels["namechange"], tables["namechange"], listed, "namechange_not_listed")
        periods = industry.parse_name_periods(labels["namechange"], name_rows)
        canonical["is_st"] = industry.st_on(periods, codes, dates)
    on_day = industry.industry_on(members, codes, dates)
    canonical["industry"] = np.where(pd.isna(on_day), UNCLASSIFIED, on_day).astype(object)
    valid = _validate_daily(file, canonical, stocks, labels["stock_basic"], calendar)
    return MarketFrames(valid, stocks, None, issues.frame())

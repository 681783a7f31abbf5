"""Input files: find, parse, validate and canonicalise the market a user supplies (docs/INTERFACES.md, "Input files").

Pure functions (no Dagster). Input files are validated fully before anything is written; bad input raises
:class:`InputValidationError` naming the file, the column and the first offending row. The cache that
holds the validated market lives in :mod:`factor_pipeline.market.store`.

Canonical frames are those of docs/INTERFACES.md:

- daily: ``ts_code`` str, ``trade_date`` datetime64[ns], ``open high low close pre_close volume amount
  adj_factor float_shares`` float64, ``is_st`` bool, ``industry`` str (the stock's industry on that day);
  sorted by (trade_date, ts_code). Rows with volume 0
  (suspended days, when a file carries them) are kept.
- stocks: ``ts_code name industry`` str (industry: English SW level-1 name), ``list_date delist_date``
  datetime64[ns] (NaT while listed); sorted by ts_code.
- truth (synthetic market only): ``month`` str, ``ts_code`` str, ``expected_return`` float64.
"""

from __future__ import annotations

import csv
import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from factor_pipeline.market import session_calendar
from factor_pipeline.market.trading_rules import board_of, canonical_industry, high_low_violations

SOURCE_ENV = "FACTOR_PIPELINE_SOURCE"

DAILY_REQUIRED = ("ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "volume", "amount")
DAILY_OPTIONAL = ("adj_factor", "float_shares", "is_st", "industry")
DAILY_COLUMNS = DAILY_REQUIRED + DAILY_OPTIONAL
PRICE_COLUMNS = ("open", "high", "low", "close", "pre_close")
STOCKS_REQUIRED = ("ts_code", "name", "industry", "list_date")
STOCKS_COLUMNS = STOCKS_REQUIRED + ("delist_date",)
TRUTH_COLUMNS = ("month", "ts_code", "expected_return")
# An irregular row the reader set right instead of failing (docs/your_own_data.md lists the kinds).
ISSUE_COLUMNS = ("month", "source", "kind", "ts_code", "detail")
# Columns read as text from CSV, so that codes keep their leading zeros and dates are parsed here.
_TEXT_COLUMNS = (
    "ts_code", "trade_date", "name", "industry", "list_date", "delist_date", "is_st", "month", "index_code", "con_code",
)
INDEX_WEIGHT_COLUMNS = ("index_code", "con_code", "trade_date", "weight")
INDEX_CODE_RE = re.compile(r"^\d{6}\.(SH|SZ|CSI)$")


_CODE_RE = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")
_YYYYMMDD_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:\.0+)?$")  # "20240105.0": a float export
_ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00(?::00(?:\.0+)?)?)?$")
_MONTH_KEY_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_TRUE = frozenset({"true", "t", "1", "1.0", "yes", "y"})
_FALSE = frozenset({"false", "f", "0", "0.0", "no", "n", ""})


class InputValidationError(ValueError):
    """Bad input: names the file, the column, the 0-based data row (or None) and the offending value.

    ``str()`` reads like ``daily.csv, column 'high', row 17 (ts_code=600000.SH, trade_date=2024-01-05):
    high 9.80 is below max(open, close) 10.00``.
    """

    def __init__(self, file, column=None, row=None, value=None, problem="", ts_code=None, trade_date=None):
        self.file = file
        self.column = column
        self.row = row
        self.value = value
        self.problem = problem
        self.ts_code = ts_code
        self.trade_date = trade_date
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [str(self.file)]
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        if self.row is not None:
            context = []
            if self.ts_code is not None:
                context.append(f"ts_code={self.ts_code}")
            if self.trade_date is not None:
                context.append(f"trade_date={self.trade_date}")
            parts.append(f"row {self.row}" + (f" ({', '.join(context)})" if context else ""))
        return ", ".join(parts) + ": " + self.problem

    def __reduce__(self):  # picklable across processes (Dagster's multiprocess executor)
        return (
            self.__class__,
            (self.file, self.column, self.row, self.value, self.problem, self.ts_code, self.trade_date),
        )


@dataclass(frozen=True)
class MarketFrames:
    daily: pd.DataFrame
    stocks: pd.DataFrame
    truth: pd.DataFrame | None
    issues: pd.DataFrame | None = None  # ISSUE_COLUMNS; None where the source cannot have any
    index_weight: pd.DataFrame | None = None  # index constituents and weights, when the source has them


def empty_issues() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="str") for c in ISSUE_COLUMNS})


def is_code(text) -> bool:
    """Whether ``text`` (as read) is an A-share code like 600000.SH once normalised."""
    return not _is_missing(text) and bool(_CODE_RE.match(_show_raw(text).upper()))


class _Checker:
    """Raises :class:`InputValidationError` for the first row of a mask, with the row's context."""

    def __init__(self, file: str, raw: pd.DataFrame, context: tuple[str, ...]):
        self.file = file
        self.raw = raw
        self.context = tuple(c for c in context if c in raw.columns)

    def _context_value(self, column: str, pos: int):
        if column not in self.context:
            return None
        return _show_raw(self.raw[column].iloc[pos])

    def error(self, column, pos, value, problem, cls=InputValidationError) -> InputValidationError:
        pos = int(pos)
        return cls(
            self.file,
            column,
            pos,
            value,
            problem,
            self._context_value("ts_code", pos),
            self._context_value("trade_date", pos),
        )

    def check(self, column: str, bad: np.ndarray, describe, cls=InputValidationError) -> None:
        """``describe(pos) -> (value, problem)`` is called for the first True row of ``bad``."""
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            pos = int(np.argmax(bad))
            value, problem = describe(pos)
            raise self.error(column, pos, value, problem, cls)

    def table_error(self, problem: str, column=None) -> InputValidationError:
        return InputValidationError(self.file, column, None, None, problem)


def _is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float) and np.isnan(value))
    except TypeError:
        return False


def _show_raw(value) -> str:
    if _is_missing(value):
        return "(empty)"
    if isinstance(value, (pd.Timestamp, _dt.datetime)) and value == pd.Timestamp(value).normalize():
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, np.datetime64):
        return _show_raw(pd.Timestamp(value))
    if isinstance(value, (float, np.floating)):
        return _fmt_number(float(value))
    return str(value).strip()


def _fmt_number(x: float) -> str:
    if not np.isfinite(x):
        return str(x)
    if abs(x - round(x, 2)) < 1e-9 * max(1.0, abs(x)):
        return f"{x:.2f}"
    return f"{x:.6g}"


def _quoted(value) -> str:
    if _is_missing(value):
        return "(empty)"
    if isinstance(value, str):
        return repr(value)
    return _show_raw(value)


def _require_columns(chk: _Checker, required: tuple[str, ...]) -> None:
    columns = list(chk.raw.columns)
    for column in required:
        if column not in columns:
            hint = ""
            if column == "volume" and "vol" in columns:
                hint = (
                    "; found 'vol' (Tushare's volume in lots of 100 shares): provide 'volume' in shares "
                    "(vol x 100)"
                )
            raise InputValidationError(
                chk.file,
                column,
                None,
                None,
                f"required column '{column}' is missing (columns found: {', '.join(map(str, columns)) or 'none'}){hint}",
            )
    if len(chk.raw) == 0:
        raise chk.table_error("has no data rows")


def _missing_problem(chk: _Checker, pos: int, column: str) -> str:
    problem = f"missing value in required column '{column}'"
    if pos == len(chk.raw) - 1 and chk.file.endswith(".csv"):
        problem += " (the last row is incomplete: is the file truncated?)"
    return problem


def _parse_codes(chk: _Checker, series: pd.Series, column: str = "ts_code") -> tuple[np.ndarray, np.ndarray]:
    """Normalised codes per row (object array) and the factorised (codes, uniques) of them."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    chk.check(column, codes < 0, lambda p: (None, _missing_problem(chk, p, column)))
    normalised = np.array([_show_raw(u).upper() for u in uniques], dtype=object)
    bad_unique = np.array([not _CODE_RE.match(u) for u in normalised], dtype=bool)
    chk.check(
        column,
        bad_unique[codes],
        lambda p: (
            series.iloc[p],
            f"{_quoted(series.iloc[p])} is not an A-share code like 600000.SH, 000001.SZ or 830799.BJ",
        ),
    )
    # Two spellings of one code ("600000.sh", "600000.SH") become one.
    final_uniques, remap = np.unique(normalised, return_inverse=True)
    return remap[codes], final_uniques


def _date_text(value) -> str:
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _parse_one_date(text: str):
    match = _YYYYMMDD_RE.match(text) or _ISO_RE.match(text)
    if not match:
        return None
    try:
        return pd.Timestamp(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def _parse_dates(chk: _Checker, column: str, required: bool) -> np.ndarray:
    """datetime64[ns] per row (NaT where empty and not required). Accepts YYYYMMDD or ISO, text or ints."""
    series = chk.raw[column]
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("Asia/Shanghai").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        values = series.to_numpy().astype("datetime64[ns]")
        missing = np.isnat(values)
        if required:
            chk.check(column, missing, lambda p: (None, _missing_problem(chk, p, column)))
        with_time = ~missing & (values != values.astype("datetime64[D]").astype("datetime64[ns]"))
        chk.check(
            column,
            with_time,
            lambda p: (series.iloc[p], f"{pd.Timestamp(values[p])} has a time of day; expected a date"),
        )
        return values
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if required:
        chk.check(column, codes < 0, lambda p: (None, _missing_problem(chk, p, column)))
    texts = [_date_text(u) for u in uniques]
    parsed = [_parse_one_date(t) if t else pd.NaT for t in texts]
    bad_unique = np.array([p is None or (required and p is pd.NaT) for p in parsed], dtype=bool)
    chk.check(
        column,
        np.append(bad_unique, False)[codes],  # code -1 (empty) is not "not a date"
        lambda p: (
            series.iloc[p],
            f"{_quoted(series.iloc[p])} is not a date: expected YYYYMMDD (e.g. 20240105) or ISO (2024-01-05)",
        ),
    )
    unique_values = np.array(
        [np.datetime64("NaT", "ns") if p is None or p is pd.NaT else p.to_datetime64() for p in parsed],
        dtype="datetime64[ns]",
    )
    values = np.append(unique_values, np.datetime64("NaT", "ns"))[codes]  # code -1 (empty) -> NaT
    return values


def _parse_numeric(chk: _Checker, column: str, required: bool) -> np.ndarray:
    """float64 per row; NaN where empty (an error when ``required``); non-numbers and infinities raise."""
    series = chk.raw[column]
    if pd.api.types.is_bool_dtype(series.dtype):
        chk.check(column, np.ones(len(series), bool), lambda p: (series.iloc[p], f"{series.iloc[p]} is not a number"))
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    else:
        coerced = pd.to_numeric(series, errors="coerce")
        values = np.asarray(coerced, dtype="float64")
        present = series.notna().to_numpy()
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            # Blank text counts as empty, not as a non-number.
            blank = present & series.astype("str").str.strip().eq("").to_numpy()
            present = present & ~blank
        chk.check(
            column,
            present & np.isnan(values),
            lambda p: (series.iloc[p], f"{_quoted(series.iloc[p])} is not a number"),
        )
    if required:
        chk.check(column, np.isnan(values), lambda p: (None, _missing_problem(chk, p, column)))
    chk.check(column, np.isinf(values), lambda p: (values[p], f"{values[p]} is not a finite number"))
    return values


def _parse_bool(chk: _Checker, column: str) -> np.ndarray:
    series = chk.raw[column]
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.fillna(False).to_numpy(dtype=bool)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = [_date_text(u).lower() for u in uniques]
    bad_unique = np.array([t not in _TRUE and t not in _FALSE for t in texts], dtype=bool)
    chk.check(
        column,
        np.append(bad_unique, False)[codes],
        lambda p: (series.iloc[p], f"{_quoted(series.iloc[p])} is not a boolean: expected true/false or 1/0"),
    )
    truth = np.append(np.array([t in _TRUE for t in texts], dtype=bool), False)
    return truth[codes]


def _parse_industries(chk: _Checker, column: str) -> np.ndarray:
    """English SW level-1 name per row (object array); empty or unknown names raise."""
    series = chk.raw[column]
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    chk.check(column, codes < 0, lambda p: (None, _missing_problem(chk, p, column)))
    canonical = [canonical_industry(u) if isinstance(u, str) else None for u in uniques]
    bad_unique = np.array([c is None for c in canonical], dtype=bool)
    chk.check(
        column,
        bad_unique[codes],
        lambda p: (
            series.iloc[p],
            f"unknown industry {_quoted(series.iloc[p])}: expected a Shenwan (SW 2021) level-1 name "
            "in Chinese or English, e.g. 银行 or Banks (see docs/market.md)",
        ),
    )
    return np.array(canonical, dtype=object)[codes]


def _validate_stocks(file: str, raw: pd.DataFrame) -> pd.DataFrame:
    raw = raw.reset_index(drop=True)
    chk = _Checker(file, raw, ("ts_code",))
    _require_columns(chk, STOCKS_REQUIRED)
    code_idx, code_uniques = _parse_codes(chk, raw["ts_code"])
    duplicated = pd.Series(code_idx).duplicated().to_numpy()

    def describe_duplicate(pos):
        first = int(np.flatnonzero(code_idx == code_idx[pos])[0])
        return code_uniques[code_idx[pos]], f"duplicate ts_code {code_uniques[code_idx[pos]]} (first at row {first})"

    chk.check("ts_code", duplicated, describe_duplicate)

    problems = [_board_problem(c) for c in code_uniques]
    boardless = np.array([p is not None for p in problems], dtype=bool)
    chk.check("ts_code", boardless[code_idx], lambda p: (code_uniques[code_idx[p]], problems[code_idx[p]]))

    names = raw["name"].astype(object).map(lambda v: "" if _is_missing(v) else str(v).strip())

    industries = _parse_industries(chk, "industry")

    list_date = _parse_dates(chk, "list_date", required=True)
    if "delist_date" in raw.columns:
        delist_date = _parse_dates(chk, "delist_date", required=False)
    else:
        delist_date = np.full(len(raw), np.datetime64("NaT", "ns"))
    chk.check(
        "delist_date",
        ~np.isnat(delist_date) & (delist_date < list_date),
        lambda p: (
            raw["delist_date"].iloc[p],
            f"delist_date {pd.Timestamp(delist_date[p]).date()} is before list_date {pd.Timestamp(list_date[p]).date()}",
        ),
    )

    stocks = pd.DataFrame(
        {
            "ts_code": pd.array(code_uniques[code_idx], dtype="str"),
            "name": pd.array(names.to_numpy(dtype=object), dtype="str"),
            "industry": pd.array(industries, dtype="str"),
            "list_date": pd.DatetimeIndex(list_date).as_unit("ns"),
            "delist_date": pd.DatetimeIndex(delist_date).as_unit("ns"),
        }
    )
    return stocks.sort_values("ts_code", kind="stable").reset_index(drop=True)


def _board_problem(code: str) -> str | None:
    try:
        board_of(code)
    except ValueError as exc:
        return str(exc)
    return None


def _validate_daily(
    file: str, raw: pd.DataFrame, stocks: pd.DataFrame, stocks_file: str, calendar: session_calendar.SessionCalendar | None
) -> pd.DataFrame:
    raw = raw.reset_index(drop=True)
    chk = _Checker(file, raw, ("ts_code", "trade_date"))
    _require_columns(chk, DAILY_REQUIRED)
    n = len(raw)

    code_idx, code_uniques = _parse_codes(chk, raw["ts_code"])
    dates = _parse_dates(chk, "trade_date", required=True)

    # The calendar: before its start, not a session, a session with no bars at all. Rows past the calendar
    # are validated like any other and then set aside: the months the calendar covers stay usable, and a
    # month past it fails when read, naming the calendar file to supply.
    calendar = calendar or session_calendar.active()
    sessions, horizon = calendar.sessions, calendar.known_until
    first_session = sessions[0]
    date_days = dates.astype("datetime64[ns]")
    chk.check(
        "trade_date",
        date_days < first_session.to_datetime64(),
        lambda p: (
            raw["trade_date"].iloc[p],
            f"{pd.Timestamp(dates[p]).date()} is before the pipeline's XSHG calendar, which starts at "
            f"{first_session.date()}: drop earlier rows",
        ),
    )
    date_uniques, date_codes = np.unique(date_days, return_inverse=True)
    known_days = date_uniques <= horizon.to_datetime64()
    not_session = known_days & ~np.isin(date_uniques, sessions.to_numpy().astype("datetime64[ns]"))
    chk.check(
        "trade_date",
        not_session[date_codes],
        lambda p: (
            raw["trade_date"].iloc[p],
            f"{pd.Timestamp(dates[p]).date()} ({pd.Timestamp(dates[p]).day_name()}) is not an XSHG trading day "
            f"(calendar: {calendar.description})",
        ),
    )
    if n and known_days.any():
        last_known = pd.Timestamp(date_uniques[known_days][-1])
        covered = calendar.sessions[(calendar.sessions >= pd.Timestamp(date_uniques[0])) & (calendar.sessions <= last_known)]
        empty = covered.difference(pd.DatetimeIndex(date_uniques))
        if len(empty):
            raise chk.table_error(
                f"the session {empty[0].date()} ({empty[0].day_name()}) has no bars at all, although the file runs "
                f"to {last_known.date()}: a whole trading day is missing ({len(empty)} such sessions in all)",
                column="trade_date",
            )

    key = code_idx.astype(np.int64) * len(date_uniques) + date_codes.astype(np.int64)
    duplicated = pd.Series(key).duplicated().to_numpy()

    def describe_duplicate(pos):
        first = int(np.flatnonzero(key == key[pos])[0])
        return (
            raw["trade_date"].iloc[pos],
            f"duplicate (ts_code, trade_date) ({code_uniques[code_idx[pos]]}, {pd.Timestamp(dates[pos]).date()}): "
            f"the same stock-day is also at row {first}",
        )

    chk.check("trade_date", duplicated, describe_duplicate)

    values = {column: _parse_numeric(chk, column, required=True) for column in DAILY_REQUIRED[2:]}
    for column in PRICE_COLUMNS:
        v = values[column]
        chk.check(column, ~(v > 0), lambda p, c=column, v=v: (v[p], f"{c} {_fmt_number(v[p])} is not positive"))
    o, h, low, c = values["open"], values["high"], values["low"], values["close"]
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    bad_high, bad_low = high_low_violations(o, h, low, c)
    chk.check(
        "high",
        bad_high,
        lambda p: (h[p], f"high {_fmt_number(h[p])} is below max(open, close) {_fmt_number(top[p])}"),
    )
    chk.check(
        "low",
        bad_low,
        lambda p: (low[p], f"low {_fmt_number(low[p])} is above min(open, close) {_fmt_number(bottom[p])}"),
    )
    for column in ("volume", "amount"):
        v = values[column]
        chk.check(column, v < 0, lambda p, c=column, v=v: (v[p], f"{c} {_fmt_number(v[p])} is negative"))

    if "adj_factor" in raw.columns:
        adj = _parse_numeric(chk, "adj_factor", required=False)
        chk.check(
            "adj_factor",
            np.isnan(adj),
            lambda p: (None, "missing value in adj_factor (leave the whole column out for 1.0)"),
        )
        chk.check("adj_factor", ~(adj > 0), lambda p: (adj[p], f"adj_factor {_fmt_number(adj[p])} is not positive"))
    else:
        adj = np.ones(n)
    if "float_shares" in raw.columns:
        float_shares = _parse_numeric(chk, "float_shares", required=False)
        chk.check(
            "float_shares",
            float_shares < 0,
            lambda p: (float_shares[p], f"float_shares {_fmt_number(float_shares[p])} is negative"),
        )
    else:
        float_shares = np.full(n, np.nan)
    is_st = _parse_bool(chk, "is_st") if "is_st" in raw.columns else np.zeros(n, dtype=bool)
    # The industry each bar had on its day; without the column, the stock's static one.
    industry = _parse_industries(chk, "industry") if "industry" in raw.columns else None

    # Against the stocks table: known code, within its listing.
    position = pd.Index(stocks["ts_code"].to_numpy(dtype=object)).get_indexer(code_uniques)
    chk.check(
        "ts_code",
        (position < 0)[code_idx],
        lambda p: (code_uniques[code_idx[p]], f"{code_uniques[code_idx[p]]} is not in {stocks_file}"),
    )
    list_date = stocks["list_date"].to_numpy(dtype="datetime64[ns]")[position][code_idx]
    delist_date = stocks["delist_date"].to_numpy(dtype="datetime64[ns]")[position][code_idx]
    if industry is None:
        industry = stocks["industry"].to_numpy(dtype=object)[position][code_idx]
    chk.check(
        "trade_date",
        dates < list_date,
        lambda p: (
            raw["trade_date"].iloc[p],
            f"{pd.Timestamp(dates[p]).date()} is before the stock's list_date {pd.Timestamp(list_date[p]).date()} "
            f"in {stocks_file}",
        ),
    )
    chk.check(
        "trade_date",
        ~np.isnat(delist_date) & (dates > delist_date),
        lambda p: (
            raw["trade_date"].iloc[p],
            f"{pd.Timestamp(dates[p]).date()} is after the stock's delist_date "
            f"{pd.Timestamp(delist_date[p]).date()} in {stocks_file}",
        ),
    )

    # Canonical order (trade_date, ts_code) without a slow multi-key string sort: uniques are sorted.
    order = np.lexsort((code_idx, date_codes))
    daily = pd.DataFrame(
        {
            "ts_code": pd.array(code_uniques[code_idx[order]], dtype="str"),
            "trade_date": pd.DatetimeIndex(dates[order]).as_unit("ns"),
            **{column: values[column][order] for column in DAILY_REQUIRED[2:]},
            "adj_factor": adj[order],
            "float_shares": float_shares[order],
            "is_st": is_st[order],
            "industry": pd.array(industry[order], dtype="str"),
        }
    )
    within = daily["trade_date"].to_numpy() <= horizon.to_datetime64()
    return daily if within.all() else daily.loc[within].reset_index(drop=True)


def _validate_truth(file: str, raw: pd.DataFrame) -> pd.DataFrame:
    raw = raw.reset_index(drop=True)
    chk = _Checker(file, raw, ("ts_code",))
    for column in TRUTH_COLUMNS:
        if column not in raw.columns:
            raise InputValidationError(file, column, None, None, f"required column '{column}' is missing")
    month = raw["month"].astype(object).map(lambda v: "" if _is_missing(v) else str(v).strip())
    bad = ~month.map(lambda v: bool(_MONTH_KEY_RE.match(v))).to_numpy(dtype=bool)
    chk.check("month", bad, lambda p: (raw["month"].iloc[p], f"{_quoted(raw['month'].iloc[p])} is not a YYYY-MM month"))
    code_idx, code_uniques = _parse_codes(chk, raw["ts_code"])
    expected = _parse_numeric(chk, "expected_return", required=True)
    truth = pd.DataFrame(
        {
            "month": pd.array(month.to_numpy(dtype=object), dtype="str"),
            "ts_code": pd.array(code_uniques[code_idx], dtype="str"),
            "expected_return": expected,
        }
    )
    return truth.sort_values(["month", "ts_code"], kind="stable").reset_index(drop=True)


def _validate_index_weight(file: str, raw: pd.DataFrame) -> pd.DataFrame:
    """index_code, con_code (a stock's ts_code), trade_date (the day the weights were published), weight (> 0,
    any unit: the evaluation normalises each index's weights)."""
    raw = raw.reset_index(drop=True)
    chk = _Checker(file, raw, ("con_code", "trade_date"))
    _require_columns(chk, INDEX_WEIGHT_COLUMNS)
    index_code = raw["index_code"].astype(object).map(lambda v: "" if _is_missing(v) else str(v).strip().upper())
    bad = ~index_code.map(lambda v: bool(INDEX_CODE_RE.match(v))).to_numpy(dtype=bool)
    chk.check("index_code", bad, lambda p: (raw["index_code"].iloc[p], f"{_quoted(raw['index_code'].iloc[p])} is not an index code like 000300.SH"))
    code_idx, code_uniques = _parse_codes(chk, raw["con_code"], "con_code")
    dates = _parse_dates(chk, "trade_date", required=True)
    weight = _parse_numeric(chk, "weight", required=True)
    chk.check("weight", weight <= 0, lambda p: (weight[p], f"{weight[p]} is not a positive weight"))
    out = pd.DataFrame(
        {
            "index_code": pd.array(index_code.to_numpy(dtype=object), dtype="str"),
            "con_code": pd.array(code_uniques[code_idx], dtype="str"),
            "trade_date": dates,
            "weight": weight,
        }
    )
    duplicated = out.duplicated(["index_code", "con_code", "trade_date"]).to_numpy()
    chk.check("con_code", duplicated, lambda p: (raw["con_code"].iloc[p], "appears twice for the same index and date"))
    return out.sort_values(["index_code", "trade_date", "con_code"], kind="stable").reset_index(drop=True)


def validate_frames(daily: pd.DataFrame, stocks: pd.DataFrame, truth: pd.DataFrame | None = None,
                    label: str = "input", calendar: session_calendar.SessionCalendar | None = None) -> MarketFrames:
    """Validate and canonicalise in-memory frames (e.g. the synthetic market) with the file checks, the bars
    against ``calendar`` (the active one when None)."""
    stocks_file, daily_file = f"{label} stocks", f"{label} daily"
    canonical_stocks = _validate_stocks(stocks_file, _normalise_columns(stocks, stocks_file))
    canonical_daily = _validate_daily(daily_file, _normalise_columns(daily, daily_file), canonical_stocks, stocks_file, calendar)
    canonical_truth = None
    if truth is not None:
        canonical_truth = _validate_truth(f"{label} truth", _normalise_columns(truth, f"{label} truth"))
    return MarketFrames(canonical_daily, canonical_stocks, canonical_truth)


def _normalise_columns(df: pd.DataFrame, file: str) -> pd.DataFrame:
    names = [str(c).strip().lower() for c in df.columns]
    seen = set()
    for name in names:
        if name in seen:
            raise InputValidationError(file, name, None, None, f"column '{name}' appears more than once")
        seen.add(name)
    df = df.copy(deep=False)
    df.columns = names
    return df


def source_directory(path, from_env: bool) -> Path:
    directory = Path(path).expanduser()
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        prefix = f"{SOURCE_ENV}={str(path)!r}: " if from_env else ""
        raise FileNotFoundError(
            f"{prefix}the input directory {directory.resolve()} {what}; set {SOURCE_ENV} to 'synthetic' or to a "
            "directory holding daily.csv/daily.parquet and stocks.csv/stocks.parquet"
        )
    return directory


def locate_inputs(directory: Path) -> dict[str, Path]:
    """{'daily': path, 'stocks': path} and 'index_weight' when present; raises when a required table is missing or
    a table is present as both CSV and Parquet."""
    files = sorted(p for p in directory.iterdir() if p.is_file())
    found: dict[str, Path] = {}
    optional = [p for p in files if p.name.lower() in ("index_weight.csv", "index_weight.parquet")]
    if len(optional) > 1:
        raise InputValidationError(" and ".join(p.name for p in optional), None, None, None,
                                   f"both are present in {directory}: keep exactly one file per table")
    if optional:
        found["index_weight"] = optional[0]
    for table in ("stocks", "daily"):
        matches = [p for p in files if p.name.lower() in (f"{table}.csv", f"{table}.parquet")]
        if not matches:
            listing = ", ".join(p.name for p in files) or "nothing"
            raise InputValidationError(
                f"{table}.csv or {table}.parquet",
                None,
                None,
                None,
                f"no {table}.csv or {table}.parquet in {directory} (it holds: {listing})",
            )
        if len(matches) > 1:
            names = " and ".join(p.name for p in matches)
            raise InputValidationError(
                names, None, None, None, f"both are present in {directory}: keep exactly one file per table"
            )
        found[table] = matches[0]
    return found


def _read_csv(path: Path) -> pd.DataFrame:
    file = path.name
    last_error = None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            with open(path, newline="", encoding=encoding) as handle:
                header = next(csv.reader(handle), None)
            if not header:
                raise InputValidationError(file, None, None, None, "is empty: expected a header row")
            names = [h.strip().lower() for h in header]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise InputValidationError(file, duplicates[0], None, None, f"column '{duplicates[0]}' appears more than once")
            dtype = {raw: str for raw, name in zip(header, names) if name in _TEXT_COLUMNS}
            df = pd.read_csv(path, dtype=dtype, encoding=encoding, low_memory=False)
        except UnicodeDecodeError as exc:
            last_error = exc
            continue
        except InputValidationError:
            raise
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
            raise InputValidationError(file, None, None, None, f"cannot be read as CSV ({exc})") from exc
        df.columns = [str(c).strip().lower() for c in df.columns]
        return df
    raise InputValidationError(
        file, None, None, None, f"cannot be read as CSV: it is neither UTF-8 nor GB18030 text ({last_error})"
    )


def _read_parquet(path: Path) -> pd.DataFrame:
    file = path.name
    try:
        table = pq.read_table(path)
        df = table.to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputValidationError(
            file, None, None, None, f"cannot be read as Parquet ({exc}); is it truncated or still being written?"
        ) from exc
    return _normalise_columns(df, file)


def _read_table(path: Path) -> pd.DataFrame:
    return _read_csv(path) if path.suffix.lower() == ".csv" else _read_parquet(path)


def read_inputs(files: dict[str, Path], calendar: session_calendar.SessionCalendar | None = None) -> MarketFrames:
    stocks = _validate_stocks(files["stocks"].name, _read_table(files["stocks"]))
    daily = _validate_daily(files["daily"].name, _read_table(files["daily"]), stocks, files["stocks"].name, calendar)
    index_weight = None
    if "index_weight" in files:
        index_weight = _validate_index_weight(files["index_weight"].name, _read_table(files["index_weight"]))
    return MarketFrames(daily, stocks, None, index_weight=index_weight)


def read_calendar_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(days, is_open) of a Tushare-shaped trade_cal file (CSV or Parquet), sorted by day.

    Columns ``cal_date`` (YYYYMMDD or ISO) and ``is_open`` (1 or 0); an ``exchange`` column, when it holds
    several exchanges, selects the SSE rows. Raises :class:`InputValidationError` naming file, column and row.
    """
    path = Path(path)
    raw = _read_table(path)
    file = path.name
    chk = _Checker(file, raw, ("cal_date",))
    for column in ("cal_date", "is_open"):
        if column not in raw.columns:
            raise InputValidationError(file, column, None, None, f"required column '{column}' is missing (Tushare trade_cal: cal_date, is_open)")
    if "exchange" in raw.columns:
        exchanges = raw["exchange"].astype(str).str.strip().str.upper()
        if exchanges.nunique() > 1:
            if not (exchanges == "SSE").any():
                raise chk.table_error(f"holds exchanges {sorted(exchanges.unique())} but no SSE rows", column="exchange")
            raw = raw.loc[(exchanges == "SSE").to_numpy()].reset_index(drop=True)
            chk = _Checker(file, raw, ("cal_date",))
    if len(raw) == 0:
        raise chk.table_error("has no rows", column="cal_date")
    days = _parse_dates(chk, "cal_date", required=True)
    is_open = _parse_numeric(chk, "is_open", required=True)
    chk.check("is_open", ~np.isin(is_open, (0.0, 1.0)), lambda p: (is_open[p], f"is_open {_fmt_number(is_open[p])} is not 1 or 0"))
    duplicated = pd.Series(days).duplicated().to_numpy()
    chk.check("cal_date", duplicated, lambda p: (raw["cal_date"].iloc[p], f"{pd.Timestamp(days[p]).date()} appears more than once"))
    order = np.argsort(days, kind="stable")
    return days[order], is_open[order] == 1.0

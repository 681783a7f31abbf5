"""Point in time from Tushare's interval tables: a stock's Shenwan level-1 industry and its ST status on a date.

Industry: of a stock's ``index_member_all`` memberships, the one with the latest ``in_date`` on or before
the date; before its first ``in_date`` (history older than the classification) the first membership.
``out_date`` is checked (not before ``in_date``) but not needed: a reassignment opens the next membership.

ST: of a stock's ``namechange`` records, the one with the latest ``start_date`` on or before the date; the
stock is ST when that name is an ST name (ST, *ST, SST, S*ST) and the date is not after its ``end_date``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from factor_pipeline.market.input_files import (
    _Checker,
    _parse_codes,
    _parse_dates,
    _parse_industries,
    _require_columns,
)

MEMBERSHIP_REQUIRED = ("ts_code", "l1_name", "in_date")
NAMECHANGE_REQUIRED = ("ts_code", "name", "start_date")
_ST_NAME = re.compile(r"^S?\*?ST")


def parse_memberships(file: str, raw: pd.DataFrame) -> pd.DataFrame:
    """ts_code, industry (English SW level-1), in_date; sorted by (ts_code, in_date)."""
    raw = raw.reset_index(drop=True)
    chk = _Checker(file, raw, ("ts_code",))
    _require_columns(chk, MEMBERSHIP_REQUIRED)
    code_idx, code_uniques = _parse_codes(chk, raw["ts_code"])
    industry = _parse_industries(chk, "l1_name")
    in_date = _parse_dates(chk, "in_date", required=True)
    if "out_date" in raw.columns:
        out_date = _parse_dates(chk, "out_date", required=False)
        chk.check(
            "out_date",
            ~np.isnat(out_date) & (out_date < in_date),
            lambda p: (raw["out_date"].iloc[p], f"out_date {pd.Timestamp(out_date[p]).date()} is before in_date "
                       f"{pd.Timestamp(in_date[p]).date()}"),
        )
    key = pd.DataFrame({"code": code_idx, "in_date": in_date})
    duplicated = key.duplicated().to_numpy()
    chk.check(
        "in_date",
        duplicated,
        lambda p: (raw["in_date"].iloc[p], f"{code_uniques[code_idx[p]]} has two memberships from "
                   f"{pd.Timestamp(in_date[p]).date()}"),
    )
    members = pd.DataFrame({"ts_code": code_uniques[code_idx], "industry": industry, "in_date": in_date})
    return members.sort_values(["ts_code", "in_date"], kind="stable").reset_index(drop=True)


def current_industry(members: pd.DataFrame) -> pd.Series:
    """ts_code -> the industry of the stock's latest membership (the stock table's static column)."""
    return members.drop_duplicates("ts_code", keep="last").set_index("ts_code")["industry"]


def _as_of(table: pd.DataFrame, on: str, codes: np.ndarray, dates: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Per (code, date) the row of ``table`` with the latest ``on`` <= date for that code (NaN where none)."""
    dates = np.asarray(dates, dtype="datetime64[ns]")
    left = pd.DataFrame({"pos": np.arange(len(codes)), "ts_code": codes.astype(object), "date": dates})
    left = left.sort_values("date", kind="stable")
    right = table[["ts_code", on, *columns]].sort_values(on, kind="stable")
    merged = pd.merge_asof(left, right, left_on="date", right_on=on, by="ts_code", direction="backward")
    return merged.sort_values("pos").reset_index(drop=True)


def industry_on(members: pd.DataFrame, codes: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """The industry of each (code, date); None for a stock without any membership."""
    found = _as_of(members, "in_date", codes, dates, ["industry"])["industry"]
    first = members.drop_duplicates("ts_code", keep="first").set_index("ts_code")["industry"]
    earliest = pd.Series(codes.astype(object)).map(first)
    result = found.where(found.notna(), earliest).to_numpy(dtype=object)
    result[pd.isna(result)] = None
    return result


def parse_name_periods(file: str, raw: pd.DataFrame) -> pd.DataFrame:
    """ts_code, start_date, end_date (NaT while current), is_st of every namechange record."""
    raw = raw.reset_index(drop=True)
    chk = _Checker(file, raw, ("ts_code",))
    _require_columns(chk, NAMECHANGE_REQUIRED)
    code_idx, code_uniques = _parse_codes(chk, raw["ts_code"])
    start = _parse_dates(chk, "start_date", required=True)
    end = _parse_dates(chk, "end_date", required=False) if "end_date" in raw.columns else np.full(len(raw), np.datetime64("NaT", "ns"))
    chk.check(
        "end_date",
        ~np.isnat(end) & (end < start),
        lambda p: (raw["end_date"].iloc[p], f"end_date {pd.Timestamp(end[p]).date()} is before start_date "
                   f"{pd.Timestamp(start[p]).date()}"),
    )
    names = raw["name"].astype(object).map(lambda v: "" if not isinstance(v, str) else v.strip().upper())
    return pd.DataFrame(
        {
            "ts_code": code_uniques[code_idx],
            "start_date": start,
            "end_date": end,
            "is_st": names.map(lambda n: bool(_ST_NAME.match(n))).to_numpy(dtype=bool),
        }
    )


def st_on(periods: pd.DataFrame, codes: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Whether each (code, date) is ST; False for a stock without namechange records."""
    found = _as_of(periods, "start_date", codes, dates, ["end_date", "is_st"])
    ended = found["end_date"].notna() & (found["end_date"].to_numpy() < np.asarray(dates, dtype="datetime64[ns]"))
    return (found["is_st"].fillna(False).astype(bool) & ~ended).to_numpy(dtype=bool)


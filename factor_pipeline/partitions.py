"""Monthly partitions on the XSHG (Shanghai) exchange calendar.

A partition key is ``YYYY-MM``; its rebalance date is the month's last XSHG session. Sessions come from
exchange-calendars, whose XSHG holidays are known only to the end of 2026: past that horizon every
function here raises :class:`CalendarHorizonError` instead of guessing.
"""

from __future__ import annotations

import functools
import re

import exchange_calendars as xcals
import numpy as np
import pandas as pd

CALENDAR_NAME = "XSHG"
CALENDAR_START = "2015-01-01"
# Early enough that an evaluation from 2019-02 (the seed's start) has two years of history behind it.
FIRST_MONTH = "2017-01"
_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class CalendarHorizonError(ValueError):
    """A date beyond the last session the exchange calendar knows."""


class PartitionKeyError(ValueError):
    """A partition key that is not ``YYYY-MM`` or lies outside the partitions."""


@functools.lru_cache(maxsize=1)
def _calendar():
    return xcals.get_calendar(CALENDAR_NAME, start=CALENDAR_START)


@functools.lru_cache(maxsize=1)
def all_sessions() -> pd.DatetimeIndex:
    """Every XSHG session the calendar knows, tz-naive midnight timestamps."""
    return pd.DatetimeIndex(_calendar().sessions.values, name="trade_date")


@functools.lru_cache(maxsize=1)
def _session_values() -> np.ndarray:
    return all_sessions().values


def calendar_horizon() -> pd.Timestamp:
    return all_sessions()[-1]


def last_complete_month() -> str:
    """The last month whose every day the calendar knows (2026-12 for exchange-calendars 4.x)."""
    horizon = calendar_horizon()
    month_end = horizon + pd.offsets.MonthEnd(0)
    if horizon.normalize() == month_end.normalize():
        return horizon.strftime("%Y-%m")
    return (horizon - pd.offsets.MonthEnd(1)).strftime("%Y-%m")


def parse_month(month: str) -> pd.Period:
    if not isinstance(month, str) or not _MONTH_RE.match(month):
        raise PartitionKeyError(f"partition key {month!r} is not a month in the form YYYY-MM")
    return pd.Period(month, freq="M")


def check_within_horizon(date) -> None:
    date = pd.Timestamp(date)
    if date > calendar_horizon():
        raise CalendarHorizonError(
            f"{date.date()} is past the XSHG calendar's horizon ({calendar_horizon().date()}): "
            "exchange-calendars does not know that year's holidays yet. Upgrade exchange-calendars "
            "once it publishes them; the pipeline never guesses trading days."
        )


def sessions_between(start, end) -> pd.DatetimeIndex:
    """XSHG sessions with start <= session <= end (both inclusive)."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    check_within_horizon(end)
    values = _session_values()
    lo = np.searchsorted(values, start.to_datetime64(), side="left")
    hi = np.searchsorted(values, end.to_datetime64(), side="right")
    return all_sessions()[lo:hi]


def month_sessions(month: str) -> pd.DatetimeIndex:
    period = parse_month(month)
    return sessions_between(period.start_time, period.end_time.normalize())


def rebalance_date(month: str) -> pd.Timestamp:
    """The month's last XSHG session."""
    sessions = month_sessions(month)
    if len(sessions) == 0:
        raise PartitionKeyError(f"month {month} has no XSHG session")
    return sessions[-1]


def month_of(date) -> str:
    return pd.Timestamp(date).strftime("%Y-%m")


def shift_month(month: str, offset: int) -> str:
    return (parse_month(month) + offset).strftime("%Y-%m")


def months_between(first: str, last: str) -> list[str]:
    """Months first..last inclusive."""
    start, end = parse_month(first), parse_month(last)
    if end < start:
        raise PartitionKeyError(f"month range {first}..{last} is empty: {last} is before {first}")
    return [p.strftime("%Y-%m") for p in pd.period_range(start, end, freq="M")]


def session_offset(date, offset: int) -> pd.Timestamp:
    """The session ``offset`` sessions after ``date`` (which must be a session); raises past the horizon."""
    sessions = all_sessions()
    stamp = pd.Timestamp(date)
    position = int(np.searchsorted(_session_values(), stamp.to_datetime64()))
    if position >= len(sessions) or sessions[position] != stamp:
        raise ValueError(f"{pd.Timestamp(date).date()} is not an XSHG session")
    target = position + offset
    if target >= len(sessions):
        raise CalendarHorizonError(
            f"{offset} sessions after {pd.Timestamp(date).date()} is past the XSHG calendar's horizon "
            f"({calendar_horizon().date()})"
        )
    if target < 0:
        raise ValueError(f"{-offset} sessions before {pd.Timestamp(date).date()} is before the calendar start")
    return sessions[target]


def training_grid(start, end, every: int) -> pd.DatetimeIndex:
    """Training cross-section dates: every ``every``-th session counted from the calendar's first session.

    Anchoring on a fixed session (not on the training date) keeps the grid identical across months, so
    the samples a month stores are reused by every later training window.
    """
    sessions = all_sessions()
    grid = sessions[np.arange(len(sessions)) % every == 0]
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    return grid[(grid >= start) & (grid <= end)]


def sample_dates(month: str, every: int) -> pd.DatetimeIndex:
    """The month's sample dates: its training-grid sessions plus its rebalance date."""
    sessions = month_sessions(month)
    grid = training_grid(sessions[0], sessions[-1], every)
    return grid.union(pd.DatetimeIndex([sessions[-1]])).rename("trade_date")


def monthly_partitions():
    """Dagster partitions: one per month from FIRST_MONTH to the current month, capped at the calendar's horizon.

    The current, unfinished month is a partition too, so that its bars can be loaded as they arrive and the
    previous month's "latest IC" can be evaluated on a partial month, as the seed reports it.
    """
    import dagster as dg

    horizon_end = (parse_month(last_complete_month()) + 1).strftime("%Y-%m")
    return dg.MonthlyPartitionsDefinition(
        start_date=FIRST_MONTH,
        end_date=horizon_end,
        end_offset=1,
        timezone="Asia/Shanghai",
        fmt="%Y-%m",
    )

"""Monthly partitions and the session arithmetic every stage uses.

A partition key is ``YYYY-MM``; its rebalance date is the month's last XSHG session. The sessions come from
the active :mod:`session_calendar` (exchange-calendars, extended past its horizon by a calendar file or, for
the embedded market, the synthetic calendar). Past every calendar, functions here raise
:class:`CalendarHorizonError` naming the file to supply, instead of guessing.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from factor_pipeline import session_calendar
from factor_pipeline.session_calendar import CALENDAR_START, CalendarHorizonError  # noqa: F401 (re-exported)

# Early enough that an evaluation from 2019-02 (the seed's start) has two years of history behind it.
FIRST_MONTH = "2017-01"
_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class PartitionKeyError(ValueError):
    """A partition key that is not ``YYYY-MM`` or lies outside the partitions."""


def all_sessions() -> pd.DatetimeIndex:
    """Every session the active calendar knows, tz-naive midnight timestamps."""
    return session_calendar.active().sessions


def _session_values() -> np.ndarray:
    return session_calendar.active().values


def calendar_horizon() -> pd.Timestamp:
    """The last day whose open/closed status the active calendar knows."""
    return session_calendar.active().known_until


def last_complete_month() -> str:
    """The last month whose every day the active calendar knows."""
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
    session_calendar.active().check_known(date)


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


def session_position(date) -> int:
    """Index of the session ``date`` in the calendar (sessions counted from CALENDAR_START)."""
    sessions = all_sessions()
    stamp = pd.Timestamp(date)
    position = int(np.searchsorted(_session_values(), stamp.to_datetime64()))
    if position >= len(sessions) or sessions[position] != stamp:
        check_within_horizon(stamp)
        raise ValueError(f"{stamp.date()} is not an XSHG session")
    return position


def session_offset(date, offset: int) -> pd.Timestamp:
    """The session ``offset`` sessions after ``date`` (which must be a session); raises past the horizon."""
    sessions = all_sessions()
    stamp = pd.Timestamp(date)
    position = session_position(stamp)
    target = position + offset
    if target >= len(sessions):
        raise session_calendar.active().horizon_error(f"the session {offset} sessions after {stamp.date()}")
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
    """Dagster partitions: one per month from FIRST_MONTH to the current month, every year, without end.

    The current, unfinished month is a partition too, so that its bars can be loaded as they arrive and the
    previous month's "latest IC" can be evaluated on a partial month, as the seed reports it. The partitions
    do not depend on the calendar: a month past it exists and fails, when materialised, naming the file to
    supply.
    """
    import dagster as dg

    return dg.MonthlyPartitionsDefinition(
        start_date=FIRST_MONTH,
        end_offset=1,
        timezone="Asia/Shanghai",
        fmt="%Y-%m",
    )

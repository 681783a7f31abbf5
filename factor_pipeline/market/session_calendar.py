"""The XSHG session calendar: exchange-calendars up to its horizon, and past it a calendar file or, for the
embedded market alone, a documented synthetic calendar.

exchange-calendars knows XSHG holidays only as far as its release (2026-12-31 for 4.13); China publishes
each next year's holidays around November. Past that horizon the sessions come from:

1. a Tushare-shaped ``trade_cal`` file (``cal_date``, ``is_open``), named by ``FACTOR_PIPELINE_CALENDAR``
   or found as ``trade_cal.csv`` / ``trade_cal.parquet`` in the input directory; where the file and the
   library both know a day they must agree;
2. for the embedded synthetic market only, when no file is given, :func:`synthetic_extension`: weekdays
   without the fixed-date holidays and the Spring Festival week, to ``SYNTHETIC_CALENDAR_END``. It is an
   approximation (Qingming, Dragon Boat and Mid-Autumn are ignored) that real data must never use.

A day past every calendar raises :class:`CalendarHorizonError` naming the file to supply; nothing guesses.

The calendar in use is process-wide: the pipeline layer resolves its source's calendar
(market/calendar_source.py) and activates it before a step runs (:func:`activate`); a process that never
activates one uses exchange-calendars alone. Nothing here reads the environment or a file.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CALENDAR_NAME = "XSHG"
CALENDAR_START = "2015-01-01"
CALENDAR_ENV = "FACTOR_PIPELINE_CALENDAR"
SYNTHETIC_CALENDAR_END = pd.Timestamp("2028-12-31")
# Lunar new year's day; the synthetic calendar closes from its eve for seven days.
_SPRING_FESTIVAL = {
    2027: "2027-02-06", 2028: "2028-01-26", 2029: "2029-02-13", 2030: "2030-02-03",
}


class CalendarHorizonError(ValueError):
    """A date beyond the last day any calendar the pipeline has knows."""


class CalendarFileError(ValueError):
    """A calendar file that disagrees with exchange-calendars or cannot be used."""


@dataclass(frozen=True)
class SessionCalendar:
    """Sessions (tz-naive midnight timestamps) and the last day whose open/closed status is known."""

    sessions: pd.DatetimeIndex
    known_until: pd.Timestamp
    description: str
    extend_hint: str = field(default="", compare=False)

    def __post_init__(self):
        object.__setattr__(self, "sessions", pd.DatetimeIndex(self.sessions, name="trade_date"))

    @functools.cached_property
    def values(self) -> np.ndarray:
        return self.sessions.values

    @functools.cached_property
    def fingerprint(self) -> str:
        """Changes whenever a session or the horizon changes, so caches that depend on it can key on it."""
        digest = hashlib.sha256(self.values.astype("datetime64[D]").tobytes())
        digest.update(str(self.known_until.date()).encode())
        return digest.hexdigest()[:12]

    def horizon_error(self, what: str) -> CalendarHorizonError:
        return CalendarHorizonError(
            f"{what} is past the session calendar, which is known to {self.known_until.date()} ({self.description}). "
            f"{self.extend_hint}"
        )

    def check_known(self, date) -> None:
        date = pd.Timestamp(date)
        if date > self.known_until:
            raise self.horizon_error(str(date.date()))


def _exchange_sessions() -> pd.DatetimeIndex:
    import exchange_calendars as xcals

    return pd.DatetimeIndex(xcals.get_calendar(CALENDAR_NAME, start=CALENDAR_START).sessions.values)


@functools.lru_cache(maxsize=1)
def exchange_calendar() -> SessionCalendar:
    import exchange_calendars as xcals

    sessions = _exchange_sessions()
    return SessionCalendar(
        sessions, sessions[-1], f"exchange-calendars {xcals.__version__} {CALENDAR_NAME}", hint_for(None, None)
    )


def hint_for(source_dir: Path | None, named: str | None) -> str:
    if named:
        return f"Extend the calendar file {named} ({CALENDAR_ENV}) with the next year's trade_cal rows."
    where = f"as trade_cal.csv in the input directory {source_dir}" if source_dir else "in the input directory"
    return (
        f"Supply the exchange's trade calendar (Tushare trade_cal: cal_date, is_open) {where}, or name the file "
        f"in {CALENDAR_ENV}; or upgrade exchange-calendars once it publishes that year's holidays."
    )


def synthetic_extension(after: pd.Timestamp, until: pd.Timestamp = SYNTHETIC_CALENDAR_END) -> pd.DatetimeIndex:
    """Sessions of the synthetic calendar in (after, until]: weekdays except 1 January, 1-5 May, 1-7 October
    and the Spring Festival week (lunar new year's eve and the six days after)."""
    days = pd.bdate_range(after + pd.Timedelta(days=1), until)
    closed = ((days.month == 1) & (days.day == 1)) | ((days.month == 5) & (days.day <= 5)) | (
        (days.month == 10) & (days.day <= 7)
    )
    for year, new_year in _SPRING_FESTIVAL.items():
        eve = pd.Timestamp(new_year) - pd.Timedelta(days=1)
        closed |= (days >= eve) & (days <= eve + pd.Timedelta(days=6))
    if until.year > max(_SPRING_FESTIVAL):
        raise ValueError(f"the synthetic calendar knows Spring Festival dates only to {max(_SPRING_FESTIVAL)}")
    return days[~closed]


@functools.lru_cache(maxsize=1)
def synthetic_calendar() -> SessionCalendar:
    """The embedded market's calendar: exchange-calendars, then :func:`synthetic_extension`."""
    base = exchange_calendar()
    return SessionCalendar(
        base.sessions.append(synthetic_extension(base.known_until)),
        SYNTHETIC_CALENDAR_END,
        f"{base.description} + the synthetic calendar to {SYNTHETIC_CALENDAR_END.date()} (embedded market only)",
        hint_for(None, None),
    )


_active: SessionCalendar | None = None


def activate(calendar: SessionCalendar) -> SessionCalendar:
    global _active
    _active = calendar
    return calendar


def active() -> SessionCalendar:
    """The calendar in use: the one the pipeline activated for its source (market.calendar_source.resolve), or
    exchange-calendars alone, which guesses no day, when none was."""
    return _active if _active is not None else exchange_calendar()


# Month and session arithmetic on the active calendar; every stage uses it.

# Early enough that an evaluation from 2019-02 (the seed's start) has two years of history behind it.
FIRST_MONTH = "2017-01"
_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class PartitionKeyError(ValueError):
    """A partition key that is not ``YYYY-MM`` or lies outside the partitions."""


def all_sessions() -> pd.DatetimeIndex:
    """Every session the active calendar knows, tz-naive midnight timestamps."""
    return active().sessions


def _session_values() -> np.ndarray:
    return active().values


def calendar_horizon() -> pd.Timestamp:
    """The last day whose open/closed status the active calendar knows."""
    return active().known_until


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
    active().check_known(date)


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


def months_back(month: str, back: int, forward: int = 0, first: str | None = None) -> list[str]:
    """Months month-back..month+forward that can hold data: from FIRST_MONTH and ``first`` (a source's first month) on."""
    start = max(shift_month(month, -back), FIRST_MONTH, first or "")
    return months_between(start, shift_month(month, forward))


def session_position(date) -> int:
    """Index of the session ``date`` in the calendar (sessions counted from CALENDAR_START)."""
    sessions = all_sessions()
    stamp = pd.Timestamp(date)
    position = int(np.searchsorted(_session_values(), stamp.to_datetime64()))
    if position >= len(sessions) or sessions[position] != stamp:
        check_within_horizon(stamp)
        raise ValueError(f"{stamp.date()} is not an XSHG session")
    return position


def as_datetime64_ns(values) -> np.ndarray:
    """datetime64[ns] whatever resolution the frame carries (pandas 3 defaults to microseconds)."""
    return np.asarray(pd.DatetimeIndex(values).as_unit("ns").values)


def session_positions(dates, what: str) -> np.ndarray:
    """Index of each of ``dates`` in the calendar; raises naming ``what`` holds a day that is not a session."""
    stamps = pd.DatetimeIndex(as_datetime64_ns(dates))
    positions = all_sessions().get_indexer(stamps)
    if len(positions) and positions.min() < 0:
        raise ValueError(f"{what} holds {stamps[positions < 0][0].date()}, which is not an XSHG session")
    return positions


def session_offset(date, offset: int) -> pd.Timestamp:
    """The session ``offset`` sessions after ``date`` (which must be a session); raises past the horizon."""
    sessions = all_sessions()
    stamp = pd.Timestamp(date)
    position = session_position(stamp)
    target = position + offset
    if target >= len(sessions):
        raise active().horizon_error(f"the session {offset} sessions after {stamp.date()}")
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

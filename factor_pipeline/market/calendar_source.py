"""A source's session calendar, resolved from its files: exchange-calendars extended by a trade_cal file (named,
or found in the input directory), or for the embedded market the synthetic calendar (session_calendar.py).

Apart from session_calendar.py so that the calendar arithmetic reads no file and imports no input validation:
this module reads the file through input_files.py, which checks bars against the arithmetic.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from factor_pipeline.market.input_files import read_calendar_file
from factor_pipeline.market.session_calendar import (
    CALENDAR_ENV,
    CalendarFileError,
    SessionCalendar,
    exchange_calendar,
    hint_for,
    synthetic_calendar,
)

CALENDAR_FILE_NAMES = ("trade_cal.csv", "trade_cal.parquet")


def extend_with_file(base: SessionCalendar, path: Path, named: str | None = None) -> SessionCalendar:
    """``base`` extended by a trade_cal file; raises when the two disagree on a day both know."""
    days, is_open = read_calendar_file(path)
    open_days = pd.DatetimeIndex(days[is_open])
    overlap = (days >= base.sessions[0]) & (days <= base.known_until)
    if overlap.any():
        in_base = np.isin(days[overlap], base.values)
        disagree = np.flatnonzero(in_base != is_open[overlap])
        if len(disagree):
            day = pd.Timestamp(days[overlap][disagree[0]])
            said = "open" if is_open[overlap][disagree[0]] else "closed"
            truth = "a session" if in_base[disagree[0]] else "not a session"
            raise CalendarFileError(
                f"{path.name}: {day.date()} is {said} in the file (column is_open) but {truth} for {base.description}; "
                "fix the file or remove that row"
            )
    later = days[days > base.known_until]
    if len(later) == 0:
        return base
    # Only a contiguous run of known days extends the horizon: a gap would be an unknown day.
    expected = pd.date_range(base.known_until + pd.Timedelta(days=1), later.max())
    known = pd.DatetimeIndex(later)
    missing = expected.difference(known)
    until = (missing[0] - pd.Timedelta(days=1)) if len(missing) else later.max()
    extra = open_days[(open_days > base.known_until) & (open_days <= until)]
    return SessionCalendar(
        base.sessions.append(extra),
        pd.Timestamp(until),
        f"{base.description} + {path.name} to {pd.Timestamp(until).date()}",
        hint_for(path.parent, named),
    )


def calendar_file_for(source: str, calendar_path: str | None) -> tuple[Path | None, str | None]:
    """(file, how it was named): FACTOR_PIPELINE_CALENDAR first, else trade_cal.* in the input directory."""
    if calendar_path:
        path = Path(calendar_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{CALENDAR_ENV}={calendar_path!r}: no such file")
        return path, str(path)
    if str(source).strip().lower() != "synthetic":
        directory = Path(source).expanduser()
        if directory.is_dir():
            found = [p for p in directory.iterdir() if p.name.lower() in CALENDAR_FILE_NAMES]
            if len(found) > 1:
                raise CalendarFileError(f"both {found[0].name} and {found[1].name} are in {directory}: keep one")
            if found:
                return found[0], None
    return None, None


def _file_stamp(path: Path | None) -> tuple:
    if path is None:
        return ()
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _resolve_cached(source: str, path: Path | None, named: str | None, stamp: tuple) -> SessionCalendar:
    base = exchange_calendar()
    if path is not None:
        return extend_with_file(base, path, named)
    if source.strip().lower() == "synthetic":
        return synthetic_calendar()
    directory = Path(source).expanduser()
    return SessionCalendar(base.sessions, base.known_until, base.description, hint_for(directory, None))


def resolve(source: str = "synthetic", calendar_path: str | None = None) -> SessionCalendar:
    """The calendar of a source: exchange-calendars, extended by a file or (embedded market) the synthetic calendar."""
    path, named = calendar_file_for(source, calendar_path)
    return _resolve_cached(str(source), path, named, _file_stamp(path))

"""The tushare source's entry point: the token from TUSHARE_TOKEN, the months a run needs fetched first.

The token is read here, at fetch time, and handed to the client wrapped in a Token; it is never a resource
field, so it stays out of run config, metadata, provenance and the event log.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from factor_pipeline.config import Config
from factor_pipeline.market import session_calendar
from factor_pipeline.market.tushare import fetch
from factor_pipeline.market.tushare.client import (
    CALLS_PER_MINUTE_BY_POINTS,
    DEFAULT_URL,
    Throttle,
    Token,
    TushareAuthError,
    TushareClient,
    calls_per_minute,
)

SOURCE_NAME = "tushare"
TOKEN_ENV = "TUSHARE_TOKEN"
URL_ENV = "FACTOR_PIPELINE_TUSHARE_URL"  # another endpoint (a proxy, or the tests' local server)
POINTS_ENV = "TUSHARE_POINTS"  # the account's points, which set its calls a minute
RATE_ENV = "TUSHARE_CALLS_PER_MINUTE"  # or the rate itself, for a tier the points table does not list
TIMEZONE = ZoneInfo("Asia/Shanghai")


def is_tushare(source: str) -> bool:
    return str(source).strip().lower() == SOURCE_NAME


def raw_dir(home: str | Path) -> Path:
    return Path(home) / "tushare"


def calendar_file(home: str | Path) -> str | None:
    path = raw_dir(home) / fetch.CALENDAR_FILE
    return str(path) if path.is_file() else None


def rate_per_minute() -> int:
    """The account's calls a minute: TUSHARE_CALLS_PER_MINUTE, else TUSHARE_POINTS' tier, else the lowest tier's."""
    for name, parse in ((RATE_ENV, int), (POINTS_ENV, lambda v: calls_per_minute(int(v)))):
        text = os.environ.get(name, "").strip()
        if text:
            try:
                return parse(text.replace(",", ""))
            except ValueError:
                raise ValueError(f"{name}={text!r} is not a whole number") from None
    return CALLS_PER_MINUTE_BY_POINTS[0][1]


def client(log: logging.Logger | None = None) -> TushareClient:
    token = os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise TushareAuthError(f"FACTOR_PIPELINE_SOURCE=tushare needs {TOKEN_ENV}: set it to your Tushare Pro token")
    return TushareClient(Token(token), url=os.environ.get(URL_ENV) or DEFAULT_URL, log=log,
                         throttle=Throttle(rate_per_minute()))


def fetch_months(home: str | Path, months: list[str], log: logging.Logger | None = None, today=None) -> list[dict]:
    """Fetch each month, in order, up to today in Shanghai (a day not yet published is asked again later)."""
    today = today or dt.datetime.now(TIMEZONE).date()
    return fetch.fetch_months(client(log), raw_dir(home), months, today, log)


def plan_lines(home: str | Path, months: list[str]) -> list[str]:
    """What a fetch of ``months`` costs, before anything is fetched: its calls, and its time at each points tier
    (the throttle's pace; the service's own answers add to it)."""
    stored = set(fetch.months_stored(raw_dir(home)))
    calls = fetch.planned_calls(months, stored)
    lines = [f"tushare: {len(months)} months ({months[0]}..{months[-1]}), {len(set(months) - stored)} not fetched yet: "
             f"about {calls:,} calls"]
    for points, rate in CALLS_PER_MINUTE_BY_POINTS:
        lines.append(f"  at {points:,} points ({rate} calls a minute): at least {calls / rate:.0f} minutes")
    lines.append(f"  this account ({POINTS_ENV}/{RATE_ENV}): {rate_per_minute()} calls a minute, at least "
                 f"{calls / rate_per_minute():.0f} minutes")
    return lines


def backfill_months(first: str, last: str, cfg: Config) -> list[str]:
    """first..last and the history before it: the first month's training window, and the bars its first
    samples' feature windows read (the planner takes the first month fetched as the source's first)."""
    from factor_pipeline.features.daily import FEATURE_LOOKBACK_MONTHS
    from factor_pipeline.features.samples import SEQUENCE_LOOKBACK_MONTHS
    from factor_pipeline.model import training

    train_month = training.training_month(first, cfg.model.retrain_months)
    start = first
    if training.window_start_position(train_month, cfg) >= 0:
        start = min(first, training.window_months(train_month, cfg)[0])
    start = session_calendar.shift_month(start, -(FEATURE_LOOKBACK_MONTHS + SEQUENCE_LOOKBACK_MONTHS))
    return session_calendar.months_between(start, last)

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
from factor_pipeline.market.tushare.client import DEFAULT_URL, Token, TushareAuthError, TushareClient

SOURCE_NAME = "tushare"
TOKEN_ENV = "TUSHARE_TOKEN"
URL_ENV = "FACTOR_PIPELINE_TUSHARE_URL"  # another endpoint (a proxy, or the tests' local server)
TIMEZONE = ZoneInfo("Asia/Shanghai")


def is_tushare(source: str) -> bool:
    return str(source).strip().lower() == SOURCE_NAME


def raw_dir(home: str | Path) -> Path:
    return Path(home) / "tushare"


def calendar_file(home: str | Path) -> str | None:
    path = raw_dir(home) / fetch.CALENDAR_FILE
    return str(path) if path.is_file() else None


def client(log: logging.Logger | None = None) -> TushareClient:
    token = os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise TushareAuthError(f"FACTOR_PIPELINE_SOURCE=tushare needs {TOKEN_ENV}: set it to your Tushare Pro token")
    return TushareClient(Token(token), url=os.environ.get(URL_ENV) or DEFAULT_URL, log=log)


def fetch_months(home: str | Path, months: list[str], log: logging.Logger | None = None, today=None) -> list[dict]:
    """Fetch each month, in order, up to today in Shanghai (a day not yet published is asked again later)."""
    today = today or dt.datetime.now(TIMEZONE).date()
    api = client(log)
    return [fetch.fetch_month(api, raw_dir(home), month, today, log) for month in months]


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

"""Dagster's monthly partitions: one per month, keyed ``YYYY-MM``, from the first month the pipeline handles."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from factor_pipeline.market.session_calendar import FIRST_MONTH, shift_month

# The exchange's time: months, schedules and the lateness check turn over at midnight here.
TIMEZONE = "Asia/Shanghai"


def monthly_partitions():
    """Dagster partitions: one per month from FIRST_MONTH to the current month, every year, without end.

    The current, unfinished month is a partition too, so that its bars can be loaded as they arrive and the
    previous month's "latest IC" can be evaluated on a partial month, as the seed reports it. The partitions
    do not depend on the calendar: a month past it exists and fails, when materialised, naming the file to
    supply.
    """
    return dg.MonthlyPartitionsDefinition(
        start_date=FIRST_MONTH,
        end_offset=1,
        timezone=TIMEZONE,
        fmt="%Y-%m",
    )


def month_just_ended(moment: dt.datetime) -> str:
    """The month before ``moment``'s month in Shanghai time (a naive ``moment`` is Shanghai time already)."""
    local = moment.astimezone(ZoneInfo(TIMEZONE)) if moment.tzinfo else moment
    return shift_month(local.strftime("%Y-%m"), -1)

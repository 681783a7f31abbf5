"""The monthly schedules and the daily partial-month sensor, in Asia/Shanghai time.

Daily bars of the month's last session are published by the data vendors the same evening, so on the
1st of the next month at 06:00 every bar of the month just ended exists, whatever holidays closed its
last calendar days. The factor run targets that month; the evaluation run, three hours later, evaluates
the month before it, whose holding period has just ended, and refreshes the report.

Between those, the partial-month sensor loads each evening's bars into the current month and evaluates the
previous month's factor on them: an evaluation marked incomplete, with ``as_of`` the newest session, which
the report shows as its "Latest IC" until the month completes.
"""


import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd

from factor_pipeline.datasets import EVALUATION_ASSETS, FACTOR_ASSETS, PARTIAL_MONTH_ASSETS
from factor_pipeline.market import session_calendar
from factor_pipeline.pipeline import dagster_internals
from factor_pipeline.pipeline.checks import factor_on_time
from factor_pipeline.pipeline.partitions import TIMEZONE, month_just_ended, monthly_partitions
from factor_pipeline.pipeline.resources import PipelineResource

# The lateness check asks about the month just ended, not the month a run builds: it runs on its own schedule.
LATENESS_CHECK = dg.AssetSelection.checks(factor_on_time)

monthly_factor_job = dg.define_asset_job(
    "monthly_factor_job",
    selection=dg.AssetSelection.assets(*FACTOR_ASSETS) - LATENESS_CHECK,
    description="Bars, features, samples, GAN, GRU checkpoint and pRet of one month.",
)
monthly_evaluation_job = dg.define_asset_job(
    "monthly_evaluation_job",
    selection=dg.AssetSelection.assets(*EVALUATION_ASSETS),
    description="IC, portfolio and industry attribution of one month's factor, and the report.",
)
all_assets_job = dg.define_asset_job(
    "all_assets_job", selection=dg.AssetSelection.all() - LATENESS_CHECK, description="Every asset of one month."
)


@dg.schedule(
    cron_schedule="0 6 1 * *",
    execution_timezone=TIMEZONE,
    job=monthly_factor_job,
    description="06:00 Shanghai on the 1st: the factor of the month just ended.",
)
def monthly_factor_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    month = month_just_ended(context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"factor-{month}", partition_key=month)


@dg.schedule(
    cron_schedule="0 9 1 * *",
    execution_timezone=TIMEZONE,
    job=monthly_evaluation_job,
    description="09:00 Shanghai on the 1st: evaluate the month whose holding period just ended, refresh the report.",
)
def monthly_evaluation_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    month = session_calendar.shift_month(month_just_ended(context.scheduled_execution_time), -1)
    return dg.RunRequest(run_key=f"evaluation-{month}", partition_key=month)


factor_freshness_job = dg.define_asset_job(
    "factor_freshness_job",
    selection=LATENESS_CHECK,
    description="Whether the month just ended has its factor.",
)

# Two hours after the factor's scheduled run would have finished: a month still missing then is flagged
# in the UI (a failed WARN check on pret_factor), whatever the reason (a failed run, a schedule left off).
factor_freshness_schedule = dg.ScheduleDefinition(
    name="factor_freshness_schedule",
    cron_schedule="0 8 2 * *",
    execution_timezone=TIMEZONE,
    job=factor_freshness_job,
    description="08:00 Shanghai on the 2nd: flag the month just ended if its factor is still missing.",
)

# Vendors publish a session's bars the same evening; from 20:00 Shanghai the day's bars are taken to exist.
BARS_PUBLISHED_AT = dt.time(20, 0)


def newest_published_session(now: dt.datetime) -> pd.Timestamp:
    """The newest session whose daily bars are published at ``now``, on the active session calendar."""
    local = now.astimezone(ZoneInfo(TIMEZONE))
    day = pd.Timestamp(local.date())
    if local.time() < BARS_PUBLISHED_AT:
        day -= pd.Timedelta(days=1)
    return session_calendar.sessions_between(day - pd.Timedelta(days=40), day)[-1]


def partial_month_targets(session: pd.Timestamp) -> dict[str, list[str]]:
    """What one evening's refresh materialises: the bars of the session's month so far, and the previous
    month's evaluation on them (partial until the session's month is complete) with its report."""
    month = session_calendar.month_of(session)
    previous = session_calendar.shift_month(month, -1)
    return {"raw_bars": [month], "factor_evaluation": [previous], "factor_report": [previous]}


@dg.sensor(
    name="partial_month_sensor",
    asset_selection=list(PARTIAL_MONTH_ASSETS),
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Each evening after 20:00 Shanghai: the current month's bars so far, and the previous month's "
    "IC on them (marked as of that session), as one asset backfill.",
)
def partial_month_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
    pipeline.activate_calendar()
    try:
        session = newest_published_session(dagster_internals.now())
    except session_calendar.CalendarHorizonError as exc:
        return dg.SkipReason(str(exc))
    if context.cursor == str(session.date()):
        return dg.SkipReason(f"the bars of {session.date()} are loaded and evaluated already")
    subset = dagster_internals.asset_graph_subset(partial_month_targets(session), monthly_partitions())
    # A backfill, not a run: the evaluation must wait for the bars, and a run covers one partition.
    request = dg.RunRequest.for_asset_graph_subset(subset, tags={"factor_pipeline/partial_as_of": str(session.date())})
    return dg.SensorResult(run_requests=[request], cursor=str(session.date()))


ALL_JOBS = [monthly_factor_job, monthly_evaluation_job, all_assets_job, factor_freshness_job]
ALL_SCHEDULES = [monthly_factor_schedule, monthly_evaluation_schedule, factor_freshness_schedule]
ALL_SENSORS = [partial_month_sensor]

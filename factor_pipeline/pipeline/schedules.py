"""The monthly schedule, in Asia/Shanghai time.

Daily bars of the month's last session are published by the data vendors the same evening, so on the
1st of the next month at 06:00 every bar of the month just ended exists, whatever holidays closed its
last calendar days. The factor run targets that month; the evaluation run, three hours later, evaluates
the month before it, whose holding period has just ended, and refreshes the report.
"""


import datetime as dt

import dagster as dg

from factor_pipeline.market import session_calendar
from factor_pipeline.pipeline.checks import factor_on_time

TIMEZONE = "Asia/Shanghai"
FACTOR_ASSETS = ["raw_bars", "features", "samples", "gan_sequences", "gru_checkpoint", "pret_factor"]
EVALUATION_ASSETS = ["factor_evaluation", "factor_report"]

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


def month_just_ended(tick: dt.datetime) -> str:
    """The month before the tick's date in Shanghai time."""
    local = tick.astimezone(dt.timezone(dt.timedelta(hours=8))) if tick.tzinfo else tick
    return session_calendar.shift_month(local.strftime("%Y-%m"), -1)


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

ALL_JOBS = [monthly_factor_job, monthly_evaluation_job, all_assets_job, factor_freshness_job]
ALL_SCHEDULES = [monthly_factor_schedule, monthly_evaluation_schedule, factor_freshness_schedule]

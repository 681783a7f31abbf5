import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from factor_pipeline.pipeline.definitions import defs
from factor_pipeline.market.session_calendar import rebalance_date
from factor_pipeline.pipeline.schedules import monthly_evaluation_schedule, monthly_factor_schedule

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _tick(schedule, when):
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
        )
        return schedule.evaluate_tick(context).run_requests


@pytest.mark.parametrize(
    "tick, month",
    [
        (dt.datetime(2024, 3, 1, 6, tzinfo=SHANGHAI), "2024-02"),
        # January 2025's last calendar days are Spring Festival holidays: the tick still targets January.
        (dt.datetime(2025, 2, 1, 6, tzinfo=SHANGHAI), "2025-01"),
        (dt.datetime(2025, 1, 1, 6, tzinfo=SHANGHAI), "2024-12"),
    ],
)
def test_factor_schedule_targets_the_month_just_ended(tick, month):
    requests = _tick(monthly_factor_schedule, tick)
    assert [r.partition_key for r in requests] == [month]
    # Its last session closed before the tick, so its data can exist.
    assert rebalance_date(month).date() < tick.date()


def test_evaluation_schedule_targets_the_month_whose_holding_period_ended():
    requests = _tick(monthly_evaluation_schedule, dt.datetime(2025, 2, 1, 9, tzinfo=SHANGHAI))
    assert [r.partition_key for r in requests] == ["2024-12"]


def test_schedules_run_in_shanghai_time_and_are_registered():
    assert monthly_factor_schedule.execution_timezone == "Asia/Shanghai"
    assert monthly_factor_schedule.cron_schedule == "0 6 1 * *"
    names = {s.name for s in defs.schedules}
    assert names == {"monthly_factor_schedule", "monthly_evaluation_schedule", "factor_freshness_schedule"}


@pytest.mark.parametrize(
    "tick, factor_month, evaluated_month",
    [
        (dt.datetime(2027, 1, 1, 6, tzinfo=SHANGHAI), "2026-12", "2026-11"),
        (dt.datetime(2027, 2, 1, 6, tzinfo=SHANGHAI), "2027-01", "2026-12"),
    ],
)
def test_the_schedules_keep_ticking_past_the_library_calendar(tmp_path, tick, factor_month, evaluated_month):
    from dagster._core.test_utils import freeze_time

    from factor_pipeline.pipeline import partitions
    from factor_pipeline.market import session_calendar
    from factor_pipeline_tests.market.test_session_calendar import write_trade_cal

    write_trade_cal(tmp_path / "trade_cal.csv")
    previous = session_calendar.active()
    session_calendar.activate(session_calendar.resolve(str(tmp_path)))
    try:
        with freeze_time(tick):
            factor = _tick(monthly_factor_schedule, tick)
            evaluation = _tick(monthly_evaluation_schedule, tick.replace(hour=9))
            keys = partitions.monthly_partitions().get_partition_keys()
        assert [r.partition_key for r in factor] == [factor_month]
        assert [r.partition_key for r in evaluation] == [evaluated_month]
        assert factor_month in keys and evaluated_month in keys
        assert session_calendar.rebalance_date(factor_month).date() < tick.date()
    finally:
        session_calendar.activate(previous)


def test_the_freshness_check_flags_a_month_whose_factor_is_missing_at_eight_on_the_second(tmp_path):
    import pandas as pd
    from dagster._core.test_utils import freeze_time

    from factor_pipeline.pipeline.assets import ALL_ASSETS
    from factor_pipeline.pipeline.checks import factor_on_time
    from factor_pipeline.pipeline.resources import PipelineResource
    from factor_pipeline.pipeline.schedules import factor_freshness_job, factor_freshness_schedule
    from factor_pipeline.storage import write_parquet
    from factor_pipeline_tests.market.test_input_files import raw_frames, write_dir

    assert factor_freshness_schedule.cron_schedule == "0 8 2 * *"
    pipeline = PipelineResource(home=str(tmp_path / "home"), source=str(write_dir(tmp_path / "in", *raw_frames())), profile="smoke")
    with dg.instance_for_test() as instance:
        job = dg.Definitions(
            assets=ALL_ASSETS, asset_checks=[factor_on_time], jobs=[factor_freshness_job], resources={"pipeline": pipeline}
        ).resolve_job_def("factor_freshness_job")

        def evaluate():
            with freeze_time(dt.datetime(2024, 3, 2, 8, tzinfo=SHANGHAI)):
                (evaluation,) = job.execute_in_process(instance=instance, raise_on_error=False).get_asset_check_evaluations()
            return evaluation

        missing = evaluate()
        assert not missing.passed and missing.metadata["month"].value == "2024-02"
        layout = pipeline.layout
        write_parquet(pd.DataFrame({"ts_code": ["600000.SH"], "pret": [0.1]}), layout.partition("factor", "2024-02"), layout.stamp("factor", "2024-02"))
        assert evaluate().passed

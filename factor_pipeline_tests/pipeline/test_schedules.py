import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from factor_pipeline.pipeline.dagster_internals import freeze_time
from factor_pipeline.pipeline.definitions import defs
from factor_pipeline.market.session_calendar import rebalance_date
from factor_pipeline.pipeline.schedules import monthly_evaluation_schedule, monthly_factor_schedule

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _tick(schedule, when):
    # The context is closed too: left open, it leaves its instance's state storage as the process's current
    # one, and a later test that loads definitions finds an instance that is gone.
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
    ) as context:
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
    assert {s.name for s in defs.sensors} == {"partial_month_sensor"}


@pytest.mark.parametrize(
    "tick, factor_month, evaluated_month",
    [
        (dt.datetime(2027, 1, 1, 6, tzinfo=SHANGHAI), "2026-12", "2026-11"),
        (dt.datetime(2027, 2, 1, 6, tzinfo=SHANGHAI), "2027-01", "2026-12"),
    ],
)
def test_the_schedules_keep_ticking_past_the_library_calendar(tmp_path, tick, factor_month, evaluated_month):
    from factor_pipeline.pipeline import partitions
    from factor_pipeline.market import calendar_source, session_calendar
    from factor_pipeline_tests.market.test_session_calendar import write_trade_cal

    write_trade_cal(tmp_path / "trade_cal.csv")
    previous = session_calendar.active()
    session_calendar.activate(calendar_source.resolve(str(tmp_path)))
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


def _partial_tick(when, cursor=None, home=None):
    from factor_pipeline.pipeline.resources import PipelineResource
    from factor_pipeline.pipeline.schedules import partial_month_sensor

    with dg.instance_for_test() as instance, freeze_time(when), dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=defs.get_repository_def(),
        resources={"pipeline": PipelineResource(home=str(home or "/nonexistent"))},
    ) as context:
        return partial_month_sensor.evaluate_tick(context)


def _requested(tick) -> dict[str, list[str]]:
    (request,) = tick.run_requests
    subset = request.asset_graph_subset  # a backfill request: Runs > Backfills lists what it launches
    return {key.path[-1]: list(subset.get_partitions_subset(key).get_partition_keys()) for key in subset.asset_keys}


def test_the_partial_month_sensor_loads_each_evenings_bars_and_evaluates_the_previous_month_once():
    evening = dt.datetime(2024, 4, 16, 21, tzinfo=SHANGHAI)  # a Tuesday, after the bars are published
    tick = _partial_tick(evening)
    assert _requested(tick) == {"raw_bars": ["2024-04"], "factor_evaluation": ["2024-03"], "factor_report": ["2024-03"]}
    assert tick.cursor == "2024-04-16"
    assert "loaded and evaluated already" in _partial_tick(evening.replace(hour=23), cursor=tick.cursor).skip_message
    # The next morning the newest published session is still the 16th; that evening it is the 17th.
    assert _partial_tick(dt.datetime(2024, 4, 17, 10, tzinfo=SHANGHAI), cursor=tick.cursor).skip_message
    assert _partial_tick(dt.datetime(2024, 4, 17, 20, 30, tzinfo=SHANGHAI), cursor=tick.cursor).cursor == "2024-04-17"
    # Over a weekend and the 1st: Monday morning still has Friday 29 March, of March.
    monday = _partial_tick(dt.datetime(2024, 4, 1, 9, tzinfo=SHANGHAI))
    assert monday.cursor == "2024-03-29" and _requested(monday)["factor_evaluation"] == ["2024-02"]


@pytest.mark.slow
def test_the_partial_months_refresh_marks_the_evaluation_as_of_its_newest_bar_and_the_report_uses_it(tmp_path):
    """What the sensor's backfill materialises, on input files whose newest month has bars to the 16th."""
    import numpy as np
    import pandas as pd
    from factor_pipeline.config import MarketConfig
    from factor_pipeline.market.synthetic import generate_market
    from factor_pipeline.pipeline.assets import ALL_ASSETS
    from factor_pipeline.pipeline.resources import PipelineResource
    from factor_pipeline.storage import read_months, write_parquet

    market = generate_market(MarketConfig(n_stocks=40, start="2023-12-01", end="2024-04-30"))
    source = tmp_path / "input"
    source.mkdir()
    market.daily[market.daily["trade_date"] <= "2024-04-16"].to_parquet(source / "daily.parquet", index=False)
    market.stocks.to_parquet(source / "stocks.parquet", index=False)
    pipeline = PipelineResource(home=str(tmp_path / "home"), source=str(source), profile="smoke")
    evening = dt.datetime(2024, 4, 16, 21, tzinfo=SHANGHAI)
    with dg.instance_for_test() as instance, freeze_time(evening):
        def materialise(asset, month):
            result = dg.materialize(ALL_ASSETS, selection=[asset], partition_key=month, resources={"pipeline": pipeline}, instance=instance)
            assert result.success, (asset, month)

        materialise("raw_bars", "2024-03")
        layout = pipeline.layout
        # March's factor, as the 1 April schedule would have built it (any factor does for the dates).
        stocks = read_months(layout, "raw_bars/stocks", ["2024-03"])
        rng = np.random.default_rng(0)  # the columns the factor table always has: the size and the reversal
        factor = stocks[["ts_code", "industry"]].assign(
            buyable=True, log_float_mcap=rng.normal(22.0, 1.0, len(stocks)), pret=rng.normal(size=len(stocks)),
            reversal_20d=rng.normal(size=len(stocks)),
        )
        write_parquet(factor, layout.partition("factor", "2024-03"), layout.stamp("factor", "2024-03"))

        requested = _requested(_partial_tick(evening, home=tmp_path / "home"))
        for asset in ("raw_bars", "factor_evaluation", "factor_report"):  # the backfill's dependency order
            (month,) = requested[asset]
            materialise(asset, month)

    ic = read_months(layout, "eval/ic", ["2024-03"])
    assert not ic["complete"].iloc[0] and ic["as_of"].iloc[0] == pd.Timestamp("2024-04-16")
    report = (layout.reports / "2024-03" / "report.md").read_text(encoding="utf-8")
    assert "Latest IC (2024-03, as of 2024-04-16)" in report

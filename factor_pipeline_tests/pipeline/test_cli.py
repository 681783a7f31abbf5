from factor_pipeline.market import session_calendar
from factor_pipeline.pipeline.cli import plan_backfill
from factor_pipeline.storage import Layout


def test_plan_adds_the_upstream_months_a_training_window_needs_and_orders_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTOR_PIPELINE_PROFILE", "smoke")
    runs = plan_backfill("2024-05", "2024-06", Layout(tmp_path))
    done = set()
    for run in runs:
        assert run.deps <= done, (run.month, run.assets)
        done |= {(a, run.month) for a in run.assets}
    months_with_samples = sorted(m for a, m in done if a == "samples")
    # May's model was trained at 2023-12: its window reaches months before the range.
    assert months_with_samples[0] < "2024-01"
    # Every evaluation a report covers is done before it.
    order = [(a, r.month) for r in runs for a in r.assets]
    assert order.index(("factor_report", "2024-06")) > order.index(("factor_evaluation", "2024-05"))
    # June's evaluation needs July's bars, so July's bars are planned.
    assert ("raw_bars", "2024-07") in done and ("pret_factor", "2024-07") not in done


def test_plan_skips_upstream_months_already_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTOR_PIPELINE_PROFILE", "smoke")
    layout = Layout(tmp_path)
    cold = plan_backfill("2024-05", "2024-05", layout)
    for month in session_calendar.months_between("2022-01", "2024-04"):
        path = layout.partition("raw_bars/daily", month)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    warm = plan_backfill("2024-05", "2024-05", layout)
    raw_before = {r.month for r in warm if "raw_bars" in r.assets}
    assert all(m >= "2024-05" for m in raw_before)
    assert len(warm) <= len(cold)


def test_failure_reasons_say_what_the_ui_shows():
    import dagster as dg

    from factor_pipeline.pipeline.cli import failure_reasons

    spec = dg.AssetCheckSpec("bars_quality", asset="bars", blocking=True)

    @dg.asset(check_specs=[spec])
    def bars():
        return dg.MaterializeResult(
            check_results=[dg.AssetCheckResult(check_name="bars_quality", passed=False, metadata={"problems": "3 rows with a non-positive price"})]
        )

    @dg.asset
    def features():
        raise ValueError("raw_bars/daily/2020-12.parquet does not exist")

    checked = failure_reasons(dg.materialize([bars], raise_on_error=False).all_events)
    assert checked == ["bars check bars_quality: 3 rows with a non-positive price"]
    failed = failure_reasons(dg.materialize([features], raise_on_error=False).all_events)
    assert len(failed) == 1 and "features failed" in failed[0]
    assert "ValueError: raw_bars/daily/2020-12.parquet does not exist" in failed[0]


def _layout_with_data_from(tmp_path, first: str) -> Layout:
    from factor_pipeline.storage import DATASET_CONFIG_SECTIONS, Identity

    months = session_calendar.months_between(first, "2026-12")
    identity = Identity("a market", "smoke", {d: "cfg" for d in DATASET_CONFIG_SECTIONS}, {m: m for m in months})
    return Layout(tmp_path, identity)


def test_history_before_the_source_is_never_planned_and_a_range_that_needs_it_is_refused(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setenv("FACTOR_PIPELINE_PROFILE", "smoke")
    layout = _layout_with_data_from(tmp_path, "2021-01")
    # The mappings declare the longest lookback of any month (back to 2020-06 here); no step reads it.
    runs = plan_backfill("2022-01", "2022-02", layout)
    planned = {(a, r.month) for r in runs for a in r.assets}
    assert min(m for _, m in planned) == "2021-01"
    assert ("samples", "2021-07") in planned  # the training window of 2021-12 is really read
    with pytest.raises(session_calendar.PartitionKeyError, match="first month that can be backfilled is 2021-12"):
        plan_backfill("2021-03", "2021-04", layout)
    with pytest.raises(session_calendar.PartitionKeyError, match="source's first month is 2021-01"):
        plan_backfill("2020-11", "2021-04", layout)

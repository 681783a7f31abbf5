import dagster as dg
import pytest

from factor_pipeline.market import session_calendar
from factor_pipeline.pipeline.backfill_command import submit_backfill
from factor_pipeline.pipeline.backfill_plan import backfill_targets, describe_months
from factor_pipeline.pipeline.dagster_internals import backfill_run_ranges
from factor_pipeline.storage import Layout


def test_targets_add_the_upstream_months_the_range_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTOR_PIPELINE_PROFILE", "smoke")
    targets = backfill_targets("2024-05", "2024-06", Layout(tmp_path))
    for asset in ("gan_model", "gru_checkpoint", "pret_factor", "factor_evaluation", "factor_report"):
        assert {"2024-05", "2024-06"} <= set(targets[asset]), asset
    # May's model was trained at 2023-12: its window reaches months before the range.
    assert targets["samples"][0] < "2024-01"
    # May's turnover needs April's holdings, so April's factor (and its model pointers) are targeted.
    assert "2024-04" in targets["pret_factor"] and "2024-04" in targets["gru_checkpoint"]
    # June's evaluation needs July's bars; nothing else of July is built, and no report or evaluation
    # outside the range (a report covers the evaluated months, so an extra one would change it).
    assert "2024-07" in targets["raw_bars"] and "2024-07" not in targets["features"]
    assert targets["factor_evaluation"] == targets["factor_report"] == ["2024-05", "2024-06"]


def test_targets_skip_upstream_months_already_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTOR_PIPELINE_PROFILE", "smoke")
    layout = Layout(tmp_path)
    cold = backfill_targets("2024-05", "2024-05", layout)
    for month in session_calendar.months_between("2022-01", "2024-04"):
        path = layout.partition("raw_bars/daily", month)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    warm = backfill_targets("2024-05", "2024-05", layout)
    assert cold["raw_bars"][0] < "2024-05"
    assert warm["raw_bars"] == ["2024-05", "2024-06"]
    assert warm["features"] == cold["features"]  # only what is on disk is left out


def test_failure_reasons_say_what_the_ui_shows():
    from factor_pipeline.pipeline.backfill_watch import failure_reasons

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
    from factor_pipeline.datasets import DATASET_CONFIG_SECTIONS
    from factor_pipeline.storage import Identity

    months = session_calendar.months_between(first, "2026-12")
    identity = Identity("a market", "smoke", {d: "cfg" for d in DATASET_CONFIG_SECTIONS}, {m: m for m in months})
    return Layout(tmp_path, identity)


def test_history_before_the_source_is_never_targeted_and_a_range_that_needs_it_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTOR_PIPELINE_PROFILE", "smoke")
    layout = _layout_with_data_from(tmp_path, "2021-01")
    # The mappings declare the longest lookback of any month (back to 2020-06 here); no step reads it.
    targets = backfill_targets("2022-01", "2022-02", layout)
    assert min(months[0] for months in targets.values()) == "2021-01"
    assert "2021-07" in targets["samples"]  # the training window of 2021-12 is really read
    with pytest.raises(session_calendar.PartitionKeyError, match="first month that can be backfilled is 2021-12"):
        backfill_targets("2021-03", "2021-04", layout)
    with pytest.raises(session_calendar.PartitionKeyError, match="source's first month is 2021-01"):
        backfill_targets("2020-11", "2021-04", layout)


def test_the_submitted_backfill_is_the_asset_backfill_of_the_targets_with_one_run_per_asset_and_range():
    from factor_pipeline.pipeline.definitions import defs

    targets = {"raw_bars": session_calendar.months_between("2023-01", "2024-08"), "factor_report": ["2024-05", "2024-06"]}
    with dg.instance_for_test() as instance:
        backfill_id = submit_backfill(instance, targets, "a title", {"execution": {"config": {"in_process": {}}}})
        (stored,) = instance.get_backfills()
        assert stored.backfill_id == backfill_id and stored.is_asset_backfill and stored.title == "a title"
        subset = stored.asset_backfill_data.target_subset
        assert {key.path[-1]: sorted(subset.get_partitions_subset(key).get_partition_keys()) for key in subset.asset_keys} == targets
    # What the daemon launches for that subset: the months of each asset in one run (its backfill policy).
    ranges = backfill_run_ranges(targets, defs.resolve_asset_graph())
    assert ranges == [("factor_report", "2024-05", "2024-06"), ("raw_bars", "2023-01", "2024-08")]


def test_months_are_described_as_ranges():
    assert describe_months(["2023-11", "2023-12", "2024-01", "2024-03"]) == "2023-11..2024-01, 2024-03"


def test_a_stored_runs_failure_reasons_name_the_failed_months_check_problems():
    from factor_pipeline.pipeline.assets import _each_month, monthly
    from factor_pipeline.pipeline.backfill_watch import run_failure_reasons

    spec = dg.AssetCheckSpec("bars_quality", asset="bars", blocking=True)

    @dg.asset(partitions_def=monthly, backfill_policy=dg.BackfillPolicy.single_run(), check_specs=[spec])
    def bars(context: dg.AssetExecutionContext):
        def month(m):
            problems = "12 rows with high/low inconsistent with open/close" if m == "2024-03" else "none"
            check = dg.AssetCheckResult(check_name="bars_quality", passed=problems == "none", metadata={"problems": problems})
            return dg.MaterializeResult(check_results=[check])

        yield from _each_month(context, month)

    with dg.instance_for_test() as instance:
        tags = {"dagster/asset_partition_range_start": "2024-02", "dagster/asset_partition_range_end": "2024-04"}
        result = dg.materialize([bars], tags=tags, instance=instance, raise_on_error=False)
        assert run_failure_reasons(instance, result.run_id) == [
            "bars check bars_quality: 2024-03: 12 rows with high/low inconsistent with open/close"
        ]

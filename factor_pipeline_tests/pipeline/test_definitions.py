import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd

from factor_pipeline.datasets import ASSETS
from factor_pipeline.pipeline.definitions import all_assets_job, defs

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load_with_the_monthly_chain():
    graph = defs.resolve_asset_graph()
    keys = {key.path[-1] for key in graph.get_all_asset_keys()}
    assert keys == set(ASSETS)
    for upstream, downstream in zip(ASSETS, ASSETS[1:]):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys or upstream == "gru_checkpoint"
    assert dg.AssetKey("gru_checkpoint") in graph.get(dg.AssetKey("pret_factor")).parent_keys
    for key in keys:
        assert graph.get(dg.AssetKey(key)).partitions_def is not None
    assert all_assets_job().name == "all_assets_job"


def test_each_asset_has_a_docstring_for_the_ui():
    for asset in defs.resolve_asset_graph().assets_defs:
        for key in asset.keys:
            assert asset.descriptions_by_key.get(key), key


def test_training_steps_share_the_gpu_pool_and_checks_block():
    graph = defs.resolve_asset_graph()
    for name in ("gan_model", "gru_checkpoint"):
        assert graph.get(dg.AssetKey(name)).pools == {"gpu"}
    check_keys = graph.asset_check_keys
    assert {key.name for key in check_keys} >= {"bars_quality", "features_quality", "samples_quality", "pret_quality"}
    data_checks = [key for key in check_keys if key.name != "factor_on_time"]
    for key in data_checks:
        assert graph.get_check_spec(key).blocking
    # Lateness is a warning in the UI, not a reason to stop a month's downstream steps.
    assert not graph.get_check_spec(next(k for k in check_keys if k.name == "factor_on_time")).blocking


def test_a_report_waits_for_the_previous_months_report_and_so_for_every_earlier_evaluation():
    graph = defs.resolve_asset_graph()
    report = dg.AssetKey("factor_report")
    previous = graph.get_parent_partition_keys_for_child("2024-03", report, report)
    assert set(previous.partitions_subset.get_partition_keys()) == {"2024-02"}
    own = graph.get_parent_partition_keys_for_child("2024-03", dg.AssetKey("factor_evaluation"), report)
    assert set(own.partitions_subset.get_partition_keys()) == {"2024-03"}


def test_materialisation_jobs_leave_the_lateness_check_to_its_schedule():
    for name in ("all_assets_job", "monthly_factor_job"):
        checks = {key.name for key in defs.resolve_job_def(name).asset_layer.asset_graph.asset_check_keys}
        assert "pret_quality" in checks and "factor_on_time" not in checks, name
    freshness = defs.resolve_job_def("factor_freshness_job").asset_layer.asset_graph.asset_check_keys
    assert {key.name for key in freshness} == {"factor_on_time"}


def test_evaluation_reads_the_next_month_of_bars_and_a_year_back_for_momentum():
    graph = defs.resolve_asset_graph()
    parents = graph.get_parent_partition_keys_for_child("2024-03", dg.AssetKey("raw_bars"), dg.AssetKey("factor_evaluation"))
    months = {str(p) for p in pd.period_range("2023-03", "2024-04", freq="M")}  # d(m-12) .. d(m+1)
    assert set(parents.partitions_subset.get_partition_keys()) == months


def test_dagster_definitions_validate_passes(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "FACTOR_PIPELINE_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_asset_backfills_a_range_of_months_in_one_run():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).backfill_policy == dg.BackfillPolicy.single_run(), key


def test_a_range_run_records_each_months_metadata_and_a_failed_month_fails_the_range():
    from factor_pipeline.pipeline.assets import _each_month, monthly

    spec = dg.AssetCheckSpec("quality", asset="bars", blocking=True)
    bad_months = set()

    @dg.asset(partitions_def=monthly, backfill_policy=dg.BackfillPolicy.single_run(), check_specs=[spec])
    def bars(context: dg.AssetExecutionContext):
        def month(m):
            problems = ["2 bad rows"] if m in bad_months else []
            return dg.MaterializeResult(
                metadata={"rows": int(m[-2:])},
                check_results=[dg.AssetCheckResult(check_name="quality", passed=not problems, metadata={"problems": "; ".join(problems) or "none"})],
            )

        yield from _each_month(context, month)

    range_tags = {"dagster/asset_partition_range_start": "2024-01", "dagster/asset_partition_range_end": "2024-03"}
    result = dg.materialize([bars], tags=range_tags)
    rows = {e.partition: e.event_specific_data.materialization.metadata["rows"].value for e in result.get_asset_materialization_events()}
    assert rows == {"2024-01": 1, "2024-02": 2, "2024-03": 3}
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["months"].value == "2024-01..2024-03"

    bad_months.add("2024-02")
    result = dg.materialize([bars], tags=range_tags, raise_on_error=False)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.metadata["problems"].value == "2024-02: 2 bad rows"
    # No month of the range counts as materialised, so a backfill launches nothing downstream of it.
    assert not result.success and result.get_asset_materialization_events() == []

    single = dg.materialize([bars], partition_key="2024-03")
    (check,) = single.get_asset_check_evaluations()
    assert check.passed and [e.partition for e in single.get_asset_materialization_events()] == ["2024-03"]

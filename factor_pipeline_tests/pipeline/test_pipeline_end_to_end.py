"""The whole chain on the smoke profile: CLI backfill -> Dagster runs -> Parquet -> DuckDB views -> report."""

import json

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from factor_pipeline.datasets import ASSETS
from factor_pipeline.market import calendar_source, session_calendar
from factor_pipeline_tests.conftest import run_cli

# Drives whole Dagster runs: the full lane only (`make test`), not `make test-fast`.
pytestmark = pytest.mark.slow

MONTHS = ["2024-05", "2024-06", "2024-07"]


def _query(home, sql):
    with duckdb.connect(str(home / "factor.duckdb"), read_only=True) as con:
        return con.execute(sql).df()


def test_backfill_materialises_every_month_through_the_instance(smoke_backfill):
    home, env, _ = smoke_backfill
    import os

    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with dg.DagsterInstance.get() as instance:
        for asset in ["raw_bars", "pret_factor", "factor_evaluation", "factor_report"]:
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
            months = {r.partition_key for r in records}
            assert set(MONTHS) <= months, (asset, months)
        # Upstream months the training window needs were materialised too, before the range.
        samples = {r.partition_key for r in instance.fetch_materializations(dg.AssetKey("samples"), limit=1000).records}
        assert min(samples) < MONTHS[0]


def test_the_backfill_is_one_completed_dagster_asset_backfill_covering_the_range(smoke_backfill):

    home, env, result = smoke_backfill
    import os

    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with dg.DagsterInstance.get() as instance:
        (backfill,) = instance.get_backfills()  # what Runs > Backfills lists
        assert backfill.is_asset_backfill and backfill.status.value == "COMPLETED_SUCCESS"
        target = backfill.asset_backfill_data.target_subset
        for key in target.asset_keys:
            assert set(MONTHS) <= set(target.get_partitions_subset(key).get_partition_keys()), key
        assert {key.path[-1] for key in target.asset_keys} == set(ASSETS)
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        # One run per asset's range of months (the gan, checkpoint and pRet steps share one), none outside it.
        assert len(runs) == 6 and {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
        assert len(instance.get_runs()) == len(runs)
    assert f"backfill {backfill.backfill_id} COMPLETED_SUCCESS" in result.stdout
    assert "[1/" in result.stdout and "factor_report 2024-07" in result.stdout


def test_views_answer_queries(smoke_backfill):
    home, _, _ = smoke_backfill
    counts = _query(home, "select count(*) as n, count(distinct month) as months from raw.daily_bars")
    assert counts["n"][0] > 0 and counts["months"][0] >= len(MONTHS)
    pret = _query(home, "select month, count(*) as n, min(rebalance_date) as d from factor.pret group by month order by month")
    # April is there too: May's turnover needs April's holdings.
    assert pret["month"].tolist() == ["2024-04", *MONTHS]
    for month, d in zip(pret["month"], pret["d"]):
        assert pd.Timestamp(d) == session_calendar.rebalance_date(month)
    # 2024-05 resolves to the December checkpoint; June and July to June's.
    train = _query(home, "select month, any_value(train_month) as t from factor.pret where month >= '2024-05' group by month order by month")
    assert train["t"].tolist() == ["2023-12", "2024-06", "2024-06"]
    samples = _query(home, "select count(*) as n, count(label) as labelled from features.samples where month = '2024-05'")
    assert samples["labelled"][0] > 0
    ic = _query(home, "select * from eval.ic order by month")
    assert ic["month"].tolist() == MONTHS
    assert ic["complete"].all()


def test_report_figures_equal_a_recomputation_from_the_views(smoke_backfill):
    home, env, _ = smoke_backfill
    summary = json.loads((home / "reports" / MONTHS[-1] / "summary.json").read_text())["summary"]
    ic = _query(home, "select * from eval.ic order by month")
    portfolio = _query(home, "select * from eval.portfolio order by month")
    assert summary["ic_mean"] == pytest.approx(ic["ic"].mean(), abs=1e-12)
    assert summary["icir"] == pytest.approx(ic["ic"].mean() / ic["ic"].std(ddof=1), rel=1e-9)
    assert summary["latest_ic"] == pytest.approx(ic["ic"].iloc[-1], abs=1e-12)
    r = portfolio["long_return"].to_numpy()
    assert summary["annual_return"] == pytest.approx(np.prod(1 + r) ** (12 / len(r)) - 1, rel=1e-9)
    assert summary["annual_volatility"] == pytest.approx(np.std(r, ddof=1) * np.sqrt(12), rel=1e-9)

    # The IC of a month recomputed from factor.pret and raw.daily_bars by hand.
    month = MONTHS[0]
    d0, d1 = session_calendar.rebalance_date(month), session_calendar.rebalance_date(session_calendar.shift_month(month, 1))
    factor = _query(home, f"select ts_code, pret from factor.pret where month = '{month}'").set_index("ts_code")["pret"]
    bars = _query(home, "select ts_code, trade_date, close * adj_factor as adj from raw.daily_bars where volume > 0")
    bars = bars[(bars["trade_date"] >= d0) & (bars["trade_date"] <= d1)].sort_values("trade_date")
    start = bars[bars["trade_date"] == d0].set_index("ts_code")["adj"]
    end = bars[bars["trade_date"] > d0].groupby("ts_code")["adj"].last()
    realised = (end / start - 1).reindex(factor.index)
    both = realised.notna()
    expected_ic = np.corrcoef(factor[both], realised[both])[0, 1]
    assert ic.loc[ic["month"] == month, "ic"].iloc[0] == pytest.approx(expected_ic, abs=1e-9)

    printed = run_cli(["report"], env)
    assert printed.returncode == 0
    assert "IC" in printed.stdout and f"{summary['ic_mean']:.4f}" in printed.stdout


def test_rematerialising_a_month_gives_identical_tables_and_checkpoint(smoke_backfill):
    home, env, _ = smoke_backfill
    before_factor = pd.read_parquet(home / "factor" / "2024-06.parquet")
    checkpoints = {p.name: p.read_bytes() for p in (home / "checkpoints").glob("*.pt")}
    before_samples = np.load(home / "samples" / "2024-06.npy")
    result = run_cli(["backfill", "--from", "2024-06", "--to", "2024-06", "--executor", "in_process"], env)
    assert result.returncode == 0, result.stderr[-4000:]
    pd.testing.assert_frame_equal(pd.read_parquet(home / "factor" / "2024-06.parquet"), before_factor)
    assert np.array_equal(np.load(home / "samples" / "2024-06.npy"), before_samples)
    assert {p.name: p.read_bytes() for p in (home / "checkpoints").glob("*.pt")} == checkpoints


def test_input_files_with_next_years_trade_cal_run_past_the_library_calendar(tmp_path):
    """Clock in February 2027: the 2026-12 retrain, its evaluation on January 2027 bars, the 2027-01 factor."""
    import datetime as dt

    from factor_pipeline.pipeline.dagster_internals import freeze_time

    from factor_pipeline.pipeline.assets import ALL_ASSETS
    from factor_pipeline.config import profile_config
    from factor_pipeline.pipeline.resources import PipelineResource
    from factor_pipeline.market.synthetic import generate_market
    from factor_pipeline_tests.market.test_session_calendar import write_trade_cal

    source = tmp_path / "vendor"
    source.mkdir()
    spring_festival = [str(d.date()) for d in pd.date_range("2027-02-05", "2027-02-11")]
    write_trade_cal(source / "trade_cal.csv", closed=["2027-01-01", *spring_festival])
    previous = session_calendar.active()
    calendar = session_calendar.activate(calendar_source.resolve(str(source)))
    try:
        cfg = profile_config("smoke").replace(market={"start": "2025-10-09"})
        market = generate_market(cfg.market, calendar.sessions[(calendar.sessions >= "2025-10-09") & (calendar.sessions <= "2027-02-10")])
        market.daily.to_parquet(source / "daily.parquet", index=False)
        market.stocks.to_parquet(source / "stocks.parquet", index=False)
        pipeline = PipelineResource(home=str(tmp_path / "home"), source=str(source), profile="smoke")

        def materialise(assets, month):
            result = dg.materialize(ALL_ASSETS, selection=assets, partition_key=month, resources={"pipeline": pipeline})
            assert result.success, month

        with freeze_time(dt.datetime(2027, 2, 10, 12, tzinfo=dt.timezone.utc)):
            for month in session_calendar.months_between("2025-12", "2027-01"):
                assets = ["raw_bars"]
                if month >= "2026-02":
                    assets.append("features")
                if month >= "2026-06":
                    assets.append("samples")
                materialise(assets, month)
            for month in ["2026-12", "2027-01"]:
                materialise(["gan_model", "gru_checkpoint", "pret_factor"], month)
            materialise(["factor_evaluation", "factor_report"], "2026-12")
            with pytest.raises(dg.DagsterUnknownPartitionError):
                # Partitions reach the current month only: March 2027 does not exist yet in February.
                materialise(["raw_bars"], "2027-03")
    finally:
        session_calendar.activate(previous)

    home = tmp_path / "home"
    factor = pd.read_parquet(home / "factor" / "2027-01.parquet")
    assert len(factor) > 50 and factor["rebalance_date"].iloc[0] == pd.Timestamp("2027-01-29")
    assert set(factor["train_month"]) == {"2026-12"}
    record = json.loads((home / "gru_checkpoint" / "2026-12.json").read_text())
    assert record["train_month"] == "2026-12"
    ic = pd.read_parquet(home / "eval" / "ic" / "2026-12.parquet")
    assert bool(ic["complete"].iloc[0]) and ic["as_of"].iloc[0] == pd.Timestamp("2027-01-29")
    assert np.isfinite(ic["ic"].iloc[0])
    assert (home / "reports" / "2026-12" / "report.md").exists()


def test_the_command_shows_the_training_progress_as_it_runs(smoke_backfill):
    """Each GRU epoch and GAN check prints a line while its run is in flight, read from the event log,
    where the UI shows the same lines in the step's logs."""
    import os
    import re

    home, env, result = smoke_backfill
    lines = result.stdout.splitlines()
    gru = [line for line in lines if re.match(r"progress: gru_checkpoint \S+ \(trains \S+\) GRU member 1/1, epoch \d/4, "
                                               r"validation IC -?\d\.\d{4}, elapsed [\dms]+, about [\dms]+ left$", line)]
    gan = [line for line in lines if re.match(r"progress: gan_model \S+ \(trains \S+\) GAN step \d+/30, elapsed [\dms]+, about [\dms]+ left$", line)]
    assert gru and gan, result.stdout[-4000:]
    assert any("epoch 1/4" in line for line in gru) and any("GAN step 10/30" in line for line in gan)
    # Printed before the run that trains ends, not after the backfill.
    model_run_ends = [i for i, line in enumerate(lines) if "gru_checkpoint" in line and line.endswith(": SUCCESS")]
    assert lines.index(gru[0]) < model_run_ends[0]
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with dg.DagsterInstance.get() as instance:
        logged = {
            entry.user_message
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event is None and entry.step_key in ("gru_checkpoint", "gan_model")
        }
    assert set(gru) | set(gan) <= logged

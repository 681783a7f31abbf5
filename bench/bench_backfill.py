"""The CLI's backfill against a Dagster asset backfill driven by dagster-daemon, on the same smoke range.

    .venv/bin/python bench/bench_backfill.py [--from 2024-05] [--to 2024-07] [--interval 2]

Both start from an empty home with the source cache built, so they do the same work:
- ``cli``: ``factor-pipeline backfill --executor in_process`` (one Dagster run per month and stage group,
  dependency-ordered by the CLI's planner, two at a time).
- ``daemon``: the asset backfill the UI's "Materialize" over the same (asset, month) set creates
  (``PartitionBackfill.from_asset_graph_subset``), driven to the end by ``dagster-daemon run`` with the
  queued run coordinator of dagster.yaml, runs in process. The backfill daemon's loop is fixed at 30 s in
  Dagster 1.13; ``--interval`` shortens it (the figure at 30 s is projected from the iteration count).

Prints one JSON object: wall seconds of each, the daemon's run count and its mean launch gap.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAEMON = """
import sys
import dagster._daemon.controller as controller
controller.DEFAULT_DAEMON_INTERVAL_SECONDS = float(sys.argv[1])
from dagster._daemon.cli import main
sys.argv = ["dagster-daemon", "run", "-w", "workspace.yaml"]
main()
"""


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTOR_PIPELINE_", "DAGSTER_"))}
    env.update(FACTOR_PIPELINE_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), FACTOR_PIPELINE_PROFILE="smoke")
    return env


def _prepare(home: Path) -> None:
    """A home with the instance and the source cache, so neither side pays for them."""
    code = (
        "from factor_pipeline.cli import ensure_dagster_home\n"
        "from factor_pipeline.resources import PipelineResource\n"
        "ensure_dagster_home(PipelineResource.from_env().layout)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(home), check=True)


def run_cli(home: Path, first: str, last: str) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "factor_pipeline.pipeline.cli", "backfill", "--from", first, "--to", last, "--executor", "in_process"],
        cwd=REPO, env=_env(home), check=True, capture_output=True,
    )
    return time.monotonic() - started


SUBMIT = """
import json, sys, time
import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.execution.backfill import PartitionBackfill
from factor_pipeline.pipeline.cli import plan_backfill
from factor_pipeline.pipeline.definitions import defs
from factor_pipeline.pipeline.resources import PipelineResource

first, last = sys.argv[1], sys.argv[2]
months = {}
for run in plan_backfill(first, last, PipelineResource.from_env().layout):
    for asset in run.assets:
        months.setdefault(asset, set()).add(run.month)
graph = defs.resolve_asset_graph()
monthly = graph.get(dg.AssetKey("raw_bars")).partitions_def
subset = AssetGraphSubset(
    partitions_subsets_by_asset_key={dg.AssetKey(a): monthly.subset_with_partition_keys(sorted(m)) for a, m in months.items()}
)
with dg.DagsterInstance.get() as instance:
    backfill = PartitionBackfill.from_asset_graph_subset(
        backfill_id="bench", backfill_timestamp=time.time(), tags={}, dynamic_partitions_store=instance,
        asset_graph_subset=subset, title="bench_backfill", description=None,
        run_config={"execution": {"config": {"in_process": {}}}},
    )
    instance.add_backfill(backfill)
"""

STATUS = """
import dagster as dg
with dg.DagsterInstance.get() as instance:
    backfill = instance.get_backfill("bench")
    runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": "bench"}))
    starts = sorted(r.start_time for r in runs if r.start_time)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    print(backfill.status.value, len(runs), sum(gaps) / len(gaps) if gaps else 0.0)
"""


def run_daemon(home: Path, first: str, last: str, interval: float) -> dict:
    env = _env(home)
    subprocess.run([sys.executable, "-c", SUBMIT, first, last], cwd=REPO, env=env, check=True, capture_output=True)
    started = time.monotonic()
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, str(interval)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            time.sleep(5)
            status, n_runs, gap = subprocess.run(
                [sys.executable, "-c", STATUS], cwd=REPO, env=env, check=True, capture_output=True, text=True
            ).stdout.split()
            if status != "REQUESTED":
                break
    finally:
        daemon.terminate()
        daemon.wait()
    return {"status": status, "seconds": round(time.monotonic() - started, 1), "runs": int(n_runs),
            "mean_launch_gap_s": round(float(gap), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="first", default="2024-05")
    parser.add_argument("--to", dest="last", default="2024-07")
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    out = {"profile": "smoke", "range": f"{args.first}..{args.last}", "loadavg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        cli_home, daemon_home = Path(tmp) / "cli", Path(tmp) / "daemon"
        _prepare(cli_home)
        shutil.copytree(cli_home / "source", daemon_home / "source")
        _prepare(daemon_home)
        out["cli_seconds"] = round(run_cli(cli_home, args.first, args.last), 1)
        out["daemon"] = run_daemon(daemon_home, args.first, args.last, args.interval)
    out["daemon_over_cli"] = round(out["daemon"]["seconds"] / out["cli_seconds"], 2)
    out["loadavg_end"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

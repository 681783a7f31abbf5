"""``factor-pipeline backfill --from A --to B``: submit to the instance the asset backfill that the UI's
"Materialize" over a partition range creates (Runs > Backfills lists it), and follow it to its end.

dagster-daemon drives it: the daemon already running for this DAGSTER_HOME, or one the command starts for
the duration (backfill_daemon). Each asset's backfill policy puts a range of months in one run; the run
queue and pools of dagster.yaml apply. The command prints each (asset, month) as it is materialised and the
training steps' progress; when a run fails it prints why (the failed step's error, or a blocking check's
problems), cancels the rest of the backfill and exits 1.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import dagster as dg

from factor_pipeline.pipeline import dagster_internals, tushare_source
from factor_pipeline.pipeline.backfill_plan import backfill_targets, describe_months
from factor_pipeline.pipeline.backfill_watch import drive_backfill, run_failure_reasons
from factor_pipeline.pipeline.executors import instance_settings
from factor_pipeline.pipeline.partitions import monthly_partitions
from factor_pipeline.pipeline.resources import PipelineResource
from factor_pipeline.pipeline.views import ensure_views
from factor_pipeline.storage import Layout, write_bytes


def ensure_dagster_home(layout: Layout) -> Path:
    """DAGSTER_HOME under FACTOR_PIPELINE_HOME (absolute), with the package's dagster.yaml in it
    (dagster.postgres.yaml when FACTOR_PIPELINE_POSTGRES_URL is set)."""
    home = Path(os.environ.get("DAGSTER_HOME") or layout.dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    settings = instance_settings().read_bytes()
    target = home / "dagster.yaml"
    if not target.exists() or target.read_bytes() != settings:
        write_bytes(settings, target)
    os.environ["DAGSTER_HOME"] = str(home)
    # Create the instance's SQLite storages here, once: the daemon, its code server and the first runs
    # starting together on a fresh DAGSTER_HOME would otherwise each stamp the schema and corrupt its version table.
    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)
        instance.fetch_materializations(dg.AssetKey("raw_bars"), limit=1)
        instance.all_instigator_state()
    return home


def run_config(executor: str, max_concurrent: int) -> dict:
    execution = {"in_process": {}} if executor == "in_process" else {"multiprocess": {"max_concurrent": max_concurrent}}
    return {"execution": {"config": execution}}


def submit_backfill(instance, targets: dict[str, list[str]], title: str, config: dict | None, tags: dict | None = None) -> str:
    """Add the asset backfill of ``targets`` to the instance (what the UI's launch does); its id."""
    subset = dagster_internals.asset_graph_subset(targets, monthly_partitions())
    return dagster_internals.add_asset_backfill(instance, subset, title, config, tags or {})


def dry_run(args, pipeline: PipelineResource) -> int:
    """The months the backfill fetches and their cost, with nothing fetched, written or submitted."""
    months = tushare_source.backfill_months(args.first, args.last, pipeline.config)
    if not tushare_source.is_tushare(pipeline.source):
        print(f"backfill {args.first}..{args.last} (dry run): source {pipeline.source} fetches nothing; "
              f"months {months[0]}..{months[-1]} with their history")
        return 0
    for line in tushare_source.plan_lines(pipeline.home, months):
        print(line)
    return 0


def backfill(args) -> int:
    # A terminated command stops the daemon it started (drive_backfill's finally); the backfill stays in the
    # instance, and the next daemon resumes it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    pipeline = PipelineResource.from_env()
    if args.dry_run:
        return dry_run(args, pipeline)
    if tushare_source.is_tushare(pipeline.source):  # planning reads the source, so its months come first
        tushare_source.fetch_months(pipeline.home, tushare_source.backfill_months(args.first, args.last, pipeline.config))
    elif pipeline.source != "synthetic" and not Path(pipeline.source).is_dir():
        raise FileNotFoundError(f"FACTOR_PIPELINE_SOURCE={pipeline.source} is not a directory of input files")
    pipeline.check_writable()
    _ = pipeline.config  # a bad profile fails here, before any run
    pipeline.activate_calendar()  # the month checks below use the source's calendar
    layout = pipeline.layout
    dagster_home = ensure_dagster_home(layout)
    started = time.monotonic()
    targets = backfill_targets(args.first, args.last, layout, pipeline.config)
    with dg.DagsterInstance.get() as instance:
        backfill_id = submit_backfill(
            instance, targets, f"factor-pipeline backfill {args.first}..{args.last}",
            run_config(args.executor, args.max_concurrent), tags={"factor_pipeline/launched_by": "cli"},
        )
        print(
            f"backfill {args.first}..{args.last}: Dagster asset backfill {backfill_id}, "
            f"{sum(len(m) for m in targets.values())} (asset, month) pairs (profile {pipeline.profile}, "
            f"source {pipeline.source}, home {layout.home})",
            flush=True,
        )
        for asset, months in targets.items():
            print(f"  {asset}: {describe_months(months)}", flush=True)
        ended, watcher = drive_backfill(instance, backfill_id, targets, dagster_home / "daemon.log",
                                        out=lambda line: print(line, flush=True))
    ensure_views(layout)
    ok = ended.status.value == "COMPLETED_SUCCESS" and not watcher.failed_runs
    print(
        f"backfill {backfill_id} {ended.status.value}: {len(watcher.done)}/{watcher.total} (asset, month) pairs, "
        f"{len(watcher.run_status)} runs in {time.monotonic() - started:.0f}s; query the results with DuckDB at "
        f"{layout.duckdb_path}",
        flush=True,
    )
    if not ok:
        if ended.error is not None:
            print(f"factor-pipeline: the backfill failed: {ended.error.message.strip()}", file=sys.stderr)
        for run_id in watcher.failed_runs:
            for reason in run_failure_reasons(instance, run_id):
                print(f"factor-pipeline: {reason}", file=sys.stderr)
    return 0 if ok else 1

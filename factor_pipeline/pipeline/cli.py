"""``factor-pipeline``: backfill months through the Dagster instance, and print the factor report.

A backfill plans the (asset, month) pairs the requested months need: every asset of every requested
month, plus any upstream month outside the range that the partition mappings require and that is not
materialised yet (a training window reaching back before the range). It then launches one Dagster run
per month and stage group, in dependency order, each in its own process so that independent months run
side by side; runs touching the model are serialised so a shared training window is trained once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from factor_pipeline.market import session_calendar
from factor_pipeline.storage import Layout, StorageError

STAGES = ["raw_bars", "features", "samples", "gan_sequences", "gru_checkpoint", "pret_factor", "factor_evaluation", "factor_report"]
MODEL_STAGES = {"gan_sequences", "gru_checkpoint"}
REPO_ROOT = Path(__file__).resolve().parents[2]


# The dataset whose provenance says whether an asset's month is built (under the identity running now).
ASSET_DATASETS = {
    "raw_bars": "raw_bars/daily",
    "features": "features",
    "samples": "samples",
    "gan_sequences": "gan_sequences",
    "gru_checkpoint": "gru_checkpoint",
    "pret_factor": "factor",
    "factor_evaluation": "eval/ic",
}


def materialised(layout: Layout, asset: str, month: str) -> bool:
    """Whether the asset's month is on disk and was built from this source, profile and configuration.

    A month built under another identity counts as missing, so a backfill builds it again.
    """
    if asset == "factor_report":
        return (layout.reports / month / "report.md").exists()
    if asset == "samples" and not layout.partition("samples", month, "npy").exists():
        return False
    return layout.matches(ASSET_DATASETS[asset], month)


def ensure_dagster_home(layout: Layout) -> Path:
    """DAGSTER_HOME under FACTOR_PIPELINE_HOME (absolute), with the repository's dagster.yaml in it
    (dagster.postgres.yaml when FACTOR_PIPELINE_POSTGRES_URL is set)."""
    from factor_pipeline.pipeline.executors import instance_yaml

    home = Path(os.environ.get("DAGSTER_HOME") or layout.dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    source = REPO_ROOT / instance_yaml()
    target = home / "dagster.yaml"
    if source.exists() and (not target.exists() or target.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(home)
    # Create the instance's SQLite storages here, once: run processes starting together on a fresh
    # DAGSTER_HOME would otherwise each stamp the schema and corrupt its version table.
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)
        instance.fetch_materializations(dg.AssetKey("raw_bars"), limit=1)
        instance.all_instigator_state()
    return home


@dataclass
class PlannedRun:
    month: str
    assets: list[str]
    deps: set[tuple[str, str]] = field(default_factory=set)

    @property
    def uses_model(self) -> bool:
        return bool(MODEL_STAGES & set(self.assets))


def refuse_history_before_the_source(months: list[str], layout: Layout, cfg) -> str:
    """The source's first month; raises, naming the first month that can be built, when a requested month's
    model trains on a window that starts before it (that history really is needed, and does not exist)."""
    from factor_pipeline.model import training

    first_data = (layout.identity.first_month if layout.identity else None) or session_calendar.FIRST_MONTH
    if months[0] < first_data:
        raise session_calendar.PartitionKeyError(f"the source's first month is {first_data}: {months[0]} has no bars")

    def window_start(month: str) -> str:
        train_month = training.training_month(month, cfg.model.retrain_months)
        if training.window_start_position(train_month, cfg) < 0:
            return session_calendar.FIRST_MONTH
        return training.window_months(train_month, cfg)[0]

    short = [m for m in months if window_start(m) < first_data]
    if short:
        candidate = first_data
        while window_start(candidate) < first_data:
            candidate = session_calendar.shift_month(candidate, 1)
        raise session_calendar.PartitionKeyError(
            f"the model of {short[0]} trains on a window from {window_start(short[0])}, before the source's first "
            f"month {first_data}: the first month that can be backfilled is {candidate}"
        )
    return first_data


def plan_backfill(first: str, last: str, layout: Layout, cfg=None) -> list[PlannedRun]:
    """Runs, in an order that respects every partition dependency of the asset graph."""
    import dagster as dg

    from factor_pipeline.model import training
    from factor_pipeline.pipeline.definitions import defs
    from factor_pipeline.pipeline.resources import PipelineResource

    cfg = cfg or PipelineResource.from_env().config

    graph = defs.resolve_asset_graph()
    valid = set(graph.get(dg.AssetKey("raw_bars")).partitions_def.get_partition_keys())
    requested = session_calendar.months_between(first, last)
    session_calendar.check_within_horizon(session_calendar.parse_month(last).end_time.normalize())
    outside = [m for m in requested if m not in valid]
    if outside:
        raise session_calendar.PartitionKeyError(
            f"months {outside[0]}..{outside[-1]} are outside the partitions {min(valid)}..{max(valid)}"
        )

    first_data = refuse_history_before_the_source(requested, layout, cfg)

    def parents(asset: str, month: str) -> set[tuple[str, str]]:
        """The months a step reads: the mappings' months, except that a model step reads its own training
        window (the mapping declares the longest of any profile), and nothing before the source's first bar."""
        child = dg.AssetKey(asset)
        window = None
        if asset in MODEL_STAGES:
            window = set(training.window_months(training.training_month(month, cfg.model.retrain_months), cfg))
        found = set()
        for parent in graph.get(child).parent_keys:
            keys = graph.get_parent_partition_keys_for_child(month, parent, child).partitions_subset.get_partition_keys()
            if window is not None and parent.path[-1] in ("samples", "raw_bars"):
                keys = [key for key in keys if key in window]
            found |= {(parent.path[-1], key) for key in keys if key >= first_data}
        return found

    needed: dict[tuple[str, str], set[tuple[str, str]]] = {}
    todo = [(asset, month) for month in requested for asset in STAGES]
    requested_set = set(todo)
    while todo:
        node = todo.pop()
        if node in needed:
            continue
        needed[node] = parents(*node)
        for parent in needed[node]:
            if parent[0] == node[0] == "factor_report":
                continue  # the previous report orders reports within the range; one outside it is not read
            if parent not in needed and parent not in requested_set and not materialised(layout, *parent):
                todo.append(parent)
    for node, deps in needed.items():
        needed[node] = {d for d in deps if d in needed}

    runs: list[PlannedRun] = []
    done: set[tuple[str, str]] = set()
    pending = set(needed)
    while pending:
        for month in sorted({m for _, m in pending}):
            group: list[str] = []
            for asset in STAGES:
                node = (asset, month)
                if node in pending and all(d in done or (d[1] == month and d[0] in group) for d in needed[node]):
                    group.append(asset)
            if group:
                deps = set().union(*(needed[(a, month)] for a in group)) - {(a, month) for a in group}
                runs.append(PlannedRun(month, group, deps))
                done |= {(a, month) for a in group}
                pending -= {(a, month) for a in group}
                break
        else:
            raise RuntimeError(f"cannot order the backfill: {sorted(pending)[:5]} wait on each other")
    return runs


def _launch(run: PlannedRun, executor: str, max_concurrent: int, backfill_id: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "factor_pipeline.pipeline.cli", "run-partition",
        "--month", run.month, "--assets", ",".join(run.assets),
        "--executor", executor, "--max-concurrent", str(max_concurrent), "--backfill-id", backfill_id,
    ]
    return subprocess.Popen(command)


def execute_plan(runs: list[PlannedRun], executor: str, max_concurrent: int, parallel: int) -> list[tuple[PlannedRun, int, float]]:
    """Launch the runs as their dependencies finish, at most ``parallel`` at once and one model run at a time."""
    backfill_id = uuid.uuid4().hex[:8]
    finished: set[tuple[str, str]] = set()
    active: dict[int, tuple[PlannedRun, subprocess.Popen, float]] = {}
    results: list[tuple[PlannedRun, int, float]] = []
    queue = list(runs)
    while queue or active:
        model_busy = any(r.uses_model for r, _, _ in active.values())
        for run in list(queue):
            if len(active) >= parallel:
                break
            if run.deps <= finished and not (run.uses_model and model_busy):
                process = _launch(run, executor, max_concurrent, backfill_id)
                active[process.pid] = (run, process, time.monotonic())
                queue.remove(run)
                model_busy = model_busy or run.uses_model
        time.sleep(0.2)
        for pid, (run, process, started) in list(active.items()):
            code = process.poll()
            if code is None:
                continue
            del active[pid]
            results.append((run, code, time.monotonic() - started))
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"[backfill {backfill_id}] {run.month} {'+'.join(run.assets)}: {status} in {results[-1][2]:.0f}s", flush=True)
            if code != 0:
                for _, other, _ in active.values():
                    other.wait()
                return results
            finished |= {(a, run.month) for a in run.assets}
        if queue and not active and not any(r.deps <= finished for r in queue):
            raise RuntimeError("backfill stalled: remaining runs wait on runs that did not finish")
    return results


def run_partition(month: str, assets: list[str], executor: str, max_concurrent: int, backfill_id: str) -> int:
    """One Dagster run of some assets of one month, recorded in the instance (so it shows in the UI)."""
    import dagster as dg

    from factor_pipeline.pipeline.definitions import all_assets_job

    execution = {"in_process": {}} if executor == "in_process" else {"multiprocess": {"max_concurrent": max_concurrent}}
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(all_assets_job),
            instance=instance,
            run_config={"execution": {"config": execution}},
            tags={"dagster/partition": month, "factor_pipeline/backfill": backfill_id},
            asset_selection=[dg.AssetKey(a) for a in assets],
            raise_on_error=False,
        )
        for line in failure_reasons(result.all_events):
            print(f"[{month}] {line}", file=sys.stderr, flush=True)
        return 0 if result.success else 1


def failure_reasons(events) -> list[str]:
    """Why a run failed, as the UI shows it: each failed step's error and each failed check's problems."""
    import dagster as dg

    reasons = []
    for event in events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            if error is not None and error.cls_name == "DagsterAssetCheckFailedError":
                continue  # the failed check's own line below says why
            message = error.message.strip() if error else "unknown error"
            while error is not None and error.cause is not None and "dagster" in error.cls_name.lower():
                error = error.cause  # Dagster wraps the user's exception; show the user's
                message = f"{error.cls_name}: {error.message.strip()}"
            reasons.append(f"{event.step_key} failed: {message}")
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
                problems = evaluation.metadata.get("problems")
                text = problems.value if problems is not None else "failed"
                reasons.append(f"{evaluation.asset_key.to_user_string()} check {evaluation.check_name}: {text}")
    return reasons


def backfill(args) -> int:
    from factor_pipeline.pipeline.resources import PipelineResource
    from factor_pipeline.pipeline.views import ensure_views

    pipeline = PipelineResource.from_env()
    if pipeline.source != "synthetic" and not Path(pipeline.source).is_dir():
        raise FileNotFoundError(f"FACTOR_PIPELINE_SOURCE={pipeline.source} is not a directory of input files")
    pipeline.check_writable()
    _ = pipeline.config  # a bad profile fails here, before any run
    layout = pipeline.layout
    ensure_dagster_home(layout)
    started = time.monotonic()
    runs = plan_backfill(args.first, args.last, layout, pipeline.config)
    print(
        f"backfill {args.first}..{args.last}: {len(runs)} runs over {len({r.month for r in runs})} months "
        f"(profile {pipeline.profile}, source {pipeline.source}, home {layout.home})",
        flush=True,
    )
    results = execute_plan(runs, args.executor, args.max_concurrent, args.parallel)
    ensure_views(layout)
    failed = [r for r in results if r[1] != 0]
    print(
        f"backfill {'FAILED' if failed or len(results) < len(runs) else 'done'}: {len(results)}/{len(runs)} runs in "
        f"{time.monotonic() - started:.0f}s; query the results with DuckDB at {layout.duckdb_path}",
        flush=True,
    )
    return 1 if failed or len(results) < len(runs) else 0


def print_report(args) -> int:
    from factor_pipeline.evaluation.store import latest_report_table
    from factor_pipeline.pipeline.resources import PipelineResource

    layout = PipelineResource.from_env().layout
    try:
        print(latest_report_table(layout))
    except (StorageError, FileNotFoundError):
        print(f"no factor report under {layout.reports}: run `factor-pipeline backfill` first", file=sys.stderr)
        return 1
    print(f"\nfull report: {layout.reports}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="factor-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    back = commands.add_parser("backfill", help="materialise every month in a range, with the upstream months it needs")
    back.add_argument("--from", dest="first", required=True, metavar="YYYY-MM")
    back.add_argument("--to", dest="last", required=True, metavar="YYYY-MM")
    back.add_argument("--executor", choices=["multiprocess", "in_process"], default="multiprocess",
                      help="Dagster executor of each run (default multiprocess)")
    back.add_argument("--max-concurrent", type=int, default=2, help="steps at once within a multiprocess run (2 to 4)")
    back.add_argument("--parallel", type=int, default=2, help="runs (months) at once")
    back.set_defaults(handler=backfill)
    rep = commands.add_parser("report", help="print the newest factor report (the seed's table)")
    rep.set_defaults(handler=print_report)
    one = commands.add_parser("run-partition", help=argparse.SUPPRESS)
    one.add_argument("--month", required=True)
    one.add_argument("--assets", required=True)
    one.add_argument("--executor", default="in_process")
    one.add_argument("--max-concurrent", type=int, default=2)
    one.add_argument("--backfill-id", default="manual")
    one.set_defaults(
        handler=lambda a: run_partition(a.month, a.assets.split(","), a.executor, a.max_concurrent, a.backfill_id)
    )
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (session_calendar.PartitionKeyError, session_calendar.CalendarHorizonError, ValueError, OSError, StorageError) as exc:
        print(f"factor-pipeline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

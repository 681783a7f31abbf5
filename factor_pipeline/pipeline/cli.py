"""``factor-pipeline``: backfill months as a Dagster asset backfill, and print the factor report.

``backfill --from A --to B`` submits to the instance the asset backfill that the UI's "Materialize" over a
partition range creates (Runs > Backfills lists it). It targets every asset of every month in the range,
and the upstream months outside it that the range reads and that are not built yet (a training window
reaching back before the range, the previous month's factor, the next month's bars an evaluation needs).
dagster-daemon drives it: the daemon already running for this DAGSTER_HOME, or one the command starts for
the duration (``run_daemon``: a 2 s backfill loop, evaluated between the backfill's runs). Each asset's
backfill policy puts a range of months in one run; the run queue and pools of dagster.yaml apply. The
command prints each (asset, month) as it is materialised; when a run fails it prints why (the failed
step's error, or a blocking check's problems), cancels the rest of the backfill and exits 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from factor_pipeline.market import session_calendar
from factor_pipeline.storage import Layout, StorageError

STAGES = ["raw_bars", "features", "samples", "gan_model", "gru_checkpoint", "pret_factor", "factor_evaluation", "factor_report"]
MODEL_STAGES = {"gan_model", "gru_checkpoint"}
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS_MODULE = "factor_pipeline.pipeline.definitions"

# The backfill loop of the daemon this command starts. Dagster's is fixed at 30 s, and a backfill waits one
# loop per dependency level (six here) before launching the next runs: at 30 s that alone is minutes.
DAEMON_INTERVAL_SECONDS = 2.0
# A daemon heartbeats every 30 s; one silent for longer than this is gone (killed, or its machine stopped).
DAEMON_SILENCE_SECONDS = 75.0
POLL_SECONDS = 2.0

# The dataset whose provenance says whether an asset's month is built (under the identity running now).
ASSET_DATASETS = {
    "raw_bars": "raw_bars/daily",
    "features": "features",
    "samples": "samples",
    "gan_model": "gan_model",
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
    # Create the instance's SQLite storages here, once: the daemon, its code server and the first runs
    # starting together on a fresh DAGSTER_HOME would otherwise each stamp the schema and corrupt its version table.
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)
        instance.fetch_materializations(dg.AssetKey("raw_bars"), limit=1)
        instance.all_instigator_state()
    return home


def refuse_history_before_the_source(months: list[str], layout: Layout, cfg) -> str:
    """The source's first month; raises, naming the first month that can be built, when a requested month's
    model trains on a window that starts before it (that history really is needed, and does not exist)."""
    from factor_pipeline.model import training

    first_data = layout.first_month or session_calendar.FIRST_MONTH
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


def backfill_targets(first: str, last: str, layout: Layout, cfg=None) -> dict[str, list[str]]:
    """The months of each asset that a backfill of first..last targets.

    Every asset of every month in the range, and every upstream month outside it that a targeted month reads
    and that is not built yet under this identity. A model step reads its own training window, not the
    longest one of any profile that its partition mapping declares, and nothing before the source's first
    month is ever targeted: the asset backfill waits only on the months it targets, so history that the
    mappings declare and no step reads cannot fail it.
    """
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

    targeted = {(asset, month) for month in requested for asset in STAGES}
    todo = sorted(targeted)
    seen: set[tuple[str, str]] = set()
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for parent in parents(*node):
            if parent[0] == node[0] == "factor_report":
                continue  # a report before the range is not read: each report reads the evaluations
            if parent not in targeted and not materialised(layout, *parent):
                targeted.add(parent)
                todo.append(parent)
    months: dict[str, list[str]] = {}
    for asset, month in targeted:
        months.setdefault(asset, []).append(month)
    return {asset: sorted(months[asset]) for asset in STAGES if asset in months}


def describe_months(months: list[str]) -> str:
    """``2022-07..2023-03, 2024-01`` for a sorted list of months."""
    spans: list[list[str]] = []
    for month in months:
        if spans and session_calendar.shift_month(spans[-1][-1], 1) == month:
            spans[-1].append(month)
        else:
            spans.append([month])
    return ", ".join(span[0] if len(span) == 1 else f"{span[0]}..{span[-1]}" for span in spans)


def run_config(executor: str, max_concurrent: int) -> dict:
    execution = {"in_process": {}} if executor == "in_process" else {"multiprocess": {"max_concurrent": max_concurrent}}
    return {"execution": {"config": execution}}


def submit_backfill(instance, targets: dict[str, list[str]], title: str, config: dict | None, tags: dict | None = None) -> str:
    """Add the asset backfill of ``targets`` to the instance (what the UI's launch does); its id."""
    import dagster as dg
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from factor_pipeline.pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    subset = AssetGraphSubset(
        partitions_subsets_by_asset_key={
            dg.AssetKey(asset): graph.get(dg.AssetKey(asset)).partitions_def.subset_with_partition_keys(months)
            for asset, months in targets.items()
        }
    )
    backfill = PartitionBackfill.from_asset_graph_subset(
        backfill_id=make_new_backfill_id(),
        backfill_timestamp=time.time(),
        tags=tags or {},
        dynamic_partitions_store=instance,
        asset_graph_subset=subset,
        title=title,
        description=None,
        run_config=config,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def backfill_daemon_alive(instance) -> bool:
    """Whether a dagster-daemon of this instance heartbeats its backfill loop now."""
    heartbeat = instance.get_daemon_heartbeats().get("BACKFILL")
    return heartbeat is not None and time.time() - heartbeat.timestamp < DAEMON_SILENCE_SECONDS


def start_daemon(log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:  # one backfill's daemon log at a time
        return subprocess.Popen(
            [sys.executable, "-m", "factor_pipeline.pipeline.cli", "daemon", "--interval", str(DAEMON_INTERVAL_SECONDS),
             "--parent", str(os.getpid())],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )


def stop_daemon(process: subprocess.Popen, instance) -> None:
    """Stop the daemon this command started (it shuts its threads and code server down on SIGINT)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Its last heartbeats would make the next command wait on a daemon that is gone.
    instance.wipe_daemon_heartbeats()


def run_daemon(interval: float, parent: int | None = None) -> int:
    """``dagster-daemon run`` on this code location, its backfill loop every ``interval`` seconds.

    Two changes to Dagster's backfill daemon, made in this process only (the one the backfill command starts
    and stops; the daemon of `dagster dev` or of a deployment keeps Dagster's behaviour):
    - the loop's interval, which Dagster reads from a module constant with no setting (30 s);
    - a backfill is evaluated only while none of its runs is in flight. A run over a range of months records
      its materialisations one by one at its end (about a second for 30 months); a tick landing in between
      sees some months done and launches the rest of the next asset as a second run, which then also keeps
      the model steps from sharing a run. At a 2 s loop that happened at most levels.
    """
    import dagster._daemon.backfill as backfill_daemon
    import dagster._daemon.controller as controller
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES, RunsFilter
    from dagster._daemon.cli import main as daemon_main

    evaluate = backfill_daemon.execute_backfill_jobs

    def evaluate_between_runs(workspace_process_context, logger, backfill_jobs, *args, **kwargs):
        instance = workspace_process_context.instance

        def in_flight(job) -> bool:
            runs = RunsFilter(tags={"dagster/backfill": job.backfill_id}, statuses=IN_PROGRESS_RUN_STATUSES)
            return job.status == BulkActionStatus.REQUESTED and bool(instance.get_run_ids(runs, limit=1))

        yield from evaluate(workspace_process_context, logger, [j for j in backfill_jobs if not in_flight(j)], *args, **kwargs)

    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = interval
    backfill_daemon.execute_backfill_jobs = evaluate_between_runs
    if parent is not None:
        _stop_when_gone(parent)
    sys.argv = ["dagster-daemon", "run", "-m", DEFINITIONS_MODULE]
    return daemon_main()


def _stop_when_gone(parent: int) -> None:
    """Shut this daemon down (as on Ctrl-C) once the command that started it is gone, even killed outright:
    it runs in a session of its own, which no signal to the command reaches."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


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


def run_failure_reasons(instance, run_id: str) -> list[str]:
    """failure_reasons of a stored run; the run's own failure message when no step says more (a crashed worker)."""
    import dagster as dg

    events = [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event is not None]
    reasons = failure_reasons(events)
    if not reasons:
        reasons = [e.message for e in events if e.event_type == dg.DagsterEventType.RUN_FAILURE and e.message]
    return reasons or ["the run failed without a reason in its event log"]


def _run_label(run) -> str:
    tags = run.tags
    months = tags.get("dagster/partition") or f"{tags.get('dagster/asset_partition_range_start')}..{tags.get('dagster/asset_partition_range_end')}"
    assets = "+".join(sorted(key.to_user_string() for key in run.asset_selection or []))
    return f"run {run.run_id[:8]} {assets} {months}"


class BackfillWatcher:
    """Follows one backfill in the instance: prints runs as they start and end, and (asset, month) pairs as
    they are materialised."""

    def __init__(self, instance, backfill_id: str, targets: dict[str, list[str]], out=print):
        self.instance, self.backfill_id, self.out = instance, backfill_id, out
        self.total = sum(len(m) for m in targets.values())
        newest = instance.event_log_storage.get_maximum_record_id() or 0
        self.after = {asset: newest for asset in targets}  # materialisations before the backfill are not its progress
        self.done: set[tuple[str, str]] = set()
        self.run_status: dict[str, str] = {}
        self.failed_runs: list[str] = []

    def poll(self) -> None:
        import dagster as dg

        # Runs first, so that every materialisation read below belongs to a run already known; their status
        # lines come after the materialisations, so that a run's months print before its SUCCESS.
        runs = sorted(self.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": self.backfill_id})), key=lambda r: r.run_id)
        run_ids = {run.run_id for run in runs}
        for asset in self.after:
            records = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=self.after[asset]), limit=1000, ascending=True
            ).records
            for record in records:
                self.after[asset] = max(self.after[asset], record.storage_id)
                pair = (asset, record.partition_key)
                if record.run_id in run_ids and pair not in self.done:
                    self.done.add(pair)
                    self.out(f"[{len(self.done)}/{self.total}] {asset} {record.partition_key}")
        for run in runs:
            status = run.status.value
            if self.run_status.get(run.run_id) == status:
                continue
            self.run_status[run.run_id] = status
            if status in ("STARTED", "SUCCESS", "FAILURE", "CANCELED"):
                self.out(f"{_run_label(run)}: {status}")
            if status == "FAILURE":
                self.failed_runs.append(run.run_id)

    def backfill(self):
        return self.instance.get_backfill(self.backfill_id)


def drive_backfill(instance, backfill_id: str, targets: dict[str, list[str]], log_path: Path, out=print):
    """Follow the backfill to its end, with a daemon started for the duration when none runs; the
    backfill as it ended, and the watcher (with the runs that failed)."""
    from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus

    watcher = BackfillWatcher(instance, backfill_id, targets, out)
    daemon = None

    def cancel(why: str) -> None:
        backfill = watcher.backfill()
        if backfill.status == BulkActionStatus.REQUESTED:
            out(f"cancelling backfill {backfill_id}: {why}")
            instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))

    def step() -> bool:
        nonlocal daemon
        if daemon is None and not backfill_daemon_alive(instance):
            daemon = start_daemon(log_path)
            out(f"started dagster-daemon (pid {daemon.pid}, backfill loop every {DAEMON_INTERVAL_SECONDS:g} s, log {log_path})")
        elif daemon is not None and daemon.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited with {daemon.returncode}; see {log_path}")
        watcher.poll()
        if watcher.backfill().status in BULK_ACTION_TERMINAL_STATUSES:
            watcher.poll()  # the events of the last run
            return True
        return False

    try:
        if backfill_daemon_alive(instance):
            out("using the dagster-daemon already running for this DAGSTER_HOME (its backfill loop: every 30 s)")
        while not step():
            if watcher.failed_runs:
                # A later run would read what the failed one left (a blocking check stops steps only within
                # its own run), so the rest is cancelled, as from the UI.
                cancel("a run failed")
            time.sleep(POLL_SECONDS)
        return watcher.backfill(), watcher
    except KeyboardInterrupt:
        cancel("interrupted (Ctrl-C again to stop waiting for its runs to be cancelled)")
        try:
            while not step():
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            pass
        raise
    finally:
        if daemon is not None:
            stop_daemon(daemon, instance)


def backfill(args) -> int:
    import dagster as dg

    from factor_pipeline.pipeline import tushare_source
    from factor_pipeline.pipeline.resources import PipelineResource
    from factor_pipeline.pipeline.views import ensure_views

    # A terminated command stops the daemon it started (drive_backfill's finally); the backfill stays in the
    # instance, and the next daemon resumes it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    pipeline = PipelineResource.from_env()
    if tushare_source.is_tushare(pipeline.source):  # planning reads the source, so its months come first
        tushare_source.fetch_months(pipeline.home, tushare_source.backfill_months(args.first, args.last, pipeline.config))
    elif pipeline.source != "synthetic" and not Path(pipeline.source).is_dir():
        raise FileNotFoundError(f"FACTOR_PIPELINE_SOURCE={pipeline.source} is not a directory of input files")
    pipeline.check_writable()
    _ = pipeline.config  # a bad profile fails here, before any run
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
    back.add_argument("--executor", choices=["in_process", "multiprocess"], default="in_process",
                      help="Dagster executor of each run (default in_process: a run's steps form a chain)")
    back.add_argument("--max-concurrent", type=int, default=2, help="steps at once within a multiprocess run")
    back.set_defaults(handler=backfill)
    rep = commands.add_parser("report", help="print the newest factor report (the seed's table)")
    rep.set_defaults(handler=print_report)
    daemon = commands.add_parser("daemon", help=argparse.SUPPRESS)
    daemon.add_argument("--interval", type=float, default=DAEMON_INTERVAL_SECONDS)
    daemon.add_argument("--parent", type=int, default=None)
    daemon.set_defaults(handler=lambda a: run_daemon(a.interval, a.parent))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (session_calendar.PartitionKeyError, session_calendar.CalendarHorizonError, ValueError, OSError, StorageError,
            RuntimeError) as exc:
        print(f"factor-pipeline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

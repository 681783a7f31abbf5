"""Following a backfill in the instance: its runs as they start and end, each (asset, month) as it is
materialised, the training steps' progress lines as they are logged, and why a run failed."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg

from factor_pipeline.pipeline import dagster_internals
from factor_pipeline.pipeline.backfill_daemon import (
    DAEMON_INTERVAL_SECONDS,
    QUIET_SECONDS,
    backfill_daemon_alive,
    start_daemon,
    stop_daemon,
    training_in_flight,
)
from factor_pipeline.pipeline.progress import is_progress_line

POLL_SECONDS = 2.0
RUN_ENDED = ("SUCCESS", "FAILURE", "CANCELED")


def failure_reasons(events) -> list[str]:
    """Why a run failed, as the UI shows it: each failed step's error and each failed check's problems."""
    reasons = []
    for event in events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            if error is not None and error.cls_name == dagster_internals.CHECK_FAILURE_ERROR:
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
    """Follows one backfill in the instance: prints runs as they start and end, the training progress lines
    their steps log, and (asset, month) pairs as they are materialised."""

    def __init__(self, instance, backfill_id: str, targets: dict[str, list[str]], out=print):
        self.instance, self.backfill_id, self.out = instance, backfill_id, out
        self.total = sum(len(m) for m in targets.values())
        newest = instance.event_log_storage.get_maximum_record_id() or 0
        self.after = {asset: newest for asset in targets}  # materialisations before the backfill are not its progress
        self.done: set[tuple[str, str]] = set()
        self.run_status: dict[str, str] = {}
        self.failed_runs: list[str] = []
        self.log_cursors: dict[str, str | None] = {}
        self.logs_read: set[str] = set()  # ended runs whose log has been read to its end
        self.training = False  # whether a training run was in flight at the last poll

    def poll(self) -> None:
        # Runs first, so that every materialisation read below belongs to a run already known; their status
        # lines come after the materialisations, so that a run's months print before its SUCCESS.
        runs = sorted(self.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": self.backfill_id})), key=lambda r: r.run_id)
        self.training = training_in_flight(run for run in runs if run.status.value not in RUN_ENDED)
        run_ids = {run.run_id for run in runs}
        for run in runs:
            self._print_progress(run)
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
            if status in ("STARTED", *RUN_ENDED):
                self.out(f"{_run_label(run)}: {status}")
            if status == "FAILURE":
                self.failed_runs.append(run.run_id)

    def _print_progress(self, run) -> None:
        """The progress lines the run's steps logged since the last poll."""
        if run.run_id in self.logs_read:
            return
        ended = run.status.value in RUN_ENDED  # read before the log, so nothing logged before the end is missed
        connection = self.instance.event_log_storage.get_records_for_run(run.run_id, cursor=self.log_cursors.get(run.run_id))
        self.log_cursors[run.run_id] = connection.cursor
        for record in connection.records:
            entry = record.event_log_entry
            if entry.dagster_event is None and is_progress_line(entry.user_message):
                self.out(entry.user_message)
        if ended and not connection.has_more:
            self.logs_read.add(run.run_id)

    def backfill(self):
        return self.instance.get_backfill(self.backfill_id)


def drive_backfill(instance, backfill_id: str, targets: dict[str, list[str]], log_path: Path, out=print):
    """Follow the backfill to its end, with a daemon started for the duration when none runs; the
    backfill as it ended, and the watcher (with the runs that failed)."""
    watcher = BackfillWatcher(instance, backfill_id, targets, out)
    daemon = None

    def cancel(why: str) -> None:
        backfill = watcher.backfill()
        if dagster_internals.backfill_requested(backfill):
            out(f"cancelling backfill {backfill_id}: {why}")
            dagster_internals.cancel_backfill(instance, backfill)

    def step() -> bool:
        nonlocal daemon
        if daemon is None and not backfill_daemon_alive(instance):
            daemon = start_daemon(log_path)
            out(f"started dagster-daemon (pid {daemon.pid}, backfill loop every {DAEMON_INTERVAL_SECONDS:g} s, log {log_path})")
        elif daemon is not None and daemon.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited with {daemon.returncode}; see {log_path}")
        watcher.poll()
        if dagster_internals.backfill_ended(watcher.backfill()):
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
            time.sleep(QUIET_SECONDS if watcher.training else POLL_SECONDS)
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

"""The dagster-daemon that drives a CLI backfill when none runs for this DAGSTER_HOME: started for the
duration of the command, with a 2 s backfill loop, and stopped with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from factor_pipeline.datasets import MODEL_ASSETS
from factor_pipeline.pipeline import dagster_internals

DEFINITIONS_MODULE = "factor_pipeline.pipeline.definitions"
# The backfill loop of the daemon this command starts. Dagster's is fixed at 30 s, and a backfill waits one
# loop per dependency level (six here) before launching the next runs: at 30 s that alone is minutes.
DAEMON_INTERVAL_SECONDS = 2.0
# Training steps run for minutes on every core: meanwhile the command's watcher and the run queue wake this
# seldom (instead of every 2 s and 1 s), so that their wake-ups do not stall the training threads' barriers.
QUIET_SECONDS = 10.0
# A daemon heartbeats every 30 s; one silent for longer than this is gone (killed, or its machine stopped).
DAEMON_SILENCE_SECONDS = 75.0


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


def evaluated_later(instance, backfill) -> bool:
    """Whether the daemon leaves a backfill for a later loop: while one of its runs is in flight.

    A run over a range of months records its materialisations one by one at its end (about a second for
    30 months); a loop landing in between sees some months done and launches the rest of the next asset as
    a second run, which then also keeps the model steps from sharing a run. At a 2 s loop that happened at
    most levels.
    """
    return dagster_internals.backfill_requested(backfill) and dagster_internals.backfill_runs_in_flight(instance, backfill.backfill_id)


def training_in_flight(runs) -> bool:
    """Whether one of ``runs`` materialises a training asset: minutes of CPU-bound steps whose cores the
    pipeline's own pollers should leave alone."""
    return any(set(MODEL_ASSETS) & {key.to_user_string() for key in run.asset_selection or ()} for run in runs)


def quiet_while_training(instance) -> float | None:
    """The run queue's interval while a training run is in flight (nothing is queued before it ends)."""
    return QUIET_SECONDS if training_in_flight(dagster_internals.runs_in_flight(instance)) else None


def run_daemon(interval: float, parent: int | None = None) -> int:
    """``dagster-daemon run`` on this code location, its backfill loop every ``interval`` seconds, skipping the
    backfills :func:`evaluated_later` holds back, and its run queue quiet while a training run is in flight.
    These changes hold in this process only (the one the backfill command starts and stops; the daemon of
    `dagster dev` or of a deployment keeps Dagster's)."""
    if parent is not None:
        _stop_when_gone(parent)
    with dagster_internals.patched_backfill_daemon(interval, skip=evaluated_later, quiet_interval=quiet_while_training):
        return dagster_internals.run_daemon_cli(DEFINITIONS_MODULE)


def run_daemon_command(args) -> int:
    return run_daemon(args.interval, args.parent)


def _stop_when_gone(parent: int) -> None:
    """Shut this daemon down (as on Ctrl-C) once the command that started it is gone, even killed outright:
    it runs in a session of its own, which no signal to the command reaches."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()

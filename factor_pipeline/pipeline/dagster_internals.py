"""Every use of Dagster's private API (``dagster._*``), in one module; nothing else in the package or its tests
imports it. Dagster offers no public call for these (1.13): adding an asset backfill to an instance, the
backfill daemon's loop interval, failing a step because of its blocking checks, Dagster's (freezable) clock.
``factor_pipeline_tests/pipeline/test_dagster_internals.py`` fails when an upgrade breaks any of them.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.errors import DagsterAssetCheckFailedError
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus, PartitionBackfill
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.utils import make_new_backfill_id
from dagster._time import get_current_datetime

__all__ = [
    "asset_graph_subset", "add_asset_backfill", "backfill_requested", "backfill_ended", "cancel_backfill",
    "backfill_runs_in_flight", "runs_in_flight", "fail_on_blocking_checks", "CHECK_FAILURE_ERROR", "now", "patched_backfill_daemon",
    "run_daemon_cli", "freeze_time", "backfill_run_ranges",
]

# The class name a step failure carries when fail_on_blocking_checks failed it.
CHECK_FAILURE_ERROR = DagsterAssetCheckFailedError.__name__


def now():
    """Dagster's clock (a timezone-aware datetime), so that a test's frozen clock applies."""
    return get_current_datetime()


def asset_graph_subset(targets: dict[str, list[str]], partitions_def: dg.PartitionsDefinition) -> AssetGraphSubset:
    """The months of each asset (all share ``partitions_def``) as the subset an asset backfill targets."""
    return AssetGraphSubset(
        partitions_subsets_by_asset_key={
            dg.AssetKey(asset): partitions_def.subset_with_partition_keys(months) for asset, months in targets.items()
        }
    )


def add_asset_backfill(instance, subset: AssetGraphSubset, title: str, run_config: dict | None, tags: dict) -> str:
    """Add the asset backfill of ``subset`` to the instance, as the UI's launch does; its id."""
    backfill = PartitionBackfill.from_asset_graph_subset(
        backfill_id=make_new_backfill_id(),
        backfill_timestamp=time.time(),
        tags=tags,
        dynamic_partitions_store=instance,
        asset_graph_subset=subset,
        title=title,
        description=None,
        run_config=run_config,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def backfill_requested(backfill) -> bool:
    """Whether the backfill is still being worked on (not cancelling, not ended)."""
    return backfill.status == BulkActionStatus.REQUESTED


def backfill_ended(backfill) -> bool:
    return backfill.status in BULK_ACTION_TERMINAL_STATUSES


def cancel_backfill(instance, backfill) -> None:
    """Cancel as the UI does: the daemon cancels the runs, then marks the backfill cancelled."""
    instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))


def backfill_runs_in_flight(instance, backfill_id: str) -> bool:
    """Whether a run of the backfill is queued, starting or running."""
    runs = dg.RunsFilter(tags={"dagster/backfill": backfill_id}, statuses=IN_PROGRESS_RUN_STATUSES)
    return bool(instance.get_run_ids(runs, limit=1))


def fail_on_blocking_checks(message: str) -> None:
    """Fail the step as Dagster does when a blocking check fails (the UI and the CLI show the checks' problems)."""
    raise DagsterAssetCheckFailedError(message)


def runs_in_flight(instance) -> list:
    """Every run of the instance that is queued, starting or running."""
    return list(instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES)))


@contextlib.contextmanager
def patched_backfill_daemon(
    interval: float, skip: Callable[[object, object], bool], quiet_interval: Callable[[object], float | None] | None = None
) -> Iterator[None]:
    """Within the block, Dagster's backfill daemon loops every ``interval`` seconds (Dagster reads a module
    constant with no setting: 30 s) and leaves out of an evaluation each backfill ``skip(instance, backfill)``
    rejects. At each of its loops, ``quiet_interval(instance)`` may stretch the run queue's interval (None: the
    instance's ``dequeue_interval_seconds``). All is restored on exit."""
    # Imported here: the daemon's modules add about 1.3 s (measured with -X importtime) to an import of this module, which every run's
    # process pays (the assets fail steps through it), and only the daemon command needs them.
    import dagster._daemon.backfill as backfill_daemon
    import dagster._daemon.controller as controller

    evaluate, create = backfill_daemon.execute_backfill_jobs, controller.create_daemon_of_type
    stretchable: dict = {}  # the run queue's daemon -> its own interval (an IntervalDaemon reads it at every loop)

    def create_recorded(daemon_type, instance):
        daemon = create(daemon_type, instance)
        if daemon_type == "QUEUED_RUN_COORDINATOR":
            stretchable[daemon] = daemon.interval_seconds
        return daemon

    def evaluate_unskipped(workspace_process_context, logger, backfill_jobs, *args, **kwargs):
        instance = workspace_process_context.instance
        quiet = quiet_interval(instance) if quiet_interval else None
        for daemon, own in stretchable.items():
            daemon.interval_seconds = max(own, quiet) if quiet else own
        kept = [job for job in backfill_jobs if not skip(instance, job)]
        yield from evaluate(workspace_process_context, logger, kept, *args, **kwargs)

    saved = controller.DEFAULT_DAEMON_INTERVAL_SECONDS
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = interval
    backfill_daemon.execute_backfill_jobs = evaluate_unskipped
    controller.create_daemon_of_type = create_recorded
    try:
        yield
    finally:
        controller.DEFAULT_DAEMON_INTERVAL_SECONDS = saved
        backfill_daemon.execute_backfill_jobs = evaluate
        controller.create_daemon_of_type = create


def run_daemon_cli(module: str) -> int:
    """``dagster-daemon run -m module`` in this process (returns when it is interrupted)."""
    from dagster._daemon.cli import main as daemon_main  # imported here for the same reason as above

    sys.argv = ["dagster-daemon", "run", "-m", module]
    return daemon_main()


# For the tests only; imported when called, since they add about a second to every import of this module.


def freeze_time(moment):
    """A context in which Dagster's clock (:func:`now`, schedules, sensors) stands still at ``moment``."""
    from dagster._core.test_utils import freeze_time as frozen

    return frozen(moment)


def backfill_run_ranges(targets: dict[str, list[str]], asset_graph) -> list[tuple[str, str, str]]:
    """(asset, first month, last month) of each run the backfill daemon would launch for ``targets``."""
    from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests_with_backfill_policies
    from dagster._core.definitions.events import AssetKeyPartitionKey

    requests = build_run_requests_with_backfill_policies(
        asset_partitions=[AssetKeyPartitionKey(dg.AssetKey(a), m) for a, months in targets.items() for m in months],
        asset_graph=asset_graph,
        dynamic_partitions_store=None,
    )
    return sorted(
        (r.asset_selection[0].path[-1], r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    )

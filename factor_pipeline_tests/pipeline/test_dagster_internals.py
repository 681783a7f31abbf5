"""The upgrade test: every private Dagster name the pipeline uses still exists, accepts the arguments we pass,
and the backfill daemon patch still changes what the daemon's loop does. A Dagster upgrade that breaks any of
them fails here rather than silently (a patched constant nobody reads any more)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from factor_pipeline.pipeline import dagster_internals
from factor_pipeline.pipeline.backfill_command import submit_backfill

PACKAGE = Path(__file__).resolve().parents[2] / "factor_pipeline"
TESTS = Path(__file__).resolve().parents[1]
INTERNALS = PACKAGE / "pipeline" / "dagster_internals.py"


def _private_imports() -> list[tuple[str, str | None]]:
    """(module, name) of every ``dagster._*`` import in dagster_internals.py, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(INTERNALS.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dagster._"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.startswith("dagster._")]
    return found


def _private(module: str, name: str):
    return getattr(importlib.import_module(module), name)


def test_only_dagster_internals_imports_private_dagster():
    others = [p for p in [*PACKAGE.rglob("*.py"), *TESTS.rglob("*.py")] if p not in (INTERNALS, Path(__file__))]
    offenders = []
    for path in others:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in getattr(node, "names", [])] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("dagster._")]
    assert not offenders


@pytest.mark.parametrize("module, name", _private_imports(), ids=lambda x: str(x))
def test_each_private_import_resolves(module, name):
    imported = importlib.import_module(module)
    assert name is None or hasattr(imported, name), f"{module} has no {name}"


def test_the_private_calls_accept_the_arguments_we_pass():
    backfill = "dagster._core.execution.backfill"
    inspect.signature(_private(backfill, "PartitionBackfill").from_asset_graph_subset).bind(
        backfill_id="x", backfill_timestamp=0.0, tags={}, dynamic_partitions_store=None, asset_graph_subset=None,
        title="t", description=None, run_config=None,
    )
    inspect.signature(_private("dagster._core.definitions.assets.graph.asset_graph_subset", "AssetGraphSubset")).bind(
        partitions_subsets_by_asset_key={}
    )
    inspect.signature(_private("dagster._core.utils", "make_new_backfill_id")).bind()
    inspect.signature(_private("dagster._time", "get_current_datetime")).bind()
    inspect.signature(_private("dagster._core.test_utils", "freeze_time")).bind(None)
    assert issubclass(_private("dagster._core.errors", "DagsterAssetCheckFailedError"), Exception)  # raised with a message
    inspect.signature(_private("dagster._daemon.backfill", "execute_backfill_jobs")).bind(None, None, [], threadpool_executor=None)
    inspect.signature(_private("dagster._daemon.cli", "main")).bind()
    inspect.signature(
        _private("dagster._core.definitions.automation_tick_evaluation_context", "build_run_requests_with_backfill_policies")
    ).bind(asset_partitions=[], asset_graph=None, dynamic_partitions_store=None)
    inspect.signature(_private("dagster._core.definitions.events", "AssetKeyPartitionKey")).bind(dg.AssetKey("a"), "2024-01")
    status = _private(backfill, "BulkActionStatus")
    assert status.REQUESTED not in _private(backfill, "BULK_ACTION_TERMINAL_STATUSES")
    assert status.COMPLETED_SUCCESS in _private(backfill, "BULK_ACTION_TERMINAL_STATUSES")
    assert dg.DagsterRunStatus.STARTED in _private("dagster._core.storage.dagster_run", "IN_PROGRESS_RUN_STATUSES")
    assert isinstance(_private("dagster._daemon.controller", "DEFAULT_DAEMON_INTERVAL_SECONDS"), (int, float))


class _Shutdown:
    """The daemon's shutdown event, recording how long each loop waits before the next."""

    def __init__(self):
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False

    def is_set(self) -> bool:
        return False


def _first_loop(instance, skip, interval: float, quiet_interval=None, created: list | None = None) -> list[float]:
    """Run Dagster's backfill daemon (its real loop) under the patch until it has waited once; ``created``
    receives the run queue's daemon, created under the patch as Dagster's controller creates it."""
    daemon = _private("dagster._daemon.daemon", "BackfillDaemon")(settings={"use_threads": False})
    shutdown = _Shutdown()
    with dagster_internals.patched_backfill_daemon(interval, skip, quiet_interval):
        if created is not None:
            create = _private("dagster._daemon.controller", "create_daemon_of_type")
            created.append(create("QUEUED_RUN_COORDINATOR", instance))
        loop = daemon.core_loop(SimpleNamespace(instance=instance), shutdown)
        for _ in loop:
            if shutdown.waits:
                break
        loop.close()
    return shutdown.waits


def test_the_daemon_patch_sets_the_backfill_loops_interval_and_skips_what_it_is_told():
    seen = []

    def skip(instance, backfill) -> bool:
        seen.append(backfill.backfill_id)
        return True  # so the evaluation does nothing and needs no code location

    with dg.instance_for_test() as instance:
        backfill_id = submit_backfill(instance, {"raw_bars": ["2024-01"]}, "probe", None)
        waits = _first_loop(instance, skip, interval=3.0)
        assert seen == [backfill_id]  # the loop evaluated the backfill through the patched function
        assert len(waits) == 1 and 0 < waits[0] <= 3.0  # Dagster's own constant would wait about 30 s
        assert instance.get_backfill(backfill_id).status.value == "REQUESTED"  # skipped: nothing evaluated it
    controller = importlib.import_module("dagster._daemon.controller")
    assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 30  # restored after the block
    assert _private("dagster._daemon.backfill", "execute_backfill_jobs").__name__ == "execute_backfill_jobs"


QUEUED = {"run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                              "config": {"dequeue_interval_seconds": 1}}}


@pytest.mark.parametrize("quiet, expected", [(10.0, 10.0), (None, 1)])
def test_the_daemon_patch_quietens_the_run_queue_when_told(quiet, expected):
    with dg.instance_for_test(overrides=QUEUED) as instance:
        submit_backfill(instance, {"raw_bars": ["2024-01"]}, "probe", None)
        created = []
        _first_loop(instance, lambda instance, backfill: True, interval=3.0, quiet_interval=lambda instance: quiet, created=created)
        assert created[0].interval_seconds == expected  # an IntervalDaemon reads it at each of its loops
    assert _private("dagster._daemon.controller", "create_daemon_of_type").__name__ == "create_daemon_of_type"


def test_the_clock_is_dagsters_and_freezes():
    import datetime as dt

    moment = dt.datetime(2024, 3, 1, 6, tzinfo=dt.timezone.utc)
    with dagster_internals.freeze_time(moment):
        assert dagster_internals.now() == moment


def test_a_blocking_check_failure_carries_the_class_name_the_cli_looks_for():
    with pytest.raises(Exception) as raised:
        dagster_internals.fail_on_blocking_checks("raw_bars: blocking check bars_quality failed")
    assert type(raised.value).__name__ == dagster_internals.CHECK_FAILURE_ERROR
    assert "bars_quality" in str(raised.value)

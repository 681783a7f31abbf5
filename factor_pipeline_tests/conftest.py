import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "factor_pipeline.pipeline.cli"]


def pipeline_env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTOR_PIPELINE_", "DAGSTER_"))}
    env.update(
        FACTOR_PIPELINE_HOME=str(home),
        FACTOR_PIPELINE_PROFILE="smoke",
        FACTOR_PIPELINE_SOURCE="synthetic",
        DAGSTER_HOME=str(home / "dagster"),
        # The end-to-end tests run the GAN stage (and the GAN-off ablation beside it), not the default mode.
        FACTOR_PIPELINE_GAN_MODE="augment",
        **extra,
    )
    return env


def pytest_collection_modifyitems(items):
    """The tests that share the smoke backfill's home run on one xdist worker, in collection order (make test
    runs two): some add runs and backfills to that home, and others count what the backfill left there."""
    for item in items:
        if "smoke_backfill" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("smoke_backfill_home"))


def run_cli(args: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def smoke_backfill(tmp_path_factory):
    """One smoke-profile backfill through the CLI and the Dagster instance, shared by the end-to-end tests."""
    home = tmp_path_factory.mktemp("pipeline_home")
    env = pipeline_env(home)
    result = run_cli(["backfill", "--from", "2024-05", "--to", "2024-07", "--executor", "in_process"], env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    return home, env, result


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models: one thread avoids OpenMP barrier stalls on a shared machine (5x faster here)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def keep_the_active_calendar():
    """A test that activates a calendar (as the pipeline's resource does) leaks it into no other."""
    from factor_pipeline.market import session_calendar

    previous = session_calendar.active()
    yield
    session_calendar.activate(previous)

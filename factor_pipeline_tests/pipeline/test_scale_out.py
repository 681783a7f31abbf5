"""The Celery scale-out against real services: Redis as the broker, PostgreSQL as the Dagster instance's
storage, two dagster-celery workers (the default queue, and `gpu` for the training steps).

The reference is the end-to-end tests' in-process backfill (`smoke_backfill`). Its runs, each an asset
selection and a partition, are executed again, in the order they were created, through the celery executor
into another home: the same runs whatever planned them, so nothing here depends on how the CLI plans a
backfill. Then every file of the two homes is compared byte for byte.
"""

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from factor_pipeline.pipeline.executors import instance_yaml
from factor_pipeline_tests.conftest import REPO, pipeline_env

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TRAINING_STEPS = {"gan_model", "gru_checkpoint"}

REPLAY = """
import json, sys
import dagster as dg
from factor_pipeline.pipeline.definitions import all_assets_job

reference = dg.DagsterInstance.from_config(sys.argv[1])
seen, runs = set(), []
for record in sorted(reference.get_run_records(), key=lambda r: r.create_timestamp):
    run = record.dagster_run
    tags = {k: v for k, v in run.tags.items() if k.startswith("dagster/") and "partition" in k}
    key = (tuple(sorted(tags.items())), run.asset_selection)
    if key not in seen:  # a month re-materialised by another test: once is enough
        seen.add(key)
        runs.append((tags, run.asset_selection))

report = []
with dg.DagsterInstance.get() as instance:
    for tags, selection in runs:
        result = dg.execute_job(
            dg.reconstructable(all_assets_job), instance=instance, tags=tags,
            asset_selection=sorted(selection) if selection else None, raise_on_error=False,
        )
        workers = {}
        for entry in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            metadata = entry.dagster_event.event_specific_data.metadata
            if "Celery worker" in metadata:  # written by the worker that ran the step
                workers.setdefault(entry.step_key, []).append(metadata["Celery worker"].value)
        succeeded = [e.step_key for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)]
        report.append({"tags": tags, "success": result.success, "workers": workers, "succeeded": succeeded})
        if not result.success:
            break
    storage = type(instance.run_storage).__name__
print(json.dumps({"runs": report, "run_storage": storage}))
"""


def _installed(binary: str, package: str, candidates: tuple[str, ...] = ()) -> str:
    """The binary's path. A missing one is installed from the distribution's packages when this is root
    (.ci/run installs both packages up front); the test skips, saying why, when that cannot be done."""

    def find() -> str | None:
        if found := shutil.which(binary):
            return found
        paths = [path for pattern in candidates for path in glob.glob(pattern)]
        # The newest where several versions are installed (/usr/lib/postgresql/<version>/bin).
        paths.sort(key=lambda path: [int(part) for part in Path(path).parts if part.isdigit()])
        return paths[-1] if paths else None

    if path := find():
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{binary} is not installed, and installing it (`apt-get install -y {package}`) needs apt-get as root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    output = ""
    # A fresh machine has no package lists yet: update once when the first attempt fails.
    for command in (["apt-get", "install", "-y", "-q", package], ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        output = (done.stdout + done.stderr)[-2000:]
        if path := find():
            return path
    pytest.skip(f"{binary} is not installed and `apt-get install -y {package}` did not install it: {output}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else f"({path} missing)"


def _stop(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM to the process's group (a worker's Celery process and its pool), SIGKILL to what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()
            os.killpg(process.pid, 0)  # raises once every process of the group is gone
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = _installed("redis-server", "redis-server")
    workdir = tmp_path_factory.mktemp("redis")
    log = workdir / "redis.log"
    port = _free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not _redis_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"the broker (redis-server) did not start: {_tail(log, 1500)}")
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def postgres_url():
    initdb = Path(_installed("initdb", "postgresql", ("/usr/lib/postgresql/*/bin/initdb",))).resolve()
    pg_ctl = str(initdb.parent / "pg_ctl")
    # PostgreSQL refuses to run as root; the distribution's package creates the `postgres` user for it.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # Not under pytest's temporary directory, which is private to root: the server's user must enter it.
    root = Path(tempfile.mkdtemp(prefix="factor-pipeline-pg-"))
    data, log, port = root / "data", root / "postgres.log", _free_port()
    if as_user:
        shutil.chown(root, "postgres")
    try:
        init = subprocess.run(
            [*as_user, str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
            capture_output=True, text=True, timeout=180,
        )
        assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-2000:]
        # A throwaway cluster: durability settings off, for speed.
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        start = subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "120", "-o", options, "start"],
            capture_output=True, text=True, timeout=180,
        )
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:] + _tail(log)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop = subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=120)
        pid_file = data / "postmaster.pid"
        if stop.returncode != 0 and pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def celery_cluster(redis_url, postgres_url, tmp_path_factory):
    """A home whose instance lives in PostgreSQL, and a default-queue and a `gpu`-queue worker serving it."""
    home = tmp_path_factory.mktemp("celery_home")
    logs = tmp_path_factory.mktemp("celery_logs")
    env = pipeline_env(
        home, FACTOR_PIPELINE_EXECUTOR="celery", FACTOR_PIPELINE_CELERY_BROKER=redis_url, FACTOR_PIPELINE_POSTGRES_URL=postgres_url
    )
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `dagster-celery worker start` runs `celery` from PATH
    dagster_home = Path(env["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO / instance_yaml(env), dagster_home / "dagster.yaml")
    # Creates the instance's tables once, before two workers starting together would race to.
    info = subprocess.run([str(BIN / "dagster"), "instance", "info"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr[-3000:]
    assert "run_storage: PostgresRunStorage" in info.stdout and "event_log_storage: PostgresEventLogStorage" in info.stdout

    workers: dict[str, subprocess.Popen] = {}
    try:
        for name, queue in [("cpu", "dagster"), ("gpu", "gpu")]:
            with (logs / f"{name}.log").open("w") as out:
                workers[name] = subprocess.Popen(
                    [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(REPO / "celery.yaml"),
                     "-n", name, "-q", queue, "--", "--concurrency=1"],
                    cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )
        deadline = time.monotonic() + 180
        for name, process in workers.items():
            while f"{name}@" not in _tail(logs / f"{name}.log", 100_000) or " ready." not in _tail(logs / f"{name}.log", 100_000):
                assert process.poll() is None and time.monotonic() < deadline, f"worker {name} did not start:\n{_tail(logs / f'{name}.log')}"
                time.sleep(0.5)
        yield home, env, workers, logs
    finally:
        for process in workers.values():
            _stop(process)


def _files(home: Path) -> dict[str, Path]:
    """Every file the pipeline wrote, but Dagster's instance and the DuckDB file (views only, with its own
    page layout)."""
    return {
        str(p.relative_to(home)): p
        for p in home.rglob("*")
        if p.is_file() and p.relative_to(home).parts[0] != "dagster" and not p.name.startswith("factor.duckdb")
    }


def test_a_celery_backfill_writes_the_in_process_backfills_files_with_training_on_the_gpu_worker(smoke_backfill, celery_cluster, postgres_url):
    reference_home, _, _ = smoke_backfill
    home, env, workers, logs = celery_cluster

    with (logs / "replay.json").open("w") as stdout, (logs / "replay.log").open("w") as stderr:
        replay = subprocess.Popen([sys.executable, "-c", REPLAY, str(reference_home / "dagster")], cwd=REPO, env=env, stdout=stdout, stderr=stderr)
    # A dead worker leaves its queue's steps waiting for ever: fail at once instead, with its log.
    deadline = time.monotonic() + 900
    try:
        while replay.poll() is None:
            dead = [name for name, process in workers.items() if process.poll() is not None]
            assert not dead, f"workers {dead} stopped:\n" + "\n".join(_tail(logs / f"{name}.log") for name in dead)
            assert time.monotonic() < deadline, "the celery backfill took over 15 minutes:\n" + _tail(logs / "replay.log")
            time.sleep(1)
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait()
    diagnostics = _tail(logs / "replay.log", 6000) + _tail(logs / "cpu.log", 2000) + _tail(logs / "gpu.log", 2000)
    assert replay.returncode == 0, diagnostics
    report = json.loads((logs / "replay.json").read_text().strip().splitlines()[-1])
    runs = report["runs"]
    assert runs and all(run["success"] for run in runs), diagnostics
    assert report["run_storage"] == "PostgresRunStorage"

    # Each step ran in exactly one worker: training steps in the gpu-queue worker, every other in the default one.
    executed = []
    for run in runs:
        assert sorted(run["workers"]) == sorted(run["succeeded"]), run
        for step, names in run["workers"].items():
            assert len(names) == 1, (step, names)
            expected = "gpu@" if step in TRAINING_STEPS else "cpu@"
            assert names[0].startswith(expected), (run["tags"], step, names)
            executed.append(step)
    assert TRAINING_STEPS <= set(executed) and "raw_bars" in executed

    # The runs, their events and the workers' step reports are in PostgreSQL; no SQLite storage was created.
    import psycopg2

    with contextlib.closing(psycopg2.connect(postgres_url.replace("+psycopg2", ""))) as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from runs")
        assert cursor.fetchone()[0] == len(runs)
        cursor.execute("select count(*) from event_logs where dagster_event_type = 'STEP_SUCCESS'")
        assert cursor.fetchone()[0] == len(executed)
    assert not list(Path(env["DAGSTER_HOME"]).rglob("*.db"))

    reference, scaled = _files(reference_home), _files(home)
    assert sorted(scaled) == sorted(reference)
    assert [name for name in sorted(reference) if reference[name].read_bytes() != scaled[name].read_bytes()] == []
    kinds = {suffix: sum(name.endswith(suffix) for name in reference) for suffix in (".parquet", ".npy", ".pt")}
    assert all(count > 0 for count in kinds.values()), kinds

"""Drive the product as a user does: `dagster dev`, a partition backfill through GraphQL, its materialisations."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from factor_pipeline_tests.conftest import REPO, pipeline_env

# Drives whole Dagster runs: the full lane only (`make test`), not `make test-fast`.
pytestmark = pytest.mark.slow

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
  }
}"""
MATERIALISATIONS = """
query {
  assetOrError(assetKey: {path: ["raw_bars"]}) {
    ... on Asset { assetMaterializations(limit: 20) { partition runId } }
  }
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def dagster_dev(tmp_path):
    home = tmp_path / "home"
    env = pipeline_env(home)
    Path(env["DAGSTER_HOME"]).mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", Path(env["DAGSTER_HOME"]) / "dagster.yaml")
    port = _free_port()
    dagster = str(Path(sys.executable).parent / "dagster")
    log = open(tmp_path / "dagster_dev.log", "w")
    process = subprocess.Popen(
        [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def ready():
        if process.poll() is not None:
            raise AssertionError((tmp_path / "dagster_dev.log").read_text()[-3000:])
        try:
            return _graphql(port, "{ version }")
        except OSError:
            return None

    try:
        _wait(ready, 180, "dagster dev to answer")
        yield port, home
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    assert process.returncode is not None


def test_partition_backfill_through_graphql(dagster_dev):
    port, home = dagster_dev
    months = ["2024-04", "2024-05"]
    launched = _graphql(port, LAUNCH, {"params": {"partitionNames": months, "assetSelection": [{"path": ["raw_bars"]}]}})
    result = launched["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    backfill_id = result["backfillId"]

    def finished():
        status = _graphql(port, STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
        return status if status not in ("REQUESTED", "CANCELING") else None

    status = _wait(finished, 420, "the backfill to finish")
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    events = _graphql(port, MATERIALISATIONS)["assetOrError"]["assetMaterializations"]
    assert {e["partition"] for e in events} == set(months)
    assert all(e["runId"] for e in events)
    for month in months:
        assert (home / "raw_bars" / "daily" / f"{month}.parquet").exists()

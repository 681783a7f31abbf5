"""A backfill launched as the UI launches it (GraphQL ``launchPartitionBackfill``) and one launched by
``factor-pipeline backfill`` write the same files."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from factor_pipeline_tests.conftest import REPO, pipeline_env
from factor_pipeline_tests.pipeline.test_webserver import LAUNCH

# Drives whole Dagster runs: the full lane only (`make test`), not `make test-fast`.
pytestmark = pytest.mark.slow



def _targets(dagster_home: Path, monkeypatch) -> dict[str, list[str]]:
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        # The shared home's first backfill is the fixture's; other end-to-end tests may have added theirs since.
        backfill = min(instance.get_backfills(), key=lambda b: b.backfill_timestamp)
        subset = backfill.asset_backfill_data.target_subset
        return {key.path[-1]: sorted(subset.get_partitions_subset(key).get_partition_keys()) for key in subset.asset_keys}


def _view_answers(database: Path) -> dict[str, str]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        views = con.execute("SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        return {
            name: hashlib.sha256(con.execute(f"SELECT * FROM {name} ORDER BY ALL").df().to_csv(index=False).encode()).hexdigest()
            for (name,) in views
        }


def _digests(home: Path) -> dict[str, str]:
    """Every file the pipeline wrote, by content; the DuckDB file (views over paths inside the home) by what
    its views answer. Dagster's own storage holds run ids and times, not pipeline output."""
    found = {}
    for path in sorted(home.rglob("*")):
        relative = path.relative_to(home)
        if not path.is_file() or relative.parts[0] == "dagster":
            continue
        if path.suffix == ".duckdb":
            found.update({f"{relative}:{view}": answer for view, answer in _view_answers(path).items()})
        else:
            found[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_a_graphql_backfill_listing_the_months_newest_first_writes_what_the_cli_wrote(smoke_backfill, tmp_path, monkeypatch):
    from factor_pipeline.pipeline.backfill_watch import drive_backfill

    cli_home, _, _ = smoke_backfill
    targets = _targets(cli_home / "dagster", monkeypatch)
    home = tmp_path / "home"
    env = pipeline_env(home)
    dagster_home = Path(env["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    # What the UI sends for a selection of assets and months; here every month is its own range, newest first.
    params = {
        "partitionsByAssets": [
            {"assetKey": {"path": [asset]}, "partitions": {"ranges": [{"start": m, "end": m} for m in reversed(months)]}}
            for asset, months in reversed(list(targets.items()))
        ],
        "runConfigData": {"execution": {"config": {"in_process": {}}}},
        "title": "from the UI",
    }
    response = tmp_path / "response.json"
    launched = subprocess.run(
        [str(Path(sys.executable).parent / "dagster-graphql"), "-w", "workspace.yaml", "-t", LAUNCH,
         "-v", json.dumps({"params": params}), "-o", str(response)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    result = json.loads(response.read_text())["data"]["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    lines = []
    with dg.DagsterInstance.get() as instance:
        ended, watcher = drive_backfill(instance, result["backfillId"], targets, dagster_home / "daemon.log", out=lines.append)
    assert ended.status.value == "COMPLETED_SUCCESS", "\n".join(lines)
    assert watcher.done == {(asset, month) for asset, months in targets.items() for month in months}

    expected, found = _digests(cli_home), _digests(home)
    assert any(name.startswith("reports/2024-07/report.md") for name in found)
    assert any(name.startswith("checkpoints/") for name in found)
    assert sorted(found) == sorted(expected)
    assert [name for name in expected if expected[name] != found[name]] == []

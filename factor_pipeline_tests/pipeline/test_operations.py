"""Running it for real: a multiprocess backfill beside a DuckDB reader, crashes mid-write, reruns."""

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from factor_pipeline_tests.conftest import pipeline_env, run_cli

# Drives whole Dagster runs: the full lane only (`make test`), not `make test-fast`.
pytestmark = pytest.mark.slow

READER = r"""
import json, sys, time, duckdb
path, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
import os

stats = {"queries": 0, "errors": [], "rows": []}
con = duckdb.connect(path, read_only=True)
while not os.path.exists(stop):
    try:
        n = con.execute("select count(*) from raw.daily_bars").fetchone()[0]
        con.execute("select count(*) from features.samples where eligible").fetchone()
        stats["queries"] += 1
        if not stats["rows"] or stats["rows"][-1] != n:
            stats["rows"].append(n)
    except Exception as exc:
        stats["errors"].append(repr(exc)[:300])
    time.sleep(0.2)
con.close()
json.dump(stats, open(out, "w"))
"""


def _tables(home, months):
    out = {}
    for month in months:
        out[f"factor/{month}"] = pd.read_parquet(home / "factor" / f"{month}.parquet")
        out[f"eval/ic/{month}"] = pd.read_parquet(home / "eval" / "ic" / f"{month}.parquet")
        out[f"samples/{month}"] = pd.read_parquet(home / "samples" / f"{month}.parquet")
        out[f"samples/{month}.npy"] = np.load(home / "samples" / f"{month}.npy")
    out["checkpoints"] = {p.name: p.read_bytes() for p in (home / "checkpoints").glob("*.pt")}
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], pd.DataFrame):
            pd.testing.assert_frame_equal(a[key], b[key], obj=key)
        elif isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key]), key
        else:
            assert a[key].keys() <= b[key].keys(), key
            assert all(a[key][name] == b[key][name] for name in a[key]), key


def _home_before(reference, home, month: str) -> None:
    """The reference home as it stood before ``month`` was built: the files of earlier months (checkpoints and
    GANs are named by their training month), the source and the calendar; no Dagster instance, and no
    DuckDB file (its views point into the reference home)."""
    import re

    def ignore(directory, names):
        later = {n for n in names if re.match(r"\d{4}-\d{2}", n) and n[:7] >= month}
        return later | {"dagster", "factor.duckdb"} & set(names)

    shutil.copytree(reference, home, ignore=ignore)


def test_multiprocess_backfill_beside_a_duckdb_reader_equals_the_sequential_run(smoke_backfill, tmp_path):
    from factor_pipeline.pipeline.views import ensure_views
    from factor_pipeline.storage import Layout

    reference_home, _, _ = smoke_backfill
    home = tmp_path / "home"
    _home_before(reference_home, home, "2024-06")
    assert ensure_views(Layout(home), log=print)  # every view exists before the reader holds the database
    env = pipeline_env(home)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(home / "factor.duckdb"), str(tmp_path / "reader.json"), str(stop)])
    try:
        time.sleep(2)
        result = run_cli(
            ["backfill", "--from", "2024-06", "--to", "2024-07", "--executor", "multiprocess", "--max-concurrent", "2"],
            env,
        )
    finally:
        stop.touch()
        reader.wait(timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert "could not set lock" not in (result.stdout + result.stderr).lower()
    stats = json.loads((tmp_path / "reader.json").read_text())
    assert stats["queries"] > 10 and stats["errors"] == []
    assert len(stats["rows"]) >= 2  # the reader saw new months appear while the backfill ran
    months = ["2024-06", "2024-07"]  # built by this backfill, with the June retrain
    _assert_same(_tables(reference_home, months), _tables(home, months))


def test_a_run_killed_mid_write_leaves_the_previous_version_then_reruns_to_the_same_result(smoke_backfill, tmp_path):
    reference_home, _, _ = smoke_backfill
    home = tmp_path / "home"
    shutil.copytree(reference_home, home, ignore=shutil.ignore_patterns("dagster"))
    env = pipeline_env(home)
    target = home / "factor" / "2024-06.parquet"
    before = target.read_bytes()
    crashed = run_cli(
        ["backfill", "--from", "2024-06", "--to", "2024-06", "--executor", "in_process"],
        {**env, "FACTOR_PIPELINE_FAILPOINT": "factor/2024-06.parquet"},
    )
    assert crashed.returncode != 0
    assert target.read_bytes() == before  # the previous good version, whole
    leftovers = list((home / "factor").glob(".2024-06.parquet.tmp-*"))
    assert leftovers, "the failpoint should have killed the writer after its temporary file"
    import duckdb

    with duckdb.connect(str(home / "factor.duckdb"), read_only=True) as con:
        n = con.execute("select count(*) from factor.pret where month = '2024-06'").fetchone()[0]
    assert n == len(pd.read_parquet(reference_home / "factor" / "2024-06.parquet"))

    rerun = run_cli(["backfill", "--from", "2024-06", "--to", "2024-06", "--executor", "in_process"], env)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    months = ["2024-06"]
    _assert_same(_tables(reference_home, months), _tables(home, months))
    assert not list((home / "factor").glob(".2024-06.parquet.tmp-*"))

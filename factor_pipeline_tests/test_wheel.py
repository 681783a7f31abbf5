"""The built wheel works on its own: it carries sql/ and the Dagster YAML files, and a smoke backfill runs
from a fresh virtual environment outside the repository, started from another directory."""

import shutil
import subprocess
import sys
import sysconfig

import pytest

from factor_pipeline_tests.conftest import REPO, pipeline_env

pytestmark = pytest.mark.slow

# What the wheel is built from: the package, the top-level files its links point at, and the tests beside it
# (as in a checkout, so that the build shows it leaves them out).
SOURCES = ["pyproject.toml", "README.md", "factor_pipeline", "factor_pipeline_tests", "sql", "dagster.yaml",
           "dagster.postgres.yaml", "celery.yaml"]


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    return result


def test_the_wheel_installed_outside_the_repository_runs_a_smoke_backfill(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the repository
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    # Offline: the test venv's setuptools builds it, and nothing is downloaded.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", source])
    (wheel,) = (tmp_path / "dist").glob("factor_pipeline-*.whl")
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", wheel], capture_output=True, text=True).stdout
    assert "factor_pipeline/sql/compute_daily_features.sql" in names and "factor_pipeline/instance/dagster.yaml" in names
    assert "factor_pipeline/model/gru.py" in names and "factor_pipeline_tests" not in names  # the tests stay out

    # A fresh venv that reads the test venv's packages (dagster, torch, ...) after its own, so the wheel's
    # factor_pipeline is the one imported, and not the editable install of the repository.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    own = next((venv / "lib").glob("python3.*")) / "site-packages"
    (own / "test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", "-q", wheel])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = tmp_path / "home"
    env = pipeline_env(home)
    where = _run([venv / "bin" / "python", "-c", "import factor_pipeline; print(factor_pipeline.__file__)"], cwd=elsewhere, env=env)
    assert where.stdout.strip().startswith(str(own)), where.stdout
    result = _run([venv / "bin" / "factor-pipeline", "backfill", "--from", "2024-05", "--to", "2024-05"],
                  cwd=elsewhere, env=env, timeout=900)
    assert "COMPLETED_SUCCESS" in result.stdout
    assert (home / "factor" / "2024-05.parquet").is_file()
    assert (home / "dagster" / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
    assert not list(elsewhere.iterdir())  # nothing was read from, or written to, the working directory

"""Files under FACTOR_PIPELINE_HOME: atomic writes, the partition layout and the SQL files in sql/.

Every file is written to a temporary name in the same directory and renamed into place, so a reader
(or a crash) sees either the previous complete version or the new one, never half a file. Temporary
names end in ``.tmp-<pid>`` and so never match the ``*.parquet`` globs that the DuckDB views read.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


class StorageError(RuntimeError):
    """A stored file that is missing, unreadable or corrupt, or a home directory that cannot be written."""


@functools.lru_cache(maxsize=None)
def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL file {path}")
    return path.read_text(encoding="utf-8")


# Fault injection for the crash tests: a process whose FACTOR_PIPELINE_FAILPOINT is a substring of the
# path being written kills itself with SIGKILL after writing the temporary file, before the rename.
FAILPOINT_ENV = "FACTOR_PIPELINE_FAILPOINT"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files a killed writer left beside ``path`` (harmless to readers, but litter)."""
    for leftover in path.parent.glob(f".{path.name}.tmp-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path``; on success fsync and rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        failpoint = os.environ.get(FAILPOINT_ENV)
        if failpoint and failpoint in str(path):
            os.kill(os.getpid(), signal.SIGKILL)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(df: pd.DataFrame | pa.Table, path: Path) -> Path:
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def write_npy(array: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
    return Path(path)


def write_json(obj, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return Path(path)


def write_bytes(data: bytes, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path} does not exist: materialise its asset partition first")
    try:
        return pq.read_table(path, columns=columns).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise StorageError(f"{path} is corrupt or truncated ({exc}); re-materialise that partition") from exc


def read_npy(path: Path, mmap: bool = False) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path} does not exist: materialise its asset partition first")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise StorageError(f"{path} is corrupt or truncated ({exc}); re-materialise that partition") from exc


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path} does not exist: materialise its asset partition first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise StorageError(f"{path} is corrupt ({exc}); re-materialise that partition") from exc


def read_months(layout: "Layout", dataset: str, months: list[str]) -> pd.DataFrame:
    """One dataset's monthly Parquet partitions, concatenated in month order."""
    return pd.concat([read_parquet(layout.partition(dataset, m)) for m in months], ignore_index=True)


class Layout:
    """Where each asset partition lives under FACTOR_PIPELINE_HOME (docs/INTERFACES.md)."""

    def __init__(self, home: str | Path):
        self.home = Path(home).resolve()

    def dataset(self, name: str) -> Path:
        """Directory of one dataset whose files are ``<month>.parquet`` (e.g. ``raw_bars/daily``)."""
        return self.home / name

    def partition(self, name: str, month: str, ext: str = "parquet") -> Path:
        return self.home / name / f"{month}.{ext}"

    def months_present(self, name: str, ext: str = "parquet") -> list[str]:
        directory = self.dataset(name)
        if not directory.is_dir():
            return []
        return sorted(p.name[: -len(ext) - 1] for p in directory.glob(f"*.{ext}") if not p.name.startswith("."))

    @property
    def duckdb_path(self) -> Path:
        return self.home / "factor.duckdb"

    @property
    def source_cache(self) -> Path:
        return self.home / "source"

    @property
    def sessions_file(self) -> Path:
        return self.home / "calendar" / "sessions.parquet"

    @property
    def checkpoints(self) -> Path:
        return self.home / "checkpoints"

    @property
    def gan_models(self) -> Path:
        return self.home / "gan"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

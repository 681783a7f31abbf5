"""Files under FACTOR_PIPELINE_HOME: atomic writes, the partition layout and the SQL files in sql/.

Every file is written to a temporary name in the same directory and renamed into place, so a reader
(or a crash) sees either the previous complete version or the new one, never half a file. Temporary
names end in ``.tmp-<pid>`` and so never match the ``*.parquet`` globs that the DuckDB views read.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from factor_pipeline.datasets import JSON_DATASETS

# sql/ ships inside the package (a link to the repository's sql/, copied into the wheel), so an installed
# wheel finds its queries wherever it runs.
SQL_DIR = importlib.resources.files("factor_pipeline") / "sql"


class StorageError(RuntimeError):
    """A stored file that is missing, unreadable or corrupt, or a home directory that cannot be written."""


@functools.lru_cache(maxsize=None)
def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL file {path}")
    return path.read_text(encoding="utf-8")


def query_frames(sql_name: str, relations: dict[str, pd.DataFrame], params: dict) -> pd.DataFrame:
    """Run ``sql/<sql_name>.sql`` in a fresh in-memory DuckDB over the given frames, bound to ``params``."""
    import duckdb

    with duckdb.connect() as con:
        for name, frame in relations.items():
            con.register(name, frame)
        return con.execute(load_sql(sql_name), params).df()


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


PROVENANCE_KEY = b"factor_pipeline.provenance"


class ProvenanceError(StorageError):
    """A stored month built from another source, profile or configuration than the one running."""


def write_parquet(df: pd.DataFrame | pa.Table, path: Path, provenance: dict | None = None) -> Path:
    """Atomic Parquet write; ``provenance`` (what built the file) goes into the schema's metadata."""
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    if provenance is not None:
        metadata = dict(table.schema.metadata or {})
        metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True).encode()
        table = table.replace_schema_metadata(metadata)
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


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path} does not exist: materialise its asset partition first")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StorageError(f"{path} is corrupt or truncated ({exc}); re-materialise that partition") from exc


def _provenance_of(schema: pa.Schema) -> dict | None:
    raw = (schema.metadata or {}).get(PROVENANCE_KEY)
    return json.loads(raw) if raw else None


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return _read_table(path, columns).to_pandas()


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


def read_provenance(path: Path) -> dict | None:
    """What built a stored file: the Parquet schema's provenance, or a JSON file's ``provenance`` field."""
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path} does not exist: materialise its asset partition first")
    if path.suffix == ".json":
        return read_json(path).get("provenance")
    try:
        return _provenance_of(pq.read_schema(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise StorageError(f"{path} is corrupt or truncated ({exc}); re-materialise that partition") from exc


def read_months(layout: "Layout", dataset: str, months: list[str]) -> pd.DataFrame:
    """One dataset's monthly Parquet partitions, concatenated in month order, each checked against what runs."""
    frames = []
    for month in months:
        table = _read_table(layout.partition(dataset, month))
        layout.verify(dataset, month, stored=_provenance_of(table.schema))  # the file is read once
        frames.append(table.to_pandas())
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class Identity:
    """What builds the months of a home: the source, the state of its data up to each month, the profile, the config.

    ``source`` names the source (the synthetic market's settings, or the input files' content), and
    ``month_states[m]`` fingerprints the source's content of every month up to m, so appending next
    month's bars leaves the earlier months valid while a correction or another market does not.
    """

    source: str
    profile: str
    config_fingerprints: dict  # dataset -> fingerprint of its config sections
    month_states: dict  # month -> fingerprint of the source's content up to that month

    @property
    def first_month(self) -> str | None:
        """The source's first month with data (months before it have no bars to read)."""
        return min(self.month_states) if self.month_states else None

    def stamp(self, dataset: str, month: str) -> dict:
        return {
            "source": self.source,
            "source_state": self.month_states.get(month, "none"),
            "profile": self.profile,
            "config": self.config_fingerprints[dataset.split("/")[0]],
        }


def describe_provenance(stamp: dict | None) -> str:
    if not stamp:
        return "an unknown source (no provenance recorded)"
    return (
        f"source {stamp['source']} (data state {stamp['source_state']}), profile {stamp['profile']}, "
        f"config {stamp['config']}"
    )


class Layout:
    """Where each asset partition lives under FACTOR_PIPELINE_HOME (docs/INTERFACES.md).

    With an :class:`Identity`, every month written is stamped with what built it and every month read is
    checked against it, so a home never silently mixes sources, profiles or configurations.
    """

    def __init__(self, home: str | Path, identity: Identity | None = None):
        self.home = Path(home).resolve()
        self.identity = identity

    def stamp(self, dataset: str, month: str) -> dict | None:
        return self.identity.stamp(dataset, month) if self.identity else None

    @property
    def first_month(self) -> str | None:
        """The source's first month with data, when the layout knows its source."""
        return self.identity.first_month if self.identity else None

    def partition_path(self, dataset: str, month: str) -> Path:
        """The file of a partition that carries its provenance (Parquet, or the JSON pointer of a model month)."""
        return self.partition(dataset, month, "json" if dataset in JSON_DATASETS else "parquet")

    def mismatch(self, dataset: str, month: str, stored: dict | None = None) -> str | None:
        """Why the stored month was built under another identity than this layout's (None when it matches).

        ``stored``: the file's provenance when the caller has already read it.
        """
        if self.identity is None:
            return None
        path = self.partition_path(dataset, month)
        if stored is None:
            stored = read_provenance(path)
        expected = self.stamp(dataset, month)
        if stored == expected:
            return None
        return (
            f"{path} was built from {describe_provenance(stored)}, but this run is {describe_provenance(expected)}: "
            f"re-materialise {dataset} for {month} (a backfill does), or use another FACTOR_PIPELINE_HOME"
        )

    def verify(self, dataset: str, month: str, stored: dict | None = None) -> None:
        problem = self.mismatch(dataset, month, stored)
        if problem:
            raise ProvenanceError(problem)

    def matches(self, dataset: str, month: str) -> bool:
        """Whether the partition exists and was built under this layout's identity."""
        if not self.partition_path(dataset, month).exists():
            return False
        try:
            return self.mismatch(dataset, month) is None
        except StorageError:
            return False

    @property
    def identity_file(self) -> Path:
        return self.home / "identity.json"

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

"""The samples of a month in the home: ``<m>.npy`` (the sequences) beside ``<m>.parquet`` (one row per
stock and sample date, with ``seq_index`` pointing into the array)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from factor_pipeline import storage
from factor_pipeline.features.daily import FEATURE_NAMES
from factor_pipeline.features.samples import SAMPLE_COLUMNS, STATE_FEATURES


def _sample_paths(directory: Path, month: str) -> tuple[Path, Path]:
    directory = Path(directory)
    return directory / f"{month}.npy", directory / f"{month}.parquet"


def _steps_path(directory: Path, month: str) -> Path:
    return Path(directory) / f"{month}.steps.npy"


def save_samples(
    directory: Path,
    month: str,
    X: np.ndarray,
    samples: pd.DataFrame,
    provenance: dict | None = None,
    steps: np.ndarray | None = None,
) -> None:
    """<dir>/<m>.steps.npy (when ``steps`` is given), <dir>/<m>.npy, then <dir>/<m>.parquet, each atomic.

    The arrays go first so that the parquet, which readers and the DuckDB view look for, never
    points at sequences that are not there yet. ``steps``: ``samples.scale_steps`` of the same rows.
    """
    n_eligible = int((samples["seq_index"] >= 0).sum())
    if X.shape[0] != n_eligible:
        raise ValueError(f"X has {X.shape[0]} rows but the samples of {month} have {n_eligible} with a seq_index")
    if steps is not None and steps.shape[:2] != X.shape[:2]:
        raise ValueError(f"steps has shape {steps.shape} but X {X.shape} for {month}")
    npy_path, parquet_path = _sample_paths(directory, month)
    if steps is not None:
        storage.write_npy(np.ascontiguousarray(steps, dtype=np.float32), _steps_path(directory, month))
    storage.write_npy(np.ascontiguousarray(X, dtype=np.float32), npy_path)
    storage.write_parquet(samples, parquet_path, provenance)


def window_files(directory: Path, months: list[str]) -> list[Path]:
    """Every file that load_samples and load_steps read for ``months`` (the steps only where written)."""
    files = []
    for month in months:
        npy_path, parquet_path = _sample_paths(directory, month)
        files += [parquet_path, npy_path, *([_steps_path(directory, month)] if _steps_path(directory, month).exists() else [])]
    return files


def load_steps(directory: Path, months: list[str]) -> np.ndarray:
    """The step channels (``samples.scale_steps``, float32 [N, seq_len, len(STATE_FEATURES)]) of several months,
    row for row as ``load_samples(directory, months, eligible_only=True)`` returns X."""
    arrays = []
    for month in months:
        path = _steps_path(directory, month)
        if not path.exists():
            raise storage.StorageError(f"{path} is missing: re-materialise the samples of {month} (step channels)")
        steps = storage.read_npy(path)
        n_rows = len(storage.read_npy(_sample_paths(directory, month)[0], mmap=True))
        if steps.ndim != 3 or steps.shape[0] != n_rows or steps.shape[2] != len(STATE_FEATURES):
            raise storage.StorageError(f"{path} has shape {steps.shape}, not ({n_rows}, seq_len, {len(STATE_FEATURES)})")
        arrays.append(steps)
    if not arrays:
        return np.empty((0, 0, len(STATE_FEATURES)), dtype=np.float32)
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)


def load_samples(directory: Path, months: list[str], eligible_only: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """The samples of several months concatenated, seq_index renumbered to rows of the returned X."""
    arrays, frames, offset = [], [], 0
    for month in months:
        npy_path, parquet_path = _sample_paths(directory, month)
        samples = storage.read_parquet(parquet_path)
        X = storage.read_npy(npy_path)
        if "seq_index" not in samples.columns:
            raise storage.StorageError(f"{parquet_path} has no seq_index column; re-materialise that partition")
        seq_index = samples["seq_index"].to_numpy(dtype=np.int64)
        n_eligible = int((seq_index >= 0).sum())
        if X.ndim != 3 or X.shape[0] != n_eligible:
            raise storage.StorageError(
                f"{npy_path} holds {X.shape[0] if X.ndim else 0} sequences but {parquet_path} has "
                f"{n_eligible} eligible rows; re-materialise that partition"
            )
        if eligible_only:
            keep = seq_index >= 0
            samples = samples.loc[keep].reset_index(drop=True)
            seq_index = seq_index[keep]
        if n_eligible and not np.array_equal(np.sort(seq_index[seq_index >= 0]), np.arange(n_eligible)):
            raise storage.StorageError(f"{parquet_path} has a seq_index that is not 0..{n_eligible - 1}")
        samples["seq_index"] = np.where(seq_index >= 0, seq_index + offset, -1)
        arrays.append(X)
        frames.append(samples)
        offset += n_eligible
    if not frames:
        return np.empty((0, 0, len(FEATURE_NAMES)), dtype=np.float32), pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    X = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    return X, pd.concat(frames, ignore_index=True)

"""The model stage's reads and writes in the home: a training month's data, and its GAN and GRU trained once.

Artefacts are content-addressed: their id hashes the configuration, the seed and a fingerprint of the
exact training data, so re-materialising a month, or materialising it alone, reuses an identical artefact
already on disk instead of training again.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from factor_pipeline.config import Config
from factor_pipeline.market import session_calendar
from factor_pipeline.model.inputs import model_input
from factor_pipeline.model.training import (
    TrainingData,
    gan_batches,
    group_training_data,
    train_members,
    training_dates,
    training_label_horizon,
    window_months,
)
from factor_pipeline.storage import Layout, StorageError, read_json, read_months, write_json

Log = Callable[[str], None]


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with ``n`` CPU threads (0 = leave PyTorch's default); the thread count is part of the config
    because it is part of what makes a CPU checkpoint bit-reproducible, and small models on a shared
    2-core machine train several times faster on one thread."""
    import torch

    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def load_model_input(layout: Layout, months: list[str], cfg: Config, dates) -> tuple[np.ndarray, pd.DataFrame]:
    """The model's input (inputs.model_input) of the eligible samples of ``months`` dated on one of ``dates``,
    and their rows in the same order: what training and scoring both read."""
    from factor_pipeline.features.store import load_samples, load_steps

    for month in months:
        layout.verify("samples", month)
    X, samples = load_samples(layout.dataset("samples"), months, eligible_only=True)
    keep = samples["trade_date"].isin(dates).to_numpy()
    samples = samples.loc[keep].reset_index(drop=True)
    steps = load_steps(layout.dataset("samples"), months)[keep] if cfg.model.step_channels else None
    return model_input(X[keep], steps, samples, cfg), samples


def load_training_data(layout: Layout, train_month: str, cfg: Config) -> TrainingData:
    from factor_pipeline.features.labels import compute_labels

    months = window_months(train_month, cfg)
    X_all, samples = load_model_input(layout, months, cfg, training_dates(train_month, cfg))
    as_of = session_calendar.rebalance_date(train_month)
    bars = read_months(layout, "raw_bars/daily", months)
    labels = compute_labels(bars, samples, training_label_horizon(cfg), as_of).to_numpy(dtype=np.float64)
    known = np.isfinite(labels)
    samples, X_all, labels = samples.loc[known].reset_index(drop=True), X_all[known], labels[known]
    if len(samples) == 0:
        raise StorageError(f"no labelled training samples for {train_month}: materialise the samples of {months}")
    return group_training_data(train_month, samples, X_all, labels, cfg)


# The modules whose code turns the window's files into TrainingData: part of a window's key, so that a change
# to how training data is built is never answered with a fingerprint recorded by the code before it.
def _loader_sources() -> list[Path]:
    from factor_pipeline.features import labels, store as features_store
    from factor_pipeline.model import inputs, training

    return [Path(module.__file__) for module in (labels, features_store, inputs, training)] + [Path(__file__)]


class TrainingWindow:
    """A training month's data, loaded at most once and only when something must be trained.

    Every artefact trained on the window is addressed by the data's fingerprint, which is a hash of the
    loaded arrays: loading a full-profile window takes minutes. The window's key hashes what the load reads
    (every byte of its months' sample and bar files, the training dates, the configuration and the loader's
    code); the fingerprint of the first load under a key is recorded in the home (``training_data/``), so a
    later month, run or process whose artefacts already exist finds them without loading anything.
    """

    def __init__(self, layout: Layout, train_month: str, cfg: Config):
        self.layout, self.train_month, self.cfg = layout, train_month, cfg
        self._data: TrainingData | None = None
        self._key: str | None = None
        self._fingerprint: str | None = None

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = _window_key(self.layout, self.train_month, self.cfg)
        return self._key

    @property
    def _index_path(self) -> Path:
        return self.layout.home / "training_data" / f"{self.train_month}-{self.key}.json"

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            recorded = self._index_path.exists() and self._data is None
            self._fingerprint = read_json(self._index_path)["data_fingerprint"] if recorded else self.data.fingerprint
        return self._fingerprint

    @property
    def data(self) -> TrainingData:
        if self._data is None:
            self._data = load_training_data(self.layout, self.train_month, self.cfg)
            write_json(
                {"train_month": self.train_month, "data_fingerprint": self._data.fingerprint, "n_dates": len(self._data.dates)},
                self._index_path,
            )
        return self._data


class TrainingWindows:
    """The training window of each month a run materialises, the newest one kept: a run's months come in
    order, so the months that share a training month share one window (one load), and an earlier window's
    data is let go once the run has moved past it."""

    def __init__(self, layout: Layout, cfg: Config):
        self.layout, self.cfg = layout, cfg
        self._current: TrainingWindow | None = None

    def __call__(self, train_month: str) -> TrainingWindow:
        if self._current is None or self._current.train_month != train_month:
            self._current = TrainingWindow(self.layout, train_month, self.cfg)
        return self._current


def _window_key(layout: Layout, train_month: str, cfg: Config) -> str:
    from factor_pipeline.features.store import window_files

    months = window_months(train_month, cfg)
    digest = hashlib.sha256()
    digest.update(train_month.encode())
    digest.update(cfg.fingerprint("samples", "model").encode())
    digest.update("|".join(str(d.date()) for d in training_dates(train_month, cfg)).encode())
    files = [*window_files(layout.dataset("samples"), months), *(layout.partition("raw_bars/daily", m) for m in months)]
    for path in [*files, *_loader_sources()]:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:16]


def _artifact_id(kind: str, train_month: str, cfg: Config, data_fingerprint: str, *parts: str) -> str:
    payload = "|".join([kind, train_month, cfg.fingerprint("samples", "gan", "model"), data_fingerprint, *parts])
    return f"{train_month}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


@dataclass
class GanArtifact:
    gan_id: str | None
    path: Path | None
    sidecar: dict
    trained: bool


def ensure_gan(layout: Layout, window: TrainingWindow, cfg: Config, log: Log = print, progress=None) -> GanArtifact:
    """Train the GAN stage for this training window, or reuse the identical one on disk (``progress``: gan.train_gan's)."""
    from factor_pipeline.model import checkpoints, gan

    if cfg.gan.mode == "off":
        return GanArtifact(None, None, {"mode": "off"}, False)
    gan_id = _artifact_id("gan", window.train_month, cfg, window.fingerprint)
    path = layout.gan_models / f"{gan_id}.pt"
    expected = {"gan_id": gan_id}
    if path.exists() and path.with_suffix(".json").exists():
        try:
            _, sidecar = gan.load_gan(path, expected=expected)
            return GanArtifact(gan_id, path, sidecar, False)
        except checkpoints.CheckpointError as exc:
            log(f"retraining the GAN: the stored one is unusable ({exc})")
    data = window.data
    X = data.train_X()
    y = data.train_y() if cfg.gan.mode == "augment" else None
    with torch_threads(cfg.model.num_threads):
        result = gan.train_gan(X, y, cfg.gan, seed=cfg.model.seed, log=log, precision=cfg.model.precision, progress=progress)
        fake = (
            gan.generate(result, cfg.gan, min(len(X), 2048), seed=cfg.model.seed)[0]
            if cfg.gan.mode == "augment"
            else gan.transform(result, cfg.gan, X[:2048])
        )
    from factor_pipeline.features.daily import FEATURE_NAMES

    similarity = gan.similarity_table(X[:2048], fake, _channel_names(cfg, FEATURE_NAMES, X.shape[-1]))
    sidecar = {
        "gan_id": gan_id,
        "train_month": data.train_month,
        "mode": cfg.gan.mode,
        "gan_config": cfg.to_dict()["gan"],
        "seed": cfg.model.seed,
        "data_fingerprint": data.fingerprint,
        "n_train_samples": int(len(X)),
        "steps_run": result.steps_run,
        "stop_reason": result.stop_reason,
        "g_loss": result.g_loss,
        "d_loss": result.d_loss,
        "similarity": similarity.reset_index().to_dict(orient="records"),
        "versions": checkpoints.package_versions(),
    }
    gan.save_gan(path, result, sidecar)
    return GanArtifact(gan_id, path, sidecar, True)


def _channel_names(cfg: Config, feature_names, n_channels: int) -> list[str]:
    """Names of the model's input channels: the window's features, the step channels, then side inputs."""
    names = [*feature_names, *(f"step_{c}" for c in cfg.model.step_channels)]
    return names + [f"side_{k}" for k in range(n_channels - len(names))]


def load_generator(layout: Layout, gan_id: str) -> dict:
    from factor_pipeline.model import gan

    state, _ = gan.load_gan(layout.gan_models / f"{gan_id}.pt", expected={"gan_id": gan_id})
    return state


def _training_batches(data: TrainingData, cfg: Config, gan_artifact: GanArtifact, layout: Layout):
    generator = load_generator(layout, gan_artifact.gan_id) if gan_artifact.gan_id else None
    return gan_batches(data, cfg, generator)


def _device_part(cfg: Config) -> list[str]:
    """The device in a checkpoint's identity: the same data trains different weights on a GPU. A CPU adds
    nothing, so the ids of every CPU checkpoint written before the device joined the identity still hold."""
    from factor_pipeline.model.gru import resolve_device

    device = resolve_device(cfg.model.device)
    return [] if device.type == "cpu" else [device.type]


@dataclass
class CheckpointArtifact:
    checkpoint_id: str
    path: Path
    sidecar: dict
    trained: bool


def ensure_checkpoint(
    layout: Layout, window: TrainingWindow, cfg: Config, gan_artifact: GanArtifact, log: Log = print, progress=None
) -> CheckpointArtifact:
    """Train the GRU on this window (with the GAN stage's output), or reuse the identical checkpoint on disk
    (``progress``: training.train_members')."""
    from factor_pipeline.model import checkpoints

    checkpoint_id = _artifact_id("gru", window.train_month, cfg, window.fingerprint, gan_artifact.gan_id or "off", *_device_part(cfg))
    path = layout.checkpoints / f"{checkpoint_id}.pt"
    if path.exists() and path.with_suffix(".json").exists():
        try:
            _, sidecar = checkpoints.load_checkpoint(path, expected={"checkpoint_id": checkpoint_id})
            return CheckpointArtifact(checkpoint_id, path, sidecar, False)
        except checkpoints.CheckpointError as exc:
            log(f"retraining: the stored checkpoint is unusable ({exc})")
    data = window.data
    with torch_threads(cfg.model.num_threads):
        train, val = _training_batches(data, cfg, gan_artifact, layout)
        state, results = train_members(train, val, cfg, log=log, progress=progress)
    result = results[0]
    sidecar = {
        "checkpoint_id": checkpoint_id,
        "train_month": data.train_month,
        "config": cfg.to_dict(),
        "model_config": cfg.to_dict()["model"],
        "gan_mode": cfg.gan.mode,
        "gan_id": gan_artifact.gan_id,
        "seed": cfg.model.seed,
        "data_fingerprint": data.fingerprint,
        "train_dates": [str(d.date()) for d in data.dates[: data.n_train]],
        "purged_dates": [str(d.date()) for d in data.dates[data.n_train : data.val_start]],
        "validation_dates": [str(d.date()) for d in data.dates[data.val_start :]],
        "n_train_samples": int(sum(len(b[1]) for b in train)),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_val_ic": result.best_val_ic,
        "train_loss": result.train_loss,
        "val_ic": result.val_ic,
        **result.precision,
        "members": [{"best_epoch": r.best_epoch, "best_val_ic": r.best_val_ic} for r in results],
        "versions": checkpoints.package_versions(),
    }
    checkpoints.save_checkpoint(path, state, sidecar)
    return CheckpointArtifact(checkpoint_id, path, sidecar, True)

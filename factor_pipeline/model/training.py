"""Which data trains the model of a month, and training it once: the glue between samples, GAN and GRU.

Retraining happens at the rebalance of the configured months (the seed: June and December). Every other
month resolves to the newest training month at or before it. Artefacts are content-addressed: their id
hashes the configuration, the seed and a fingerprint of the exact training data, so re-materialising a
month, or materialising it alone, reuses an identical artefact already on disk instead of training again.

No look-ahead: the training window ends at the training month's rebalance date d, and a sample dated t
enters only if its label's 20th session is on or before d; labels are computed with ``as_of = d``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from factor_pipeline.market import session_calendar
from factor_pipeline.config import Config
from factor_pipeline.storage import Layout, StorageError, read_months

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


def training_month(month: str, retrain_months: tuple[int, ...]) -> str:
    """The newest month at or before ``month`` whose calendar month is a retrain month."""
    period = session_calendar.parse_month(month)
    for back in range(12):
        candidate = period - back
        if candidate.month in retrain_months:
            return candidate.strftime("%Y-%m")
    raise ValueError(f"no retrain month in {retrain_months}")


def training_dates(train_month: str, cfg: Config) -> pd.DatetimeIndex:
    """Cross-section dates of the training window whose labels are fully realised at its rebalance date.

    Works on session positions: a date t enters when position(t) + label horizon <= position(d), which needs
    no session after d and so works at the calendar's horizon (the December retrain of its last year).
    """
    end = session_calendar.rebalance_date(train_month)
    end_position = session_calendar.session_position(end)
    start_position = window_start_position(train_month, cfg)
    if start_position < 0:
        raise ValueError(
            f"the training window of {train_month} ({cfg.model.train_window_sessions} sessions) starts before the "
            f"calendar's first session {session_calendar.CALENDAR_START}"
        )
    start = session_calendar.all_sessions()[start_position]
    grid = session_calendar.training_grid(start, end, cfg.samples.sample_every)
    positions = session_calendar.all_sessions().get_indexer(grid)
    return grid[positions + training_label_horizon(cfg) <= end_position]


def training_label_horizon(cfg: Config) -> int:
    """Sessions of the label the model trains on: model.label_horizon, or the samples' (the seed's 20) when 0.

    The factor is still judged on the next month's return; a shorter training label trades some of that
    horizon's signal for less noise, and its training dates may run closer to the training date.
    """
    return cfg.model.label_horizon or cfg.samples.label_horizon


def window_months(train_month: str, cfg: Config) -> list[str]:
    dates = training_dates(train_month, cfg)
    return session_calendar.months_between(session_calendar.month_of(dates[0]), train_month)


def window_start_position(train_month: str, cfg: Config) -> int:
    """Session position of the training window's first session; negative when it would start before the calendar."""
    return session_calendar.session_position(session_calendar.rebalance_date(train_month)) - (cfg.model.train_window_sessions - 1)


def lookback_months(cfg: Config) -> int:
    """Most months before m whose samples and bars the model of month m reads, over the months exchange-calendars knows.

    Computed from the calendar rather than bounded by a rule of thumb, so the partition mappings declare
    the history a month needs. It is a property of the profile, not of the source, so it is taken over the
    library's own sessions, whatever calendar extends them.
    """
    months = session_calendar.months_between(session_calendar.FIRST_MONTH, _library_last_complete_month())
    most = 0
    for month in months:
        train_month = training_month(month, cfg.model.retrain_months)
        if window_start_position(train_month, cfg) < 0:
            continue
        first = window_months(train_month, cfg)[0]
        most = max(most, (session_calendar.parse_month(month) - session_calendar.parse_month(first)).n)
    return most


def _library_last_complete_month() -> str:
    from factor_pipeline.market import session_calendar

    horizon = session_calendar.exchange_calendar().known_until
    return (horizon + pd.Timedelta(days=1) - pd.offsets.MonthEnd(1)).strftime("%Y-%m")


@dataclass
class TrainingData:
    train_month: str
    dates: list[pd.Timestamp]
    X: list[np.ndarray]  # one [n_d, 40, 18] array per date
    y: list[np.ndarray]  # labels, transformed within each date (ModelConfig.label_transform)
    fingerprint: str
    n_val: int
    n_gap: int = 0  # dates left out between training and validation (the purge)

    @property
    def n_train(self) -> int:
        return len(self.dates) - self.n_val - self.n_gap

    @property
    def val_start(self) -> int:
        return len(self.dates) - self.n_val

    def train_X(self) -> np.ndarray:
        return np.concatenate(self.X[: self.n_train])

    def train_y(self) -> np.ndarray:
        return np.concatenate(self.y[: self.n_train])


def _zscore(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return ((values - values.mean()) / std).astype(np.float32) if std > 0 else np.zeros_like(values, dtype=np.float32)


WINSOR_LIMIT = 3.0  # in robust standard deviations (1.4826 x MAD) of the date's labels
MAD_SCALE = 1.4826


def transform_labels(values: np.ndarray, how: str) -> np.ndarray:
    """One date's labels as the loss sees them (ModelConfig.label_transform); mean 0, std 1 in each case.

    "zscore" is the seed's; "winsor" clips at median +- 3 robust sd so that limit runs and post-suspension
    jumps cannot dominate a Pearson loss; "rank" keeps only the order.
    """
    if how == "zscore":
        return _zscore(values)
    if how == "winsor":
        # Robust units (median, MAD): an outlier inflates the standard deviation it would be clipped by.
        median = np.median(values)
        mad = np.median(np.abs(values - median)) * MAD_SCALE
        if mad == 0:
            return _zscore(values)
        return _zscore(np.clip((values - median) / mad, -WINSOR_LIMIT, WINSOR_LIMIT))
    if how == "rank":
        return _zscore(pd.Series(values).rank(method="average").to_numpy(dtype=np.float64))
    raise ValueError(f"unknown label transform {how!r}")


def purge_gap(cfg: Config) -> int:
    """Dates dropped before the first validation date, so that no validation label window overlaps a training one."""
    return math.ceil(training_label_horizon(cfg) / cfg.samples.sample_every) if cfg.model.purge else 0


def model_inputs(X: np.ndarray, samples: pd.DataFrame, cfg: Config) -> np.ndarray:
    """What the GRU reads: the sequences, plus (inputs = "scale") each sample's side inputs repeated at every step.

    ``samples`` holds the rows of X in order (windows.load_samples with eligible_only=True).
    """
    from factor_pipeline.features.windows import SIDE_COLUMNS, STATE_SIDE_COLUMNS

    if cfg.model.inputs == "window":
        return X
    if cfg.model.inputs == "scale_steps":
        # Measured in bench/bench_training.py only; in the pipeline the same channels are model.step_channels.
        raise NotImplementedError("gru.inputs='scale_steps' is a bench option; in the pipeline set model.step_channels")
    columns = SIDE_COLUMNS if cfg.model.inputs == "scale_all" else STATE_SIDE_COLUMNS
    missing = [c for c in columns if c not in samples.columns]
    if missing:
        raise StorageError(
            f"gru.inputs='scale' needs the samples' side inputs ({missing[0]}, ...): re-materialise the samples"
        )
    side = samples[list(columns)].to_numpy(dtype=np.float32)
    side = np.broadcast_to(side[:, None, :], (len(X), X.shape[1], side.shape[1]))
    return np.concatenate([X, side], axis=2)


def with_step_channels(X: np.ndarray, steps: np.ndarray | None, cfg: Config) -> np.ndarray:
    """The window as the model reads it: X with the configured step channels (ModelConfig.step_channels) of
    ``steps`` (windows.scale_steps, the same rows) appended along the last axis, cut to the last
    ``model.window_steps`` steps when that is set; X itself when neither is configured."""
    if cfg.model.step_channels:
        from factor_pipeline.features.windows import STATE_FEATURES

        if steps is None:
            raise ValueError("model.step_channels needs the samples' step channels (windows.load_steps)")
        keep = [STATE_FEATURES.index(c) for c in cfg.model.step_channels]
        X = np.concatenate([X, np.asarray(steps[..., keep], dtype=np.float32)], axis=2)
    if cfg.model.window_steps:
        X = X[:, -cfg.model.window_steps :]
    return X


def load_training_data(layout: Layout, train_month: str, cfg: Config) -> TrainingData:
    from factor_pipeline.features import windows

    dates = training_dates(train_month, cfg)
    months = window_months(train_month, cfg)
    for month in months:
        layout.verify("samples", month)
    X_all, samples = windows.load_samples(layout.dataset("samples"), months, eligible_only=True)
    keep = samples["trade_date"].isin(dates).to_numpy()
    samples = samples.loc[keep].reset_index(drop=True)
    steps = windows.load_steps(layout.dataset("samples"), months)[keep] if cfg.model.step_channels else None
    X_all = model_inputs(with_step_channels(X_all[keep], steps, cfg), samples, cfg)
    as_of = session_calendar.rebalance_date(train_month)
    bars = read_months(layout, "raw_bars/daily", months)
    labels = windows.compute_labels(bars, samples, training_label_horizon(cfg), as_of).to_numpy(dtype=np.float64)
    known = np.isfinite(labels)
    samples, X_all, labels = samples.loc[known].reset_index(drop=True), X_all[known], labels[known]
    if len(samples) == 0:
        raise StorageError(f"no labelled training samples for {train_month}: materialise the samples of {months}")
    return group_training_data(train_month, samples, X_all, labels, cfg)


def group_training_data(
    train_month: str, samples: pd.DataFrame, X_all: np.ndarray, labels: np.ndarray, cfg: Config
) -> TrainingData:
    """Labelled samples (rows of X_all, labels raw forward returns) -> one batch per date, split in time."""
    digest = hashlib.sha256()
    grouped_X, grouped_y, used_dates = [], [], []
    for date, rows in samples.groupby("trade_date", sort=True).indices.items():
        if len(rows) < 3:
            continue  # a correlation needs at least three names
        X_d, y_d = np.ascontiguousarray(X_all[rows], dtype=np.float32), labels[rows]
        codes = samples["ts_code"].to_numpy()[rows]
        grouped_X.append(X_d)
        grouped_y.append(transform_labels(y_d, cfg.model.label_transform))
        used_dates.append(pd.Timestamp(date))
        digest.update(str(date).encode())
        digest.update("|".join(codes).encode())
        digest.update(X_d.tobytes())
        digest.update(y_d.tobytes())
    n_val = max(1, int(round(len(used_dates) * cfg.model.val_fraction)))
    n_gap = purge_gap(cfg)
    if len(used_dates) - n_val - n_gap < 1:
        raise StorageError(
            f"only {len(used_dates)} training dates for {train_month}: too few for a train/validation split "
            f"with {n_val} validation dates and a gap of {n_gap}"
        )
    return TrainingData(train_month, used_dates, grouped_X, grouped_y, digest.hexdigest()[:16], n_val, n_gap)


def _artifact_id(kind: str, train_month: str, cfg: Config, data_fingerprint: str, *parts: str) -> str:
    payload = "|".join([kind, train_month, cfg.fingerprint("samples", "gan", "model"), data_fingerprint, *parts])
    return f"{train_month}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


@dataclass
class GanArtifact:
    gan_id: str | None
    path: Path | None
    sidecar: dict
    trained: bool


def ensure_gan(layout: Layout, data: TrainingData, cfg: Config, log: Log = print) -> GanArtifact:
    """Train the GAN stage for this training window, or reuse the identical one on disk."""
    from factor_pipeline.model import gan
    from factor_pipeline.model import gru

    if cfg.gan.mode == "off":
        return GanArtifact(None, None, {"mode": "off"}, False)
    gan_id = _artifact_id("gan", data.train_month, cfg, data.fingerprint)
    path = layout.gan_models / f"{gan_id}.pt"
    expected = {"gan_id": gan_id}
    if path.exists() and path.with_suffix(".json").exists():
        try:
            _, sidecar = gan.load_gan(path, expected=expected)
            return GanArtifact(gan_id, path, sidecar, False)
        except gru.CheckpointError as exc:
            log(f"retraining the GAN: the stored one is unusable ({exc})")
    X = data.train_X()
    y = data.train_y() if cfg.gan.mode == "augment" else None
    with torch_threads(cfg.model.num_threads):
        result = gan.train_gan(X, y, cfg.gan, seed=cfg.model.seed, log=log, precision=cfg.model.precision)
        fake = (
            gan.generate(result, cfg.gan, min(len(X), 2048), seed=cfg.model.seed)[0]
            if cfg.gan.mode == "augment"
            else gan.transform(result, cfg.gan, X[:2048])
        )
    from factor_pipeline.features.windows import FEATURE_NAMES

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
        "versions": gru.package_versions(),
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
    from factor_pipeline.model import gan

    X, y = list(data.X), list(data.y)
    if cfg.gan.mode == "transform":
        state = load_generator(layout, gan_artifact.gan_id)
        X = [gan.transform(state, cfg.gan, x) for x in X]
    every_date = list(zip(X, y))
    train = list(zip(X[: data.n_train], y[: data.n_train]))
    val = list(zip(X[data.val_start :], y[data.val_start :]))
    if cfg.gan.mode == "augment" and cfg.gan.augment_ratio > 0:
        state = load_generator(layout, gan_artifact.gan_id)
        n_real = sum(len(b[1]) for b in train)
        X_gen, y_gen = gan.generate(state, cfg.gan, int(round(n_real * cfg.gan.augment_ratio)), seed=cfg.model.seed + 1)
        train = augment_batches(train, X_gen, y_gen)
    return train, val, every_date


def augment_batches(train, X_gen: np.ndarray, y_gen: np.ndarray):
    """Each date's batch with its share of the generated samples, made part of that date's cross-section.

    A generated label is a draw from the pooled label law, not a return of that date: its rank among the
    generated labels is mapped to the same quantile of the date's real labels (a quantile mapping), so
    generated samples join the date's ranking without shifting its distribution, and the whole batch is
    z-scored again as one cross-section.
    """
    out = []
    for (X_d, y_d), chunk in zip(train, np.array_split(np.arange(len(y_gen)), len(train))):
        if len(chunk) == 0:
            out.append((X_d, y_d))
            continue
        quantiles = (pd.Series(y_gen[chunk]).rank(method="average").to_numpy() - 0.5) / len(chunk)
        mapped = np.quantile(y_d.astype(np.float64), quantiles)
        labels = _zscore(np.concatenate([y_d.astype(np.float64), mapped]))
        out.append((np.concatenate([X_d, X_gen[chunk]]), labels))
    return out


def train_members(train, val, cfg: Config, log: Log | None = None, every_date=None):
    """The model (``ensemble`` members, seeds seed, seed+1, ...) trained on these batches: (state, results).

    With ``model.refit`` each member is trained again from its seed on ``every_date`` (all of the window's
    dates: training, purged and validation, in time order) for the number of epochs that early stopping chose,
    and the refitted weights are kept; ``results`` stay those of the early-stopped fits.
    """
    from factor_pipeline.model import gru

    n_features = train[0][0].shape[-1]
    results, states = [], []
    for i in range(cfg.model.ensemble):
        result = gru.train_gru(train, val, cfg.model, n_features=n_features, seed=cfg.model.seed + i, log=log)
        results.append(result)
        if cfg.model.refit:
            if every_date is None:
                raise ValueError("model.refit needs every date of the window (train_members(..., every_date=...))")
            epochs = max(1, result.best_epoch)
            refit = gru.train_gru(every_date, [], cfg.model, n_features, cfg.model.seed + i, log, fixed_epochs=epochs)
            states.append(refit.state_dict)
        else:
            states.append(result.state_dict)
    return gru.pack_ensemble(states), results


@dataclass
class CheckpointArtifact:
    checkpoint_id: str
    path: Path
    sidecar: dict
    trained: bool


def ensure_checkpoint(
    layout: Layout, data: TrainingData, cfg: Config, gan_artifact: GanArtifact, log: Log = print
) -> CheckpointArtifact:
    """Train the GRU on this window (with the GAN stage's output), or reuse the identical checkpoint on disk."""
    from factor_pipeline.model import gru

    checkpoint_id = _artifact_id("gru", data.train_month, cfg, data.fingerprint, gan_artifact.gan_id or "off")
    path = layout.checkpoints / f"{checkpoint_id}.pt"
    if path.exists() and path.with_suffix(".json").exists():
        try:
            _, sidecar = gru.load_checkpoint(path, expected={"checkpoint_id": checkpoint_id})
            return CheckpointArtifact(checkpoint_id, path, sidecar, False)
        except gru.CheckpointError as exc:
            log(f"retraining: the stored checkpoint is unusable ({exc})")
    with torch_threads(cfg.model.num_threads):
        train, val, every_date = _training_batches(data, cfg, gan_artifact, layout)
        state, results = train_members(train, val, cfg, log=log, every_date=every_date)
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
        "versions": gru.package_versions(),
    }
    gru.save_checkpoint(path, state, sidecar)
    return CheckpointArtifact(checkpoint_id, path, sidecar, True)


def predict_month(
    layout: Layout, X: np.ndarray, checkpoint_id: str, cfg: Config, samples: pd.DataFrame | None = None
) -> np.ndarray:
    """pRet of the samples X (one date's cross-section; ``samples`` its rows, needed with inputs = "scale")
    with the given checkpoint (after the GAN transform in transform mode). With step channels configured, X
    already holds them (:func:`with_step_channels`)."""
    from factor_pipeline.model import gan
    from factor_pipeline.model import gru

    state, sidecar = gru.load_checkpoint(layout.checkpoints / f"{checkpoint_id}.pt", expected={"checkpoint_id": checkpoint_id})
    if cfg.model.inputs != "window":
        if samples is None:
            raise ValueError("gru.inputs='scale': predict_month needs the samples' rows for their side inputs")
        X = model_inputs(X, samples, cfg)
    with torch_threads(cfg.model.num_threads):
        if sidecar.get("gan_mode") == "transform":
            X = gan.transform(load_generator(layout, sidecar["gan_id"]), cfg.gan, X)
        return gru.predict(state, X, cfg.model, n_features=X.shape[-1])

"""Which data trains the model of a month, and how: training windows, the split, labels and model inputs.

Retraining happens at the rebalance of the configured months (the seed: June and December). Every other
month resolves to the newest training month at or before it. The reads and writes around training (its
data, and the GAN and GRU trained once per content) live in store.py.

No look-ahead: the training window ends at the training month's rebalance date d, and a sample dated t
enters only if its label's 20th session is on or before d; labels are computed with ``as_of = d``.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from factor_pipeline.market import session_calendar
from factor_pipeline.config import Config
from factor_pipeline.model.inputs import exposure_residual
from factor_pipeline.stats import MAD_SCALE, zscore
from factor_pipeline.storage import StorageError

Log = Callable[[str], None]


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


WINSOR_LIMIT = 3.0  # in robust standard deviations (1.4826 x MAD) of the date's labels


def transform_labels(values: np.ndarray, how: str) -> np.ndarray:
    """One date's labels as the loss sees them (ModelConfig.label_transform); mean 0, std 1 in each case.

    "zscore" is the seed's; "winsor" clips at median +- 3 robust sd so that limit runs and post-suspension
    jumps cannot dominate a Pearson loss; "rank" keeps only the order.
    """
    if how == "zscore":
        return zscore(values).astype(np.float32)
    if how == "winsor":
        # Robust units (median, MAD): an outlier inflates the standard deviation it would be clipped by.
        median = np.median(values)
        mad = np.median(np.abs(values - median)) * MAD_SCALE
        if mad == 0:
            return zscore(values).astype(np.float32)
        return zscore(np.clip((values - median) / mad, -WINSOR_LIMIT, WINSOR_LIMIT)).astype(np.float32)
    if how == "rank":
        return zscore(pd.Series(values).rank(method="average").to_numpy(dtype=np.float64)).astype(np.float32)
    raise ValueError(f"unknown label transform {how!r}")


def purge_gap(cfg: Config) -> int:
    """Dates dropped before the first validation date, so that no validation label window overlaps a training one."""
    return math.ceil(training_label_horizon(cfg) / cfg.samples.sample_every) if cfg.model.purge else 0


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
        y_neutral = exposure_residual(y_d, samples.iloc[rows], cfg.model.label_neutralize)
        grouped_y.append(transform_labels(y_neutral, cfg.model.label_transform))
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
        labels = zscore(np.concatenate([y_d.astype(np.float64), mapped])).astype(np.float32)
        out.append((np.concatenate([X_d, X_gen[chunk]]), labels))
    return out


def gan_batches(data: TrainingData, cfg: Config, generator=None):
    """(training batches, validation batches) of a window after the GAN stage: every date through the
    ``generator`` (transform mode), or each training date joined by its share of generated samples (augment
    mode, :func:`augment_batches`); the dates as they are with the GAN off."""
    from factor_pipeline.model import gan

    X, y = list(data.X), list(data.y)
    if cfg.gan.mode == "transform":
        X = [gan.transform(generator, cfg.gan, x) for x in X]
    train = list(zip(X[: data.n_train], y[: data.n_train]))
    val = list(zip(X[data.val_start :], y[data.val_start :]))
    if cfg.gan.mode == "augment" and cfg.gan.augment_ratio > 0:
        n_real = sum(len(b[1]) for b in train)
        X_gen, y_gen = gan.generate(generator, cfg.gan, int(round(n_real * cfg.gan.augment_ratio)), seed=cfg.model.seed + 1)
        train = augment_batches(train, X_gen, y_gen)
    return train, val


def train_members(train, val, cfg: Config, log: Log | None = None, build: "gru.Build | None" = None, progress=None):
    """The model (``ensemble`` members, seeds seed, seed+1, ...) trained on these batches: (state, results).

    ``progress(member, members, epoch, max_epochs, validation IC)`` is called after each epoch of each member.
    """
    from factor_pipeline.model import checkpoints, gru

    n_features = train[0][0].shape[-1]
    results = [
        gru.train_gru(
            train, val, cfg.model, n_features, cfg.model.seed + i, log, build or gru.build_model,
            progress=None if progress is None else functools.partial(progress, i + 1, cfg.model.ensemble),
        )
        for i in range(cfg.model.ensemble)
    ]
    return checkpoints.pack_ensemble([r.state_dict for r in results]), results

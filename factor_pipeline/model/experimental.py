"""Training options measured and rejected (bench/bench_training.py, README "Factor quality"), kept for the
bench only: production never imports this module (the architecture test checks it).

``inputs`` side inputs ("scale", "scale_vol", "scale_all") and all 11 step channels unneutralised
("scale_steps"); ``window_steps`` (read only the last steps); ``linear_skip`` and ``side_at`` (linear reads
beside the GRU); ``refit`` (train again on every date for the epochs early stopping chose). Production holds
each at config.RETIRED_MODEL_FIELDS.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from factor_pipeline.config import Config, ConfigError, ModelConfig
from factor_pipeline.features.daily import N_FEATURES
from factor_pipeline.model import checkpoints, gru, inputs, precision, training
from factor_pipeline.storage import StorageError

ModelInputs = Literal["window", "scale", "scale_vol", "scale_all", "scale_steps"]
SideAt = Literal["gru", "head", "linear"]


@dataclass(frozen=True)
class ExperimentalModelConfig(ModelConfig):
    # "window": the seed's per-window z-score only; "scale": plus each non-level feature's window mean and
    # log-volatility, ranked across the date's stocks; "scale_vol": the log-volatilities only; "scale_all":
    # the means and log-volatilities of all 18 features; "scale_steps": all 11 step channels, unneutralised
    inputs: ModelInputs = "window"
    window_steps: int = 0  # the model reads only the last this many steps of each window; 0: all (the seed)
    linear_skip: bool = False  # also a linear read of the step channels over the whole window, added to pRet
    # Where side inputs enter: "gru" (a channel at every step), "head" (beside the GRU's state) or "linear"
    # (a linear term added to pRet)
    side_at: SideAt = "gru"
    refit: bool = False

    def __post_init__(self):
        if self.window_steps < 0:
            raise ConfigError(f"model.window_steps={self.window_steps} must be 0 (all) or more")


def experimental(cfg: Config, **model_changes) -> Config:
    """``cfg`` whose model accepts the experimental options, with ``model_changes`` applied."""
    model = ExperimentalModelConfig(**{f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(cfg.model)})
    return cfg.replace(model=dataclasses.replace(model, **model_changes))


def _option(cfg: Config, name: str):
    return getattr(cfg.model, name, ExperimentalModelConfig.__dataclass_fields__[name].default)


def model_input(X: np.ndarray, steps: np.ndarray | None, samples: pd.DataFrame, cfg: Config) -> np.ndarray:
    """inputs.model_input, then cut to the last ``window_steps`` steps, then the side inputs of ``inputs``."""
    from factor_pipeline.features.samples import SIDE_COLUMNS, STATE_SIDE_COLUMNS

    how = _option(cfg, "inputs")
    if how == "scale_steps":
        return np.concatenate([X, np.asarray(steps, dtype=np.float32)], axis=2)
    X = inputs.model_input(X, steps, samples, cfg)
    window_steps = _option(cfg, "window_steps")
    if window_steps > X.shape[1]:
        raise ConfigError(f"model.window_steps={window_steps} is longer than the window ({X.shape[1]} steps)")
    if window_steps:
        X = X[:, -window_steps:]
    if how == "window":
        return X
    columns = {
        "scale_all": SIDE_COLUMNS,
        "scale": STATE_SIDE_COLUMNS,
        "scale_vol": tuple(c for c in STATE_SIDE_COLUMNS if c.startswith("logvol_")),
    }[how]
    missing = [c for c in columns if c not in samples.columns]
    if missing:
        raise StorageError(f"model.inputs={how!r} needs the samples' side inputs ({missing[0]}, ...): re-materialise the samples")
    side = samples[list(columns)].to_numpy(dtype=np.float32)
    side = np.broadcast_to(side[:, None, :], (len(X), X.shape[1], side.shape[1]))
    return np.concatenate([X, side], axis=2)


class ExperimentalGRU(gru.GRUFactorModel):
    """The production model with side inputs at the head or read linearly, and a linear skip over the step
    channels."""

    def __init__(self, n_features, gru_hidden, mlp_hidden, dropout, head_side=0, skip=None, side_linear=False):
        nn.Module.__init__(self)
        # Layers in the order the production model once created them, so a seed draws the same weights.
        self.skip_channels = skip
        self.skip = nn.Linear(skip[1] * skip[2], 1, bias=False) if skip else None
        self.head_side = head_side
        self.side_read = nn.Linear(head_side, 1, bias=False) if side_linear and head_side else None
        self.grus = gru.gru_stack(n_features - head_side, gru_hidden)
        self.mlp = gru.mlp_head(gru_hidden[-1] + (0 if self.side_read is not None else head_side), mlp_hidden, dropout)
        self.fused_cpu = True
        self.split_batch = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.side_read is not None:
            h = self.mlp[:-1](self.encode(x[..., : -self.head_side]))
        elif self.head_side:
            sequence, side = x[..., : -self.head_side], x[:, -1, -self.head_side :]
            h = self.mlp[:-1](torch.cat([self.encode(sequence), side], dim=-1))
        else:
            h = self.mlp[:-1](self.encode(x))
        out = self.output(h)
        with torch.autocast(h.device.type, enabled=False):
            if self.skip is not None:
                first, count, _ = self.skip_channels
                read = x[..., first : first + count].reshape(len(x), -1).to(self.skip.weight.dtype)
                out = out + self.skip(read).squeeze(-1)
            if self.side_read is not None:
                out = out + self.side_read(x[:, -1, -self.head_side :].to(self.side_read.weight.dtype)).squeeze(-1)
        return out


def build(cfg: ModelConfig, n_features: int, seq_len: int = 40) -> ExperimentalGRU:
    side_at, linear_skip = getattr(cfg, "side_at", "gru"), getattr(cfg, "linear_skip", False)
    sequence = N_FEATURES + len(cfg.step_channels)  # the window's channels, then the step channels
    head_side = n_features - sequence if side_at in ("head", "linear") and n_features > sequence else 0
    skip = (N_FEATURES, len(cfg.step_channels), seq_len) if linear_skip and cfg.step_channels else None
    return ExperimentalGRU(
        n_features, cfg.gru_hidden, cfg.mlp_hidden, cfg.dropout, head_side, skip, side_linear=side_at == "linear"
    )


def fixed_fit(days, cfg: ModelConfig, n_features: int, seed: int, epochs: int, log=None) -> gru.TrainResult:
    """train_gru's initialisation, date order and steps for a fixed number of epochs, with no validation."""
    device = gru.resolve_device(cfg.device)
    days = gru.to_tensors(days, device)
    if not days or epochs < 1:
        raise ValueError(f"a fixed-epoch fit needs dates and at least one epoch (got {len(days)} dates, {epochs} epochs)")
    prec = precision.resolve(cfg.precision, device, log)
    with gru.training_run(cfg, n_features, days[0][0].shape[1], seed, device, build) as (model, optimizer, order_rng):
        train_loss = []
        for epoch in range(1, epochs + 1):
            train_loss.append(gru.train_epoch(model, optimizer, days, order_rng, prec))
            if log:
                log(f"refit epoch {epoch}: train loss {train_loss[-1]:.4f}")
        return gru.TrainResult(gru.cpu_state(model), epochs, epochs, math.nan, train_loss, [], prec.describe())


def every_date(data: training.TrainingData, cfg: Config, generator=None) -> list:
    """Every date of the window (training, purged, validation) as the model reads it, for the refit."""
    from factor_pipeline.model import gan

    X = [gan.transform(generator, cfg.gan, x) for x in data.X] if cfg.gan.mode == "transform" else list(data.X)
    return list(zip(X, data.y))


def train_members(train, val, cfg: Config, log=None, every_date=None):
    """training.train_members with the experimental model; with ``refit`` each member is trained again from
    its seed on ``every_date`` for the epochs early stopping chose, and those weights are kept (``results``
    stay the early-stopped fits')."""
    state, results = training.train_members(train, val, cfg, log, build)
    if not _option(cfg, "refit"):
        return state, results
    if every_date is None:
        raise ValueError("model.refit needs every date of the window (train_members(..., every_date=...))")
    n_features = train[0][0].shape[-1]
    states = [
        fixed_fit(every_date, cfg.model, n_features, cfg.model.seed + i, max(1, r.best_epoch), log).state_dict
        for i, r in enumerate(results)
    ]
    return checkpoints.pack_ensemble(states), results


def predict(state: dict, X: np.ndarray, cfg: Config) -> np.ndarray:
    return gru.predict(state, X, cfg.model, n_features=X.shape[-1], build=build)

"""What the GRU reads, built by one function for training, scoring and the bench: :func:`model_input`.

A mismatch between the inputs a model was trained on and those it scores is the costliest bug a factor
model can have, so nothing else assembles them; a test feeds one sample through both paths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.config import Config
from factor_pipeline.stats import neutralize
from factor_pipeline.storage import StorageError

# The samples' column of each risk exposure (config.RISK_EXPOSURES) other than industry, whose dummies come
# from the samples' industry column.
EXPOSURE_COLUMNS = {"size": "log_float_mcap", "beta": "market_beta"}


def exposure_residual(
    values: np.ndarray, rows: pd.DataFrame, exposures: tuple[str, ...], setting: str = "model.label_neutralize"
) -> np.ndarray:
    """One date's values (labels [n], or step channels [n, k]) less their OLS fit on the named exposures of
    ``rows`` (the same samples), under stats.neutralize's rule for missing values; ``setting`` names the
    option in errors."""
    if not exposures:
        return values
    groups = rows["industry"].to_numpy() if "industry" in exposures else None
    covariates = []
    for name in exposures:
        if name in EXPOSURE_COLUMNS:
            if EXPOSURE_COLUMNS[name] not in rows.columns:
                raise StorageError(
                    f"{setting}={exposures} needs the samples' {EXPOSURE_COLUMNS[name]} column: "
                    "re-materialise the samples"
                )
            covariates.append(rows[EXPOSURE_COLUMNS[name]].to_numpy(dtype=np.float64))
    return neutralize(values, groups, *covariates)


def model_input(X: np.ndarray, steps: np.ndarray | None, samples: pd.DataFrame | None, cfg: Config) -> np.ndarray:
    """The window as the model reads it: X (features.store.load_samples) with the configured step channels
    (ModelConfig.step_channels) of ``steps`` (features.samples.scale_steps, the same rows) appended along the
    last axis, made neutral to ``model.step_neutralize`` within each date of ``samples`` (the rows of X, needed
    only then); X itself when no step channel is configured."""
    if not cfg.model.step_channels:
        return X
    from factor_pipeline.features.samples import STATE_FEATURES

    if steps is None:
        raise ValueError("model.step_channels needs the samples' step channels (features.store.load_steps)")
    keep = [STATE_FEATURES.index(c) for c in cfg.model.step_channels]
    channels = np.asarray(steps[..., keep], dtype=np.float32)
    if cfg.model.step_neutralize:
        channels = _neutral_steps(channels, samples, cfg.model.step_neutralize)
    return np.concatenate([X, channels], axis=2)


def _neutral_steps(channels: np.ndarray, samples: pd.DataFrame | None, exposures: tuple[str, ...]) -> np.ndarray:
    """Step channels [n, steps, k] less their fit on ``exposures`` across each date's stocks, step by step."""
    if samples is None or len(samples) != len(channels):
        raise ValueError("model.step_neutralize needs the samples' rows beside their step channels")
    out = np.empty_like(channels)
    _, steps, k = channels.shape
    for rows in samples.groupby("trade_date", sort=False).indices.values():
        flat = channels[rows].reshape(len(rows), steps * k)
        neutral = exposure_residual(flat, samples.iloc[rows], exposures, "model.step_neutralize")
        out[rows] = neutral.reshape(len(rows), steps, k)
    return out

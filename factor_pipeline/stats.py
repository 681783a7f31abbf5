"""The statistics every stage shares: one z-score and one Pearson correlation, each with one rule for
constant input, and one neutralisation, with one rule for missing values.

The rule: values whose spread is within rounding noise of their magnitude are constant. A constant
input has no scores (its z-scores are all 0, the neutral score) and no correlation with anything
(NaN). Testing the spread rather than ``std == 0`` matters because the mean of equal floats can be off
by an ulp, and dividing by that ulp's std would turn rounding noise into scores of +-1.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# A spread this small relative to the values' magnitude is rounding noise.
REL_TOL = 1e-12
MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of a normal distribution's std


def is_constant(x: np.ndarray, axis=None, keepdims: bool = False) -> np.ndarray:
    """Whether the (finite) values along ``axis`` are constant under the module's rule."""
    high, low = x.max(axis=axis, keepdims=keepdims), x.min(axis=axis, keepdims=keepdims)
    magnitude = np.maximum(1.0, np.maximum(np.abs(high), np.abs(low)))
    return (high - low) <= REL_TOL * magnitude


def standardise(centred: np.ndarray, constant: np.ndarray, axis) -> np.ndarray:
    """centred / its population std along ``axis``, in place; zeros where ``constant``."""
    std = np.sqrt(np.mean(np.square(centred), axis=axis, keepdims=True))
    std[constant] = 1.0
    centred /= std
    centred *= ~constant
    return centred


def zscore(x, axis=None) -> np.ndarray:
    """z-score of finite values along ``axis`` (population std, so the scores have variance 1), float64.

    Constant values (and a single value) score 0.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    constant = np.asarray(is_constant(x, axis=axis, keepdims=True))
    return standardise(x - x.mean(axis=axis, keepdims=True), constant, axis)


def pearson(x, y) -> float:
    """Pearson correlation over the pairs where both values are finite; NaN below two pairs or when
    either side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or is_constant(x) or is_constant(y):
        return math.nan
    dx = x - x.mean()
    dy = y - y.mean()
    return float(np.clip((dx @ dy) / (math.sqrt(float(dx @ dx)) * math.sqrt(float(dy @ dy))), -1.0, 1.0))


def ols_residual(y: np.ndarray, groups: np.ndarray | None = None, *covariates: np.ndarray) -> np.ndarray:
    """The residual of ``y`` on one dummy per group (an intercept when ``groups`` is None) and the covariates.

    The caller passes complete rows (no NaN). ``np.linalg.lstsq`` returns the minimum-norm solution when the
    design is rank deficient (e.g. one group whose rows share a covariate value); the residual is unique anyway.
    """
    if groups is None:
        columns = [np.ones(len(y))]
    else:
        _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        columns = list(np.eye(codes.max() + 1)[codes].T) if len(codes) else []
    design = np.column_stack([*columns, *covariates]) if columns or covariates else np.zeros((len(y), 0))
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef


def neutralize(values, groups=None, *covariates) -> np.ndarray:
    """``values`` ([n], or [n, k] fitted column by column) less their OLS fit on one dummy per group and the
    covariates (:func:`ols_residual`), float64.

    The NaN rule, the same for labels, step channels and the factor: a row whose value (any of its k) or
    group is missing is left out of the fit and comes back NaN, since nothing can be said of it; a missing
    covariate value is set to the median of the others (0 when none is known), so that no row is lost for
    want of a market cap or a beta.
    """
    values = np.asarray(values, dtype=np.float64)
    filled = []
    for covariate in covariates:
        x = np.asarray(covariate, dtype=np.float64)
        finite = np.isfinite(x)
        filled.append(np.where(finite, x, np.median(x[finite]) if finite.any() else 0.0))
    keep = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if groups is not None:
        groups = np.asarray(groups, dtype=object)
        keep &= ~pd.isna(groups)
    if keep.all():
        return ols_residual(values, groups, *filled)
    out = np.full(values.shape, np.nan)
    if keep.any():
        out[keep] = ols_residual(values[keep], None if groups is None else groups[keep], *(x[keep] for x in filled))
    return out

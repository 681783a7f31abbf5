import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from factor_pipeline.stats import is_constant, neutralize, ols_residual, pearson, zscore


def test_zscore_matches_scipy_along_each_axis():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 7))
    for axis in (0, 1, None):
        np.testing.assert_allclose(zscore(x, axis=axis), scipy_stats.zscore(x, axis=axis, ddof=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("values", [[5.0, 5.0, 5.0], [7.0], [0.1 + 0.2, 0.3, 0.30000000000000004]])
def test_constant_values_score_zero(values):
    assert is_constant(np.asarray(values))
    assert (zscore(values) == 0).all()


def test_zscore_of_a_constant_column_is_zero_and_leaves_the_others():
    x = np.random.default_rng(1).normal(size=(20, 3))
    x[:, 1] = 4.2
    out = zscore(x, axis=0)
    assert (out[:, 1] == 0).all()
    np.testing.assert_allclose(out[:, 0], scipy_stats.zscore(x[:, 0]), rtol=1e-12)


def test_pearson_matches_numpy_over_the_pairs_with_both_values():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=200), rng.normal(size=200)
    y += 0.5 * x
    x[::7], y[::11] = np.nan, np.inf
    both = np.isfinite(x) & np.isfinite(y)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x[both], y[both])[0, 1], abs=1e-12)


def test_pearson_is_nan_for_constant_input_or_fewer_than_two_pairs():
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(pearson([1.0, 2.0, 3.0], [0.3, 0.1 + 0.2, 0.30000000000000004]))
    assert math.isnan(pearson([1.0, np.nan], [2.0, 3.0]))


def test_ols_residual_equals_the_within_group_regression_of_frisch_waugh():
    rng = np.random.default_rng(5)
    groups = rng.choice(["a", "b", "c"], size=60)
    x1, x2 = rng.normal(size=60), rng.normal(size=60)
    y = 2.0 * x1 - x2 + (groups == "b") * 3.0 + rng.normal(size=60)
    out = ols_residual(y, groups, x1, x2)

    # Independent: demean y and the covariates within each group, then a plain regression without intercept.
    def within(v):
        return v - pd.Series(v).groupby(groups).transform("mean").to_numpy()

    X = np.column_stack([within(x1), within(x2)])
    beta = np.linalg.solve(X.T @ X, X.T @ within(y))
    np.testing.assert_allclose(out, within(y) - X @ beta, atol=1e-10)
    assert abs(out @ x1) < 1e-8 and abs(out @ x2) < 1e-8


def test_ols_residual_without_groups_removes_the_mean_and_the_slope():
    x = np.arange(10.0)
    y = 1.5 + 0.5 * x + np.array([1, -1] * 5, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    np.testing.assert_allclose(ols_residual(y, None, x), y - (intercept + slope * x), atol=1e-12)


def test_neutralize_leaves_out_rows_missing_a_value_or_group_and_fills_a_missing_covariate_with_the_median():
    rng = np.random.default_rng(4)
    n = 40
    values = rng.normal(size=(n, 2))
    groups = rng.choice(["a", "b", "c"], size=n).astype(object)
    size = rng.normal(20.0, 1.0, size=n)
    values[3, 1] = np.nan  # one of the row's k values
    groups[7] = None
    size[11] = np.nan
    out = neutralize(values, groups, size)
    assert np.isnan(out[[3, 7]]).all() and np.isfinite(np.delete(out, [3, 7], axis=0)).all()
    # Independent: least squares on the kept rows in another basis (an intercept and k - 1 dummies).
    keep = np.ones(n, bool)
    keep[[3, 7]] = False
    filled = np.where(np.isnan(size), np.nanmedian(size), size)[keep]
    kept_groups = groups[keep].astype(str)
    design = np.column_stack([np.ones(keep.sum()), kept_groups == "b", kept_groups == "c", filled]).astype(float)
    for j in range(2):
        coef, *_ = np.linalg.lstsq(design, values[keep, j], rcond=None)
        np.testing.assert_allclose(out[keep, j], values[keep, j] - design @ coef, atol=1e-10)
    # Complete rows: exactly ols_residual.
    full = rng.normal(size=n)
    np.testing.assert_array_equal(neutralize(full, None, np.nan_to_num(size)), ols_residual(full, None, np.nan_to_num(size)))

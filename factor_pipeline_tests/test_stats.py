import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from factor_pipeline.stats import is_constant, pearson, zscore


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

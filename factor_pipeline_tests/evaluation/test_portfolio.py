"""The long portfolio's group sizes and return statistics, against empyrical and hand computations."""

import math

import empyrical
import numpy as np
import pandas as pd
import pytest

from factor_pipeline.evaluation.portfolio import (
    annualised_return,
    annualised_volatility,
    max_drawdown,
    nav,
    top_fraction_size,
    top_group_size,
)


def test_group_sizes_near_equal():
    assert [top_group_size(n, 10) for n in (0, 1, 2, 9, 10, 11, 12, 20, 21, 100, 101)] == [0, 1, 1, 1, 1, 1, 2, 2, 2, 10, 10]
    assert top_fraction_size(12, 0.2) == 2 and top_fraction_size(3, 0.2) == 1 and top_fraction_size(0, 0.2) == 0
    assert top_fraction_size(100, 0.29) == 29  # not floored to 28 by 0.29 * 100 = 28.999...


def test_three_month_nav_and_drawdown_by_hand():
    r = pd.Series([0.10, -0.20, 0.05])
    np.testing.assert_allclose(nav(r).to_numpy(), [1.1, 0.88, 0.924])
    assert max_drawdown(r) == pytest.approx(0.2)
    assert annualised_return(r) == pytest.approx(0.924**4 - 1)
    assert max_drawdown([-0.1, 0.05]) == pytest.approx(0.1)  # NAV(0) = 1 is a peak
    assert max_drawdown([0.1, 0.2]) == 0.0
    assert math.isnan(max_drawdown([])) and math.isnan(annualised_volatility([0.1]))


def test_return_helpers_against_empyrical():
    r = pd.Series(np.random.default_rng(18).normal(0.02, 0.07, 85))
    assert annualised_return(r) == pytest.approx(empyrical.annual_return(r, period="monthly"), rel=1e-12)
    assert annualised_volatility(r) == pytest.approx(empyrical.annual_volatility(r, period="monthly"), rel=1e-12)
    assert max_drawdown(r) == pytest.approx(-empyrical.max_drawdown(r), rel=1e-12)
    # NaN months: we drop them, empyrical counts them as 0-return months; equal once they are removed.
    r.iloc[[4, 30]] = np.nan
    assert annualised_return(r) == pytest.approx(empyrical.annual_return(r.dropna(), period="monthly"), rel=1e-12)
    assert annualised_return(r) != pytest.approx(empyrical.annual_return(r, period="monthly"), rel=1e-6)

import math

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.evaluation.ic_stats import ic_statistics, yearly_table


def test_ic_statistics_by_their_definitions():
    rng = np.random.default_rng(4)
    ic = rng.normal(0.05, 0.08, 30)
    rank_ic = rng.normal(0.06, 0.07, 30)
    ic_with_gap = np.r_[ic[:10], np.nan, ic[10:]]
    s = ic_statistics(ic_with_gap, rank_ic)
    n, mean, std = 30, ic.mean(), ic.std(ddof=1)
    t = mean / (std / math.sqrt(n))
    centred = ic - mean
    m2, m3, m4 = (centred**2).mean(), (centred**3).mean(), (centred**4).mean()
    assert s["months"] == n and s["mean"] == pytest.approx(mean) and s["std"] == pytest.approx(std)
    assert s["t_stat"] == pytest.approx(t)
    # Two-sided p of Student's t with n - 1 degrees of freedom, by numerical integration of its density.
    from math import gamma

    nu = n - 1
    x = np.linspace(abs(t), 60, 200001)
    density = gamma((nu + 1) / 2) / (math.sqrt(nu * math.pi) * gamma(nu / 2)) * (1 + x**2 / nu) ** (-(nu + 1) / 2)
    assert s["p_value"] == pytest.approx(2 * np.trapezoid(density, x), rel=1e-5)
    assert s["skew"] == pytest.approx(m3 / m2**1.5)
    assert s["kurtosis"] == pytest.approx(m4 / m2**2 - 3)
    assert s["positive_share"] == pytest.approx((ic > 0).mean())
    assert s["icir"] == pytest.approx(mean / std)
    assert s["rank_icir"] == pytest.approx(rank_ic.mean() / rank_ic.std(ddof=1))


def test_ic_statistics_of_too_few_months_are_undefined():
    s = ic_statistics([0.1, 0.2], [0.1, 0.2])
    assert s["months"] == 2 and math.isnan(s["t_stat"]) and math.isnan(s["p_value"])


def test_yearly_table():
    ic = pd.DataFrame({"month": ["2023-11", "2023-12", "2024-01", "2024-02"], "ic": [0.1, 0.3, -0.1, 0.05],
                       "rank_ic": [0.2, 0.2, 0.0, 0.1]})
    portfolio = pd.DataFrame({"month": ic["month"], "excess_return": [0.02, -0.01, 0.03, 0.5],
                              "complete": [True, True, True, False]})
    table = yearly_table(ic, portfolio).set_index("year")
    assert table.loc["2023", "ic"] == pytest.approx(0.2) and table.loc["2024", "rank_ic"] == pytest.approx(0.05)
    assert table.loc["2023", "long_excess"] == pytest.approx(1.02 * 0.99 - 1)
    assert table.loc["2023", "win_rate"] == pytest.approx(0.5)
    # The partial month is in the IC means, not in the return figures.
    assert table.loc["2024", "long_excess"] == pytest.approx(0.03) and table.loc["2024", "months"] == 1

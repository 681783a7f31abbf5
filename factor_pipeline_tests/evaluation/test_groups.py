import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from factor_pipeline.evaluation import groups
from factor_pipeline.evaluation.portfolio import group_turnover, top_group, top_group_size


def panel(n, seed=0, buyable=1.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "ts_code": [f"{600000 + i}.SH" for i in range(n)],
            "factor": rng.normal(size=n),
            "buyable": rng.random(n) < buyable,
            "fwd_return": rng.normal(0, 0.05, n),
        }
    )


@pytest.mark.parametrize("n", [1, 2, 3, 9, 10, 11, 57, 400, 5001])
@pytest.mark.parametrize("n_groups", [2, 5, 10])
def test_groups_are_near_equal_ordered_and_the_top_is_the_long_portfolio(n, n_groups):
    p = panel(n, seed=n, buyable=0.9)
    members = groups.group_members(p, n_groups)
    assert sorted(members["ts_code"]) == sorted(p.loc[p["buyable"], "ts_code"])
    top = members[members["group"] == members["group"].max()]
    assert sorted(top["ts_code"]) == sorted(top_group(p, n_groups))
    assert len(top) == top_group_size(int(p["buyable"].sum()), n_groups)
    factor = p.set_index("ts_code")["factor"]
    by_group = members.assign(f=members["ts_code"].map(factor)).groupby("group")["f"]
    assert (by_group.max().shift(1).dropna() <= by_group.min().iloc[1:]).all()  # groups never overlap
    sizes = members["group"].value_counts()
    if len(members) >= n_groups:
        assert sizes.max() - sizes.min() <= 1 and len(sizes) == n_groups


def test_group_turnover_matches_the_pairwise_rule_with_unequal_sizes():
    before, after = panel(53, seed=1), panel(53, seed=2)
    after = after.iloc[3:]  # three names gone: groups change size
    prev, cur = groups.group_members(before, 10), groups.group_members(after, 10)
    mine = groups.group_turnovers(cur, prev, 10)
    for g in range(1, 11):
        expected = group_turnover(cur.loc[cur.group == g, "ts_code"].tolist(), prev.loc[prev.group == g, "ts_code"].tolist())
        assert mine.loc[g] == pytest.approx(expected, abs=1e-12)
    assert groups.group_turnovers(cur, None, 10).isna().all()


def test_long_short_spread_and_its_statistics():
    frame = pd.DataFrame(
        {"month": ["2024-01"] * 3 + ["2024-02"] * 3, "factor": "pret", "group": [1, 2, 3] * 2,
         "mean_return": [0.01, 0.02, 0.05, -0.02, 0.0, 0.01]}
    )
    spread = groups.long_short(frame)
    assert spread["spread"].tolist() == pytest.approx([0.04, 0.03])
    s = groups.spread_statistics(spread["spread"])
    assert s["annual_return"] == pytest.approx((1.04 * 1.03) ** 6 - 1)
    assert s["annual_volatility"] == pytest.approx(np.std([0.04, 0.03], ddof=1) * math.sqrt(12))
    assert s["max_drawdown"] == 0.0


def test_monotonicity_is_spearman_of_group_and_mean_return():
    means = pd.Series([0.01, 0.005, 0.02, 0.03], index=[1, 2, 3, 4])
    assert groups.monotonicity(means) == pytest.approx(stats.spearmanr([1, 2, 3, 4], means)[0])
    assert groups.monotonicity(pd.Series([0.01, 0.02, 0.03], index=[1, 2, 3])) == pytest.approx(1.0)
    assert math.isnan(groups.monotonicity(pd.Series([0.01], index=[1])))

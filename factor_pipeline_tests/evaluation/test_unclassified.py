"""A stock without a Shenwan membership keeps its factor and its place in the IC and the portfolio, forms its own
group when the factor is neutralised, and is left out of the industry tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.config import profile_config
from factor_pipeline.evaluation import factor_table, metrics
from factor_pipeline.market.trading_rules import UNCLASSIFIED


def _panel(n=60):
    rng = np.random.default_rng(3)
    industry = np.array(["Banks"] * 25 + ["Media"] * 25 + [UNCLASSIFIED] * (n - 50), dtype=object)
    return pd.DataFrame({"ts_code": [f"{600000 + i}.SH" for i in range(n)], "industry": industry,
                         "factor": rng.normal(size=n), "buyable": True, "fwd_return": rng.normal(size=n)})


def test_unclassified_stocks_are_in_the_ic_but_not_in_the_industry_tables():
    panel = _panel()
    result = metrics.evaluate_month("2024-01", panel, None, profile_config("smoke").factor)
    assert result.n_stocks == len(panel)
    assert set(result.industry_ic["industry"]) == {"Banks", "Media"}
    assert set(result.industry_long_excess["industry"]) == {"Banks", "Media"}


def test_the_neutralised_factor_keeps_unclassified_stocks():
    panel = _panel()
    neutral = factor_table.neutralize(panel["factor"], panel["industry"], pd.Series(np.linspace(20, 24, len(panel))))
    assert neutral.notna().all()
    unclassified = (panel["industry"] == UNCLASSIFIED).to_numpy()
    # Its own group: demeaned among themselves, they move no industry's mean.
    assert abs(neutral[unclassified].mean()) < 1e-9
    assert not np.allclose(neutral[unclassified], 0.0)

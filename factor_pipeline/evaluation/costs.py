"""Trading costs as A-shares charge them (docs/market.md, "Trading costs"; docs/metrics.md, "Costs").

Each month a group trades from last month's holding to this month's: with equal weights and fully invested, it
sells and buys the one-sided turnover tau each. Buys pay commission and slippage; sells pay those and the stamp
duty in force on the rebalance date. The first month buys the whole group from cash and sells nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.config import EvaluationConfig
from factor_pipeline.evaluation.portfolio import nav
from factor_pipeline.market.trading_rules import stamp_duty_rate


def monthly_cost(turnover: pd.Series, rebalance_dates: pd.Series, cfg: EvaluationConfig) -> pd.Series:
    """Cost of each month as a fraction of the portfolio; ``turnover`` is one-sided, NaN for the first month."""
    tau = pd.Series(turnover, dtype="float64")
    first = tau.isna()
    buys = tau.where(~first, 1.0)
    sells = tau.where(~first, 0.0)
    side = cfg.commission + cfg.slippage
    stamp = stamp_duty_rate(rebalance_dates)
    return pd.Series(buys.to_numpy() * side + sells.to_numpy() * (side + stamp), index=tau.index, name="cost")


def net_returns(frame: pd.DataFrame, cfg: EvaluationConfig) -> pd.Series:
    """``mean_return`` less the month's cost; ``frame`` holds one portfolio's months in order, with
    ``mean_return``, ``turnover`` and ``rebalance_date``."""
    cost = monthly_cost(frame["turnover"], frame["rebalance_date"], cfg)
    return (frame["mean_return"].astype("float64") - cost).rename("net_return")


def net_value(returns) -> np.ndarray:
    """NAV(0) = 1 followed by prod(1 + r) month by month (NaN months skipped)."""
    return np.concatenate([[1.0], nav(returns).to_numpy()])

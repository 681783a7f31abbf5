"""Every group of the buyable set, the long-short spread and monotonicity (docs/metrics.md, "Groups").

Vectorised over the stocks of a month: one sort, integer arithmetic for the group of each position, and
groupby means; no loop over stocks. Group 1 holds the lowest factor values and group G the highest, so
group G is the long portfolio of ``portfolio.top_group``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from factor_pipeline.evaluation.metrics import spearman
from factor_pipeline.evaluation.portfolio import (
    annualised_return,
    annualised_volatility,
    max_drawdown,
    ranked_codes,
    ratio_or_nan,
)

GROUP_COLUMNS = ["group", "n", "mean_return", "turnover"]


def assign_groups(codes: pd.Series, factor: pd.Series, n_groups: int) -> pd.Series:
    """Group 1..G of each stock with a factor, by the top-group rule applied to every group (metrics.py).

    With the N stocks ordered by (factor descending, ts_code ascending), the stock at position q has ascending
    position p = N - 1 - q and falls in group ceil(p G / (N - 1)) (at least 1): qcut's bins on distinct values,
    whose top bin is ``portfolio.top_group_size``. A single stock is the top group. Index: that of ``codes``,
    restricted to the stocks with a factor.
    """
    order = ranked_codes(codes, factor)
    n = len(order)
    if n == 0:
        return pd.Series([], index=order, dtype="int64", name="group")
    if n == 1:
        return pd.Series([n_groups], index=order, dtype="int64", name="group")
    p = (n - 1) - np.arange(n, dtype=np.int64)
    group = np.maximum(1, (p * n_groups + (n - 2)) // (n - 1))
    return pd.Series(group, index=order, dtype="int64", name="group")


def group_members(panel: pd.DataFrame, n_groups: int) -> pd.DataFrame:
    """(ts_code, group) of the buyable stocks with a factor; ``panel`` as ``metrics.evaluate_month`` takes it."""
    buyable = panel[panel["buyable"].astype(bool)]
    groups = assign_groups(buyable["ts_code"], buyable["factor"], n_groups)
    return pd.DataFrame({"ts_code": buyable.loc[groups.index, "ts_code"].astype(str).to_numpy(), "group": groups.to_numpy()})


def group_turnovers(current: pd.DataFrame, previous: pd.DataFrame | None, n_groups: int) -> pd.Series:
    """One-sided turnover 0.5 sum |w(i,m) - w(i,m-1)| of each equal-weight group (``portfolio.group_turnover``
    for all groups at once); NaN without a previous month. Index: group 1..G."""
    index = pd.RangeIndex(1, n_groups + 1, name="group")
    if previous is None:
        return pd.Series(np.nan, index=index, name="turnover")
    weights = []
    for frame, sign in ((current, 1.0), (previous, -1.0)):
        size = frame.groupby("group")["ts_code"].transform("size")
        weights.append(pd.DataFrame({"group": frame["group"], "ts_code": frame["ts_code"], "w": sign / size}))
    both = pd.concat(weights, ignore_index=True)
    net = both.groupby(["group", "ts_code"], sort=False)["w"].sum().abs()
    out = 0.5 * net.groupby(level="group").sum()
    # A group empty in both months holds cash throughout: no trade.
    return out.reindex(index, fill_value=0.0).rename("turnover")


def group_returns(panel: pd.DataFrame, members: pd.DataFrame, previous: pd.DataFrame | None, n_groups: int) -> pd.DataFrame:
    """One row per group 1..G: its target size n, the mean R of its stocks that have one, and its turnover."""
    returns = panel.set_index(panel["ts_code"].astype(str))["fwd_return"]
    joined = members.assign(fwd_return=members["ts_code"].map(returns).astype("float64"))
    by_group = joined.groupby("group")
    index = pd.RangeIndex(1, n_groups + 1, name="group")
    out = pd.DataFrame(
        {
            "n": by_group.size().reindex(index, fill_value=0).astype("int64"),
            "mean_return": by_group["fwd_return"].mean().reindex(index).astype("float64"),
            "turnover": group_turnovers(members, previous, n_groups),
        }
    )
    return out.reset_index()[GROUP_COLUMNS]


def long_short(groups: pd.DataFrame) -> pd.DataFrame:
    """(month, factor, top_return, bottom_return, spread) from group rows: group G minus group 1."""
    top_group = groups["group"].max()
    keys = ["month", "factor"]
    top = groups[groups["group"] == top_group].set_index(keys)["mean_return"].rename("top_return")
    bottom = groups[groups["group"] == 1].set_index(keys)["mean_return"].rename("bottom_return")
    out = pd.concat([top, bottom], axis=1).reset_index()
    out["spread"] = out["top_return"] - out["bottom_return"]
    return out


def spread_statistics(spread) -> dict:
    """The long-short spread's annualised return, volatility, IR and maximum drawdown (portfolio.py's rules)."""
    annual = annualised_return(spread)
    vol = annualised_volatility(spread)
    return {
        "annual_return": annual,
        "annual_volatility": vol,
        "ir": ratio_or_nan(annual, vol),
        "max_drawdown": max_drawdown(spread),
    }


def monotonicity(mean_by_group: pd.Series) -> float:
    """Spearman correlation of group number and the group's mean monthly return: 1 when returns rise group by group."""
    values = pd.Series(mean_by_group, dtype="float64")
    if values.notna().sum() < 2:
        return math.nan
    return spearman(values.index.to_numpy(dtype="float64"), values.to_numpy())

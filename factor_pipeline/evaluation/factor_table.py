"""Cross-sectional factor transforms and the 20-day reversal baseline.

Pure pandas/numpy functions: the Dagster assets call them with one rebalance date's cross-section.
Every function keeps its input index (one row per ts_code) so that the caller can join the result
back without reordering, and a value that cannot be computed stays NaN rather than being filled:
the evaluation treats a NaN factor as "not ranked".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# A standard deviation this small relative to the values' scale is rounding noise of a constant
# cross-section (e.g. the mean of many equal floats), not a real spread; dividing by it would turn
# the noise into +-1 scores.
_REL_STD_TOL = 1e-12

REVERSAL_LOOKBACK = 20


def zscore(values: pd.Series) -> pd.Series:
    """Cross-sectional z-score: (x - mean) / std over the non-NaN values.

    The population standard deviation (ddof = 0) is used, so the non-NaN scores have mean 0 and
    variance exactly 1. NaN stays NaN. With fewer than two values, or no spread at all, every non-NaN
    value becomes 0: such a cross-section ranks nobody above anybody, and 0 is the neutral score.
    """
    values = pd.Series(values, dtype="float64", copy=True)
    valid = values.notna()
    out = pd.Series(np.nan, index=values.index, dtype="float64", name=values.name)
    if valid.sum() < 2:
        out[valid] = 0.0
        return out
    x = values[valid].to_numpy()
    mean = x.mean()
    std = x.std(ddof=0)
    if not np.isfinite(std) or std <= _REL_STD_TOL * max(1.0, abs(mean)):
        out[valid] = 0.0
        return out
    out[valid] = (x - mean) / std
    return out


def neutralize(factor: pd.Series, industry: pd.Series, log_mcap: pd.Series) -> pd.Series:
    """Industry- and size-neutral factor: the OLS residual of ``factor`` on industry dummies and log
    float market cap, z-scored.

    The design matrix has one dummy per industry present and no separate intercept (the dummies span
    it), so the residual has zero mean within every industry and zero covariance with log_mcap.
    Rows where any of the three inputs is missing are left out of the regression and come back NaN.
    ``np.linalg.lstsq`` is used because it returns the minimum-norm solution when the design is rank
    deficient (e.g. one industry whose stocks all have the same size); the residual is unique anyway.
    The three Series are aligned on ``factor``'s index, which is also the output's index.
    """
    factor = pd.Series(factor, dtype="float64")
    industry = pd.Series(industry).reindex(factor.index)
    log_mcap = pd.Series(log_mcap, dtype="float64").reindex(factor.index)
    valid = factor.notna() & industry.notna() & log_mcap.notna() & np.isfinite(log_mcap.fillna(0.0))
    out = pd.Series(np.nan, index=factor.index, dtype="float64", name=factor.name)
    if not valid.any():
        return out
    dummies = pd.get_dummies(industry[valid].astype(str), dtype="float64")
    design = np.column_stack([dummies.to_numpy(), log_mcap[valid].to_numpy()])
    y = factor[valid].to_numpy()
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    out[valid] = y - design @ coef
    return zscore(out)


def reversal_20d(adj_close: pd.DataFrame, rebalance_date) -> pd.Series:
    """The classic short-term reversal baseline: minus the stock's return over its last 20 traded days.

    ``adj_close`` is a long frame (ts_code, trade_date, adj_close) holding traded days only. For each
    stock, with its rows up to ``rebalance_date`` in date order, the factor is
    -(adj_close[d] / adj_close[20 traded days earlier] - 1). "Traded days" rather than sessions: a
    suspended stock's lookback reaches further back in the calendar, as the GRU's 40-day window does.
    NaN when the stock did not trade on the rebalance date (it is not in the universe and has no
    current price) or has fewer than 21 traded days up to it, or when a price is missing or not
    positive. Index: every ts_code of the input, sorted.
    """
    d = pd.Timestamp(rebalance_date)
    frame = adj_close.loc[:, ["ts_code", "trade_date", "adj_close"]].copy()
    frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    codes = pd.Index(sorted(frame["ts_code"].unique()), name="ts_code")
    frame = frame[frame["trade_date"] <= d]
    # One row per stock and day: a duplicated input row must not count as an extra traded day.
    frame = frame.drop_duplicates(["ts_code", "trade_date"], keep="last")
    frame = frame.sort_values(["ts_code", "trade_date"], kind="mergesort")
    grouped = frame.groupby("ts_code", sort=False)
    last = grouped.tail(1).set_index("ts_code")
    # The row REVERSAL_LOOKBACK traded days before the last one, if the stock has that many.
    position = grouped.cumcount(ascending=False)
    base = frame[position == REVERSAL_LOOKBACK].set_index("ts_code")["adj_close"]
    current = last["adj_close"].where(last["trade_date"] == d)
    base = base.reindex(current.index)
    ratio = current / base
    ratio = ratio.where((current > 0) & (base > 0))
    out = -(ratio - 1.0)
    return out.reindex(codes).astype("float64").rename("reversal_20d")

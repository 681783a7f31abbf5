"""The month's factor table: pRet beside its baselines, and the cross-sectional transforms it uses.

Pure pandas/numpy functions: the Dagster assets call them with one rebalance date's cross-section.
Every function keeps its input index (one row per ts_code) so that the caller can join the result
back without reordering, and a value that cannot be computed stays NaN rather than being filled:
the evaluation treats a NaN factor as "not ranked".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline import stats

REVERSAL_TRADED_DAYS = 20
# Months of bars the reversal reads: 20 traded days reach into the previous month, and a suspension
# can push them one month further.
REVERSAL_HISTORY_MONTHS = 2
FACTOR_COLUMNS = ("month", "trade_date", "ts_code", "industry", "buyable", "log_float_mcap")


def zscore(values: pd.Series) -> pd.Series:
    """Cross-sectional z-score: (x - mean) / std over the non-NaN values.

    The population standard deviation (ddof = 0) is used, so the non-NaN scores have mean 0 and
    variance exactly 1. NaN stays NaN. With fewer than two values, or no spread at all, every non-NaN
    value becomes 0: such a cross-section ranks nobody above anybody, and 0 is the neutral score.
    """
    values = pd.Series(values, dtype="float64", copy=True)
    valid = values.notna()
    out = pd.Series(np.nan, index=values.index, dtype="float64", name=values.name)
    out[valid] = stats.zscore(values[valid].to_numpy())
    return out


def neutralize(factor: pd.Series, industry: pd.Series, log_mcap: pd.Series) -> pd.Series:
    """Industry- and size-neutral factor: the residual of ``factor`` on industry dummies and log float market
    cap (stats.neutralize, whose rule for missing values applies: a missing factor or industry comes back
    NaN, a missing size is the date's median), z-scored. The three Series are aligned on ``factor``'s index,
    which is also the output's index.
    """
    factor = pd.Series(factor, dtype="float64")
    industry = pd.Series(industry).reindex(factor.index)
    log_mcap = pd.Series(log_mcap, dtype="float64").reindex(factor.index)
    residual = stats.neutralize(factor.to_numpy(), industry.to_numpy(), log_mcap.to_numpy())
    return zscore(pd.Series(residual, index=factor.index, name=factor.name))


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
    # The row REVERSAL_TRADED_DAYS traded days before the last one, if the stock has that many.
    position = grouped.cumcount(ascending=False)
    base = frame[position == REVERSAL_TRADED_DAYS].set_index("ts_code")["adj_close"]
    current = last["adj_close"].where(last["trade_date"] == d)
    base = base.reindex(current.index)
    ratio = current / base
    ratio = ratio.where((current > 0) & (base > 0))
    out = -(ratio - 1.0)
    return out.reindex(codes).astype("float64").rename("reversal_20d")


def build_factor_table(
    samples: pd.DataFrame,
    pret_raw: np.ndarray,
    record: dict,
    bars: pd.DataFrame,
    rebalance_date,
    neutralise: bool,
    pret_gan_off: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per stock scored on the rebalance date: pRet (raw and as the factor), the checkpoint that made
    it, and the baselines beside it (the 20-day reversal from ``bars``; the GAN-off GRU when trained).

    ``samples`` holds the rebalance date's rows of the samples table in the order of ``pret_raw``.
    """
    out = samples[list(FACTOR_COLUMNS)].rename(columns={"trade_date": "rebalance_date"})
    out["pret_raw"] = pret_raw
    if neutralise:
        by_code = out.set_index("ts_code")
        out["pret"] = neutralize(pd.Series(pret_raw, index=out["ts_code"]), by_code["industry"], by_code["log_float_mcap"]).to_numpy()
    else:
        out["pret"] = pret_raw
    out["checkpoint"] = record["checkpoint"]
    out["train_month"] = record["train_month"]
    if pret_gan_off is not None:
        out["pret_gan_off"] = pret_gan_off
    traded = bars[bars["volume"] > 0]
    adj = traded.assign(adj_close=traded["close"] * traded["adj_factor"])
    reversal = reversal_20d(adj[["ts_code", "trade_date", "adj_close"]], rebalance_date)
    out["reversal_20d"] = out["ts_code"].map(reversal).to_numpy(dtype=float)
    return out

"""Style exposure (docs/metrics.md, "Style exposure"): what a factor shares with the classic styles, and its IC
once they are taken out.

Each style is a number per stock on d(m), read from what the pipeline already computes (the factor table's size
and reversal, the samples' market beta) or from the daily bars up to d(m): nothing after d(m).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.evaluation import factor_table
from factor_pipeline.evaluation.metrics import spearman
from factor_pipeline.market import session_calendar
from factor_pipeline.stats import neutralize, pearson

STYLES = ("size", "beta", "volatility_20d", "turnover_20d", "reversal_20d", "momentum_12_1")
WINDOW_TRADED_DAYS = 20
# 12-1 momentum runs from d(m-12) to d(m-1).
MOMENTUM_MONTHS = (12, 1)
STYLE_COLUMNS = ["month", "factor", "style", "correlation"]


def _last_close_on_or_before(adj: pd.DataFrame, date: pd.Timestamp) -> pd.Series:
    before = adj[adj["trade_date"] <= date]
    return before.groupby("ts_code")["adj_close"].last()


def style_frame(table: pd.DataFrame, beta: pd.Series, bars: pd.DataFrame, month: str) -> pd.DataFrame:
    """One row per row of the factor ``table``: the six styles of each stock on d(month).

    ``beta``: market beta by ts_code on d(month) (the samples'); ``bars``: daily bars of the months of d(m-12)
    and m-1..m. Volatility and turnover are the standard deviation of daily returns and the mean turnover rate
    over the last 20 traded days up to d(m) within months m-1 and m; momentum is the adjusted close on d(m-1) over that on d(m-12)
    (each the last close on or before the date), less one. NaN where the data is short.
    """
    rebalance = session_calendar.rebalance_date(month)
    traded = bars[(bars["volume"] > 0) & (bars["trade_date"] <= rebalance)]
    traded = traded.sort_values(["ts_code", "trade_date"], kind="mergesort")
    adj = pd.DataFrame(
        {
            "ts_code": traded["ts_code"].to_numpy(),
            "trade_date": traded["trade_date"].to_numpy(),
            "adj_close": (traded["close"] * traded["adj_factor"]).to_numpy(),
            "turnover_rate": (traded["volume"] / traded["float_shares"].where(traded["float_shares"] > 0)).to_numpy(),
        }
    )
    # The 20-day figures read months m-1 and m only: a return across the gap to month m-12's bars is no return.
    recent = adj[adj["trade_date"] > session_calendar.rebalance_date(session_calendar.shift_month(month, -2))].copy()
    recent["ret"] = recent.groupby("ts_code")["adj_close"].pct_change()
    recent = recent.groupby("ts_code").tail(WINDOW_TRADED_DAYS)
    by_code = recent.groupby("ts_code")
    volatility = by_code["ret"].std(ddof=1).where(by_code["ret"].count() >= WINDOW_TRADED_DAYS)
    turnover = by_code["turnover_rate"].mean()
    far, near = (session_calendar.rebalance_date(session_calendar.shift_month(month, -k)) for k in MOMENTUM_MONTHS)
    momentum = _last_close_on_or_before(adj, near) / _last_close_on_or_before(adj, far) - 1.0
    codes = table["ts_code"]
    frame = pd.DataFrame(
        {
            "size": table["log_float_mcap"].to_numpy(dtype="float64"),
            "beta": codes.map(beta).to_numpy(dtype="float64"),
            "volatility_20d": codes.map(volatility).to_numpy(dtype="float64"),
            "turnover_20d": codes.map(turnover).to_numpy(dtype="float64"),
            "reversal_20d": table["reversal_20d"].to_numpy(dtype="float64"),
            "momentum_12_1": codes.map(momentum).to_numpy(dtype="float64"),
        },
        index=table.index,
    )
    return frame[list(STYLES)]


def exposures(factor: pd.Series, styles: pd.DataFrame) -> dict[str, float]:
    """Spearman correlation of the factor with each style, over the stocks with both."""
    return {style: spearman(factor, styles[style]) for style in styles.columns}


def neutral_ics(factor: pd.Series, industry: pd.Series, styles: pd.DataFrame, fwd_return: pd.Series) -> dict[str, float]:
    """The IC of the raw factor, of its residual on industry and size, and of its residual on industry and
    every style (stats.neutralize's rule for missing values)."""
    x = factor.to_numpy(dtype="float64")
    r = fwd_return.to_numpy(dtype="float64")
    groups = industry.to_numpy(dtype=object)
    size_neutral = factor_table.neutralize(factor, industry, styles["size"]).to_numpy()
    style_neutral = neutralize(x, groups, *(styles[s].to_numpy() for s in styles.columns))
    return {
        "ic": pearson(x, r),
        "ic_industry_size_neutral": pearson(size_neutral, r),
        "ic_style_neutral": pearson(style_neutral, r),
    }


def style_rows(month: str, factor_name: str, factor: pd.Series, styles: pd.DataFrame) -> pd.DataFrame:
    values = exposures(factor, styles)
    return pd.DataFrame(
        {"month": month, "factor": factor_name, "style": list(values), "correlation": np.array(list(values.values()))}
    )

"""IC decay and the factor's rank autocorrelation (docs/metrics.md, "Decay").

A factor of d(k) is correlated with the returns that follow it: over h sessions from d(k) (h in HORIZONS), and
over the holding month of k + L (L in LAGS). Each figure reads only returns after d(k), and is written once, by
the evaluation of the month whose holding period contains its last session, so that every month's evaluation
reads bars up to d(m+1) only, as the IC does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.evaluation.metrics import spearman
from factor_pipeline.features.labels import forward_returns
from factor_pipeline.market import session_calendar
from factor_pipeline.stats import pearson

HORIZONS = (5, 10, 20, 40, 60)
LAGS = (1, 2)
# 60 sessions can span more than three months around the October holiday.
HISTORY_MONTHS = 4
DECAY_COLUMNS = ["month", "factor", "horizon_sessions", "lag_months", "ic", "rank_ic", "n_stocks"]


def horizon_end(rebalance: pd.Timestamp, horizon: int) -> pd.Timestamp | None:
    """The session ``horizon`` sessions after the rebalance date, None past the calendar's horizon."""
    try:
        return session_calendar.session_offset(rebalance, horizon)
    except session_calendar.CalendarHorizonError:
        return None


def _correlations(factor: pd.DataFrame, returns: np.ndarray, columns: list[str]) -> list[tuple[str, float, float, int]]:
    out = []
    for column in columns:
        x = factor[column].to_numpy(dtype="float64")
        pairs = int((np.isfinite(x) & np.isfinite(returns)).sum())
        out.append((column, pearson(x, returns), spearman(x, returns), pairs))
    return out


def decay_rows(
    tables: dict[str, pd.DataFrame],
    bars: pd.DataFrame,
    month: str,
    window: tuple[pd.Timestamp, pd.Timestamp],
    columns: list[str],
) -> pd.DataFrame:
    """The decay rows that close within ``window`` = (d(month), end of its returns].

    ``tables``: the factor tables of months month - HISTORY_MONTHS .. month (those that exist), each with ts_code
    and the factor ``columns``; ``bars``: daily bars covering d(first table) .. the window's end. Horizon rows have
    lag_months 0; lag rows (the IC of month - L's factor against this month's return) have no horizon.
    """
    start, end = window
    targets, keys = [], []
    for k, table in sorted(tables.items()):
        rebalance = session_calendar.rebalance_date(k)
        for horizon in HORIZONS:
            stop = horizon_end(rebalance, horizon)
            if stop is not None and start < stop <= end:
                targets.append(pd.DataFrame({"ts_code": table["ts_code"], "start_date": rebalance, "end_date": stop}))
                keys.append((k, horizon, 0))
        lag = (pd.Period(month, freq="M") - pd.Period(k, freq="M")).n
        if lag in LAGS:
            targets.append(pd.DataFrame({"ts_code": table["ts_code"], "start_date": start, "end_date": end}))
            keys.append((k, None, lag))
    if not targets:
        return pd.DataFrame(columns=DECAY_COLUMNS)
    returns = forward_returns(bars, pd.concat(targets, ignore_index=True)).to_numpy()
    rows, offset = [], 0
    for (k, horizon, lag), frame in zip(keys, targets):
        chunk = returns[offset : offset + len(frame)]
        offset += len(frame)
        for column, ic, rank_ic, pairs in _correlations(tables[k], chunk, [c for c in columns if c in tables[k]]):
            rows.append((k, column, horizon, lag, ic, rank_ic, pairs))
    out = pd.DataFrame(rows, columns=DECAY_COLUMNS)
    return out.astype({"horizon_sessions": "Int64", "lag_months": "int64", "n_stocks": "int64"})


def rank_autocorrelation(current: pd.DataFrame, previous: pd.DataFrame | None, column: str) -> float:
    """Spearman correlation of month m's factor with month m-1's, over the stocks that have both."""
    if previous is None or column not in previous:
        return np.nan
    joined = current[["ts_code", column]].merge(previous[["ts_code", column]], on="ts_code", suffixes=("", "_prev"))
    return spearman(joined[column], joined[f"{column}_prev"])

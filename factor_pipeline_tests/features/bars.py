"""Small bar tables and feature frames the features tests build on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.features.daily import compute_features
from factor_pipeline.features.samples import SEQUENCE_LOOKBACK_MONTHS, build_samples
from factor_pipeline.market import session_calendar
from factor_pipeline.config import SampleConfig

CFG = SampleConfig()
DAILY_COLUMNS = [
    "ts_code", "trade_date", "open", "high", "low", "close", "pre_close",
    "volume", "amount", "adj_factor", "float_shares", "is_st",
]  # fmt: skip


def _canonical(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    rows["trade_date"] = pd.DatetimeIndex(rows["trade_date"]).as_unit("ns")
    for column in DAILY_COLUMNS[2:-1]:
        rows[column] = rows[column].astype(np.float64)
    rows["is_st"] = rows["is_st"].astype(bool)
    return rows[DAILY_COLUMNS].sort_values(["trade_date", "ts_code"]).reset_index(drop=True)


def _stocks(codes, list_dates=None, delist_dates=None, industry="Banks") -> pd.DataFrame:
    n = len(codes)
    list_dates = list_dates if list_dates is not None else [pd.Timestamp("2010-01-04")] * n
    delist_dates = delist_dates if delist_dates is not None else [pd.NaT] * n
    return pd.DataFrame(
        {
            "ts_code": list(codes),
            "name": list(codes),
            "industry": industry,
            "list_date": pd.DatetimeIndex(list_dates).as_unit("ns"),
            "delist_date": pd.DatetimeIndex(delist_dates).as_unit("ns"),
        }
    )


def random_market(codes, first, last, seed=0, suspend_prob=0.0, list_dates=None):
    """A random-walk market with tick prices, one ex-dividend per stock and optional random halts."""
    rng = np.random.default_rng(seed)
    sessions = session_calendar.sessions_between(first, last)
    T, n = len(sessions), len(codes)
    adj = np.ones((T, n))
    ex_day = rng.integers(1, T, n)
    dividend = rng.uniform(0.02, 0.3, n)
    for j in range(n):
        adj[ex_day[j] :, j] = 1.0 + dividend[j]
    adj_close = 10.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, n)), axis=0))
    close = np.round(adj_close / adj, 2)
    traded = rng.random((T, n)) >= suspend_prob
    if list_dates is not None:
        traded &= sessions.values[:, None] >= pd.DatetimeIndex(list_dates).values[None, :]
    # pre_close: the last traded close, carried through halts, restated for a dividend in between.
    last_adj_close = np.full(n, np.nan)
    pre_close = np.empty((T, n))
    for i in range(T):
        base = np.where(np.isnan(last_adj_close), close[i] * adj[i] * 0.98, last_adj_close)
        pre_close[i] = np.round(base / adj[i], 2)
        last_adj_close = np.where(traded[i], close[i] * adj[i], last_adj_close)
    open_ = np.round(pre_close * np.exp(rng.normal(0, 0.01, (T, n))), 2)
    high = np.round(np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, (T, n))), 2)
    low = np.round(np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, (T, n))), 2)
    volume = np.round(np.exp(rng.normal(13, 0.6, (T, n))))
    vwap = low + (high - low) * rng.uniform(0.2, 0.8, (T, n))
    frame = pd.DataFrame(
        {
            "ts_code": np.tile(np.asarray(codes, dtype=object), T),
            "trade_date": np.repeat(sessions.values, n),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "pre_close": pre_close.ravel(),
            "volume": volume.ravel(),
            "amount": (volume * vwap).ravel(),
            "adj_factor": adj.ravel(),
            "float_shares": 2e8,
            "is_st": False,
        }
    )
    return _canonical(frame[traded.ravel()])


def features_for(daily: pd.DataFrame, months) -> pd.DataFrame:
    return pd.concat([compute_features(daily, m) for m in months], ignore_index=True)


def build(daily, stocks, month, cfg=CFG):
    months = session_calendar.months_between(session_calendar.shift_month(month, -SEQUENCE_LOOKBACK_MONTHS), month)
    return build_samples(features_for(daily, months), daily, stocks, month, cfg)


def _session(day: str) -> pd.Timestamp:
    return pd.Timestamp(day)


def _k(day: str) -> int:
    """Index of ``day`` among the tiny market's sessions (volumes grow with it)."""
    return session_calendar.sessions_between("2024-01-02", "2024-02-29").get_loc(pd.Timestamp(day))


@pytest.fixture(scope="module")
def tiny_market():
    """Three stocks over real sessions Jan-Feb 2024 (the Spring Festival break sits before 02-19).

    600000.SH: flat at 10.00 in January, ex-dividend on 2024-02-19 (adj_factor 1 -> 1.25, pre_close 8.00).
    000001.SZ: halted 02-20 and 02-21 (no rows), a volume-0 row on 02-22, resumes 02-23; float_shares unknown.
    600100.SH: lists on 2024-02-05 at an issue price (pre_close) of 5.00.
    """
    sessions = session_calendar.sessions_between("2024-01-02", "2024-02-29")
    rows = []
    for k, day in enumerate(sessions):
        volume = 1000.0 + 100.0 * k
        if day < _session("2024-02-19"):
            a = dict(open=9.90, high=10.10, low=9.80, close=10.00, pre_close=10.00, amount=volume * 10.0, adj_factor=1.0)
        elif day == _session("2024-02-19"):
            a = dict(open=8.20, high=8.60, low=8.00, close=8.40, pre_close=8.00, amount=volume * 8.30, adj_factor=1.25)
        else:
            a = dict(open=8.40, high=8.50, low=8.30, close=8.40, pre_close=8.40, amount=volume * 8.40, adj_factor=1.25)
        rows.append(dict(ts_code="600000.SH", trade_date=day, volume=volume, float_shares=1e5, is_st=False, **a))

        b_close = 20.0 + 0.1 * k
        if day in (_session("2024-02-20"), _session("2024-02-21")):
            pass
        elif day == _session("2024-02-22"):
            rows.append(dict(ts_code="000001.SZ", trade_date=day, open=0.0, high=0.0, low=0.0, close=21.0,
                             pre_close=21.0, volume=0.0, amount=0.0, adj_factor=1.0, float_shares=np.nan, is_st=False))  # fmt: skip
        else:
            rows.append(dict(ts_code="000001.SZ", trade_date=day, open=b_close, high=b_close + 0.2, low=b_close - 0.2,
                             close=b_close, pre_close=b_close - 0.1, volume=500.0 + 10 * k, amount=(500.0 + 10 * k) * b_close,
                             adj_factor=1.0, float_shares=np.nan, is_st=False))  # fmt: skip

        if day == _session("2024-02-05"):
            rows.append(dict(ts_code="600100.SH", trade_date=day, open=6.00, high=7.50, low=5.90, close=7.20,
                             pre_close=5.00, volume=4000.0, amount=4000.0 * 6.80, adj_factor=1.0, float_shares=1e4, is_st=False))  # fmt: skip
        elif day > _session("2024-02-05"):
            rows.append(dict(ts_code="600100.SH", trade_date=day, open=7.20, high=7.30, low=7.10, close=7.20,
                             pre_close=7.20, volume=2000.0, amount=2000.0 * 7.20, adj_factor=1.0, float_shares=1e4, is_st=False))  # fmt: skip
    daily = _canonical(pd.DataFrame(rows))
    # Input order must not matter.
    return daily.sample(frac=1.0, random_state=3).reset_index(drop=True)


def _row(feats, code, day):
    match = feats[(feats.ts_code == code) & (feats.trade_date == pd.Timestamp(day))]
    assert len(match) == 1, (code, day)
    return match.iloc[0]

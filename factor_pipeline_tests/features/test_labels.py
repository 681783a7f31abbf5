"""Forward returns and labels: point in time, NaN until known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.features.labels import compute_labels, forward_returns
from factor_pipeline.market import session_calendar

from factor_pipeline_tests.features.bars import random_market


def test_forward_returns_rules():
    daily = random_market(["600001.SH", "600002.SH", "600003.SH"], "2024-01-02", "2024-03-29", seed=5)
    adj = daily.assign(adj_close=daily.close * daily.adj_factor).set_index(["ts_code", "trade_date"])["adj_close"]
    start, end = pd.Timestamp("2024-02-01"), pd.Timestamp("2024-03-01")
    halt = session_calendar.sessions_between("2024-02-27", end)
    delisted_after = pd.Timestamp("2024-02-20")
    daily = daily[
        ~((daily.ts_code == "600002.SH") & daily.trade_date.isin(halt))  # halted at the end
        & ~((daily.ts_code == "600003.SH") & (daily.trade_date > delisted_after))  # delisted
    ]
    # A volume-0 row on the end date is a halt too.
    zero = daily[(daily.ts_code == "600001.SH") & (daily.trade_date == end)].index
    daily.loc[zero, ["volume", "amount"]] = 0.0
    targets = pd.DataFrame(
        {
            "ts_code": ["600001.SH", "600002.SH", "600003.SH", "600003.SH", "600001.SH", "999999.SH", "600001.SH"],
            "start_date": [start, start, start, delisted_after, pd.Timestamp("2024-02-03"), start, end],
            "end_date": [end, end, end, end, end, end, pd.NaT],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )
    out = forward_returns(daily, targets)
    assert list(out.index) == [10, 11, 12, 13, 14, 15, 16]
    before_end = session_calendar.session_offset(end, -1)
    assert out[10] == pytest.approx(adj["600001.SH", before_end] / adj["600001.SH", start] - 1)
    assert out[11] == pytest.approx(adj["600002.SH", pd.Timestamp("2024-02-26")] / adj["600002.SH", start] - 1)
    assert out[12] == pytest.approx(adj["600003.SH", delisted_after] / adj["600003.SH", start] - 1)
    assert np.isnan(out[13])  # no close after the start
    assert np.isnan(out[14])  # 02-03 is a Saturday: no close on start_date
    assert np.isnan(out[15])  # unknown stock
    assert np.isnan(out[16])  # no end date


def test_labels_alignment_and_knowledge():
    codes = ["600001.SH", "600002.SH"]
    daily = random_market(codes, "2024-01-02", "2024-05-31", seed=7)
    adj = daily.assign(adj_close=daily.close * daily.adj_factor).set_index(["ts_code", "trade_date"])["adj_close"]
    dates = session_calendar.sample_dates("2024-02", 5)
    samples = pd.DataFrame(
        {"ts_code": np.repeat(codes, len(dates)), "trade_date": np.tile(dates.values, 2)}, index=np.arange(100, 100 + 2 * len(dates))
    )
    horizon = 20
    last_end = session_calendar.session_offset(dates[-1], horizon)
    labels = compute_labels(daily, samples, horizon, as_of=last_end)
    assert list(labels.index) == list(samples.index)
    for i, row in samples.iterrows():
        end = session_calendar.session_offset(row.trade_date, horizon)
        assert len(session_calendar.sessions_between(row.trade_date, end)) == horizon + 1
        assert labels[i] == pytest.approx(adj[row.ts_code, end] / adj[row.ts_code, row.trade_date] - 1)
    # One session earlier the newest date's label is not known yet; the others are.
    earlier = compute_labels(daily, samples, horizon, as_of=session_calendar.session_offset(last_end, -1))
    newest = samples.trade_date == dates[-1]
    assert earlier[newest].isna().all()
    assert earlier[~newest].equals(labels[~newest])
    # Nothing known at the sample date itself.
    assert compute_labels(daily, samples, horizon, as_of=dates[0]).isna().all()


def test_labels_past_calendar_horizon_are_nan():
    last = session_calendar.all_sessions()[-1]
    near_end = session_calendar.session_offset(last, -5)
    daily = random_market(["600001.SH"], session_calendar.session_offset(last, -30), last, seed=1)
    samples = pd.DataFrame({"ts_code": ["600001.SH", "600001.SH"], "trade_date": [session_calendar.session_offset(last, -25), near_end]})
    labels = compute_labels(daily, samples, 20, as_of=last + pd.Timedelta(days=400))
    assert np.isfinite(labels.iloc[0])
    assert np.isnan(labels.iloc[1])



"""The 18 daily features, checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.features.daily import FEATURE_NAMES, compute_features
from factor_pipeline.market import session_calendar

from factor_pipeline_tests.features.bars import CFG, _k, _row, tiny_market  # noqa: F401 (tiny_market is a fixture)


def test_feature_names_and_columns(tiny_market):
    assert len(FEATURE_NAMES) == 18 == CFG.n_features
    assert len(set(FEATURE_NAMES)) == 18
    assert FEATURE_NAMES[:8] == ("close", "open", "high", "low", "vwap", "volume", "amount", "turnover_rate")
    feats = compute_features(tiny_market, "2024-02")
    assert list(feats.columns) == ["ts_code", "trade_date", "month", *FEATURE_NAMES, "adj_close"]
    assert feats["trade_date"].dtype == "datetime64[ns]"
    assert (feats["month"] == "2024-02").all()
    for name in (*FEATURE_NAMES, "adj_close"):
        assert feats[name].dtype == np.float64
    # Only February's traded days: no January row, no row for the halt or the volume-0 day.
    assert feats.trade_date.min() >= pd.Timestamp("2024-02-01")
    b_days = set(feats.loc[feats.ts_code == "000001.SZ", "trade_date"].dt.strftime("%m-%d"))
    assert not b_days & {"02-20", "02-21", "02-22"}
    assert len(b_days) == len(session_calendar.month_sessions("2024-02")) - 3
    assert feats[["ts_code", "trade_date"]].equals(feats[["ts_code", "trade_date"]].sort_values(["ts_code", "trade_date"]))


def test_hand_computed_ex_dividend_day(tiny_market):
    feats = compute_features(tiny_market, "2024-02")
    r = _row(feats, "600000.SH", "2024-02-19")
    # Adjusted: x 1.25. The previous traded day (02-08, before the holiday) closed at 10.00 with factor 1.
    expected = {
        "close": 8.40 * 1.25,  # 10.5
        "open": 8.20 * 1.25,  # 10.25
        "high": 8.60 * 1.25,  # 10.75
        "low": 8.00 * 1.25,  # 10.0
        "vwap": 8.30 * 1.25,  # 10.375
        "adj_close": 10.5,
        "ret": 10.5 / 10.0 - 1,  # +5%, where the unadjusted close fell 16%
        "log_ret": math.log(1.05),
        "intraday_ret": 8.40 / 8.20 - 1,
        "overnight_ret": 10.25 / 10.0 - 1,
        "amplitude": (10.75 - 10.0) / 10.0,
        "upper_shadow": (10.75 - 10.5) / 10.0,
        "lower_shadow": (10.25 - 10.0) / 10.0,
        "close_to_vwap": 10.5 / 10.375 - 1,
    }
    for name, value in expected.items():
        assert r[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    # Volume is 1000 + 100k on the k-th session; every session before 02-19 is a traded day.
    k = _k("2024-02-19")
    volume = 1000.0 + 100 * k
    assert r["volume"] == volume
    assert r["amount"] == pytest.approx(volume * 8.30)
    assert r["turnover_rate"] == pytest.approx(volume / 1e5)
    assert r["volume_ratio_5"] == pytest.approx(volume / np.mean([1000.0 + 100 * j for j in range(k - 5, k)]))
    turnover_before = [(1000.0 + 100 * j) / 1e5 for j in range(k - 20, k)]
    assert r["turnover_ratio_20"] == pytest.approx((volume / 1e5) / np.mean(turnover_before))


def test_hand_computed_first_day_of_month_uses_prior_month(tiny_market):
    feats = compute_features(tiny_market, "2024-02")
    r = _row(feats, "600000.SH", "2024-02-01")
    assert r["ret"] == pytest.approx(0.0, abs=1e-15)
    assert r["overnight_ret"] == pytest.approx(9.90 / 10.0 - 1)
    k = _k("2024-02-01")  # the 5 sessions before it are in January
    assert r["volume_ratio_5"] == pytest.approx((1000 + 100 * k) / np.mean([1000 + 100 * j for j in range(k - 5, k)]))


def test_hand_computed_halt_and_missing_float_shares(tiny_market):
    feats = compute_features(tiny_market, "2024-02")
    r = _row(feats, "000001.SZ", "2024-02-23")
    k23, k19 = _k("2024-02-23"), _k("2024-02-19")
    close23, close19 = 20.0 + 0.1 * k23, 20.0 + 0.1 * k19
    # The return spans the halt (02-20..02-22): from the last traded close, not from the volume-0 row.
    assert r["ret"] == pytest.approx(close23 / close19 - 1)
    assert r["overnight_ret"] == pytest.approx(close23 / close19 - 1)
    # The volume ratio's 5 previous traded days skip the halt: 02-19 and the four before the holiday.
    previous = [500.0 + 10 * _k(d) for d in ("2024-02-05", "2024-02-06", "2024-02-07", "2024-02-08", "2024-02-19")]
    assert r["volume_ratio_5"] == pytest.approx((500.0 + 10 * k23) / np.mean(previous))
    assert np.isnan(r["turnover_rate"]) and np.isnan(r["turnover_ratio_20"])
    assert np.isfinite(r[[n for n in FEATURE_NAMES if "turnover" not in n]].astype(float)).all()


def test_hand_computed_listing_day(tiny_market):
    feats = compute_features(tiny_market, "2024-02")
    r = _row(feats, "600100.SH", "2024-02-05")
    assert r["ret"] == pytest.approx(7.20 / 5.00 - 1)  # from the issue price (pre_close)
    assert r["vwap"] == pytest.approx(6.80)
    assert r["turnover_rate"] == pytest.approx(0.4)
    assert np.isnan(r["volume_ratio_5"]) and np.isnan(r["turnover_ratio_20"])  # nothing before the listing
    second = _row(feats, "600100.SH", "2024-02-06")
    assert second["volume_ratio_5"] == pytest.approx(2000.0 / 4000.0)



"""A stock's industry is the one it had on each date: in the samples of every sample date, and so in the
month's industry attribution."""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.config import FactorConfig, SampleConfig
from factor_pipeline.evaluation.metrics import evaluate_month
from factor_pipeline.market import session_calendar
from factor_pipeline_tests.features.bars import _stocks, build, random_market

CODES = [f"6000{i:02d}.SH" for i in range(1, 13)]
MOVER, HALTED = CODES[0], CODES[1]
MOVED_ON = pd.Timestamp("2024-02-19")  # Banks -> Media, between the January and February rebalance dates
HALTED_FROM = pd.Timestamp("2024-02-07")  # HALTED's last bar is the day before; it moved on 2024-02-26


def _market():
    daily = random_market(CODES, "2023-09-01", "2024-02-29", seed=5)
    daily = daily[~((daily["ts_code"] == HALTED) & (daily["trade_date"] >= HALTED_FROM))].reset_index(drop=True)
    static = {code: ("Banks" if i < 6 else "Media") for i, code in enumerate(CODES)}
    daily["industry"] = daily["ts_code"].map(static)
    daily.loc[(daily["ts_code"] == MOVER) & (daily["trade_date"] >= MOVED_ON), "industry"] = "Media"
    stocks = _stocks(CODES)
    # The month-end table as read_month gives it: the industry as of d(m) (HALTED: its last bar's).
    stocks["industry"] = stocks["ts_code"].map(static)
    return daily, stocks


def test_samples_carry_each_dates_industry():
    daily, stocks = _market()
    feb = stocks.assign(industry=np.where(stocks["ts_code"] == MOVER, "Media", stocks["industry"]))
    _, samples = build(daily, feb, "2024-02", SampleConfig(sample_every=3))
    mover = samples[samples["ts_code"] == MOVER].set_index("trade_date")["industry"]
    assert len(mover) >= 4
    expected = np.where(mover.index < MOVED_ON, "Banks", "Media")
    assert list(mover) == list(expected)
    assert {"Banks", "Media"} == set(mover)
    halted = samples[samples["ts_code"] == HALTED]
    assert (halted["trade_date"] >= HALTED_FROM).any() and set(halted["industry"]) == {"Banks"}


def test_industry_attribution_groups_a_moved_stock_by_its_industry_on_each_rebalance_date():
    daily, stocks = _market()
    rng = np.random.default_rng(0)
    counts = {}
    # The static column says Media (the newest membership) in both months: the bars must decide.
    latest = stocks.assign(industry=np.where(stocks["ts_code"] == MOVER, "Media", stocks["industry"]))
    for month in ("2024-01", "2024-02"):
        _, samples = build(daily, latest, month, SampleConfig(sample_every=3))
        on_d = samples[samples["trade_date"] == session_calendar.rebalance_date(month)]
        panel = on_d[["ts_code", "industry", "buyable"]].assign(
            factor=rng.normal(size=len(on_d)), fwd_return=rng.normal(size=len(on_d)))
        result = evaluate_month(month, panel, None, FactorConfig(industry_min_stocks=1))
        counts[month] = dict(zip(result.industry_ic["industry"], result.industry_ic["n_stocks"]))
        assert panel.set_index("ts_code").loc[MOVER, "industry"] == ("Banks" if month == "2024-01" else "Media")
    assert counts == {"2024-01": {"Banks": 6, "Media": 6}, "2024-02": {"Banks": 5, "Media": 7}}

"""The session truth, the bench's learnable-ceiling label: recorded beside the market without changing it, and at
a month end whose holding period is its horizon, the month-end truth itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.config import MarketConfig
from factor_pipeline.market import session_calendar
from factor_pipeline.market.synthetic import generate_market

CFG = MarketConfig(n_stocks=60, seed=11, start="2023-01-03", end="2023-12-29")


@pytest.fixture(scope="module")
def plain():
    return generate_market(CFG)


def _holding_sessions(month: str) -> int:
    sessions = session_calendar.all_sessions()
    start = sessions.get_loc(session_calendar.rebalance_date(month))
    return sessions.get_loc(session_calendar.rebalance_date(session_calendar.shift_month(month, 1))) - start


def test_recording_the_session_truth_changes_nothing_else(plain):
    market = generate_market(CFG, session_truth_horizon=20)
    pd.testing.assert_frame_equal(market.daily, plain.daily)
    pd.testing.assert_frame_equal(market.stocks, plain.stocks)
    pd.testing.assert_frame_equal(market.truth, plain.truth)
    assert plain.session_truth is None
    truth = market.session_truth
    # One value per trading name and session: the same (date, code) pairs as the bars.
    assert len(truth) == len(plain.daily)
    assert (truth["trade_date"].to_numpy() == plain.daily["trade_date"].to_numpy()).all()
    assert (truth["ts_code"].to_numpy() == plain.daily["ts_code"].to_numpy()).all()
    assert np.isfinite(truth["expected_return"]).all()


def test_at_a_month_end_with_that_many_holding_sessions_it_is_the_month_end_truth(plain):
    month = "2023-05"
    horizon = _holding_sessions(month)
    market = generate_market(CFG, session_truth_horizon=horizon)
    d = session_calendar.rebalance_date(month)
    at_d = market.session_truth[market.session_truth["trade_date"] == d].set_index("ts_code")["expected_return"]
    expected = plain.truth[plain.truth["month"] == month].set_index("ts_code")["expected_return"]
    assert len(expected) > 30
    pd.testing.assert_series_equal(at_d.loc[expected.index], expected, check_names=False)
    # Another horizon reads a different expectation: the test could fail.
    other = generate_market(CFG, session_truth_horizon=horizon + 5).session_truth
    other_at_d = other[other["trade_date"] == d].set_index("ts_code")["expected_return"]
    assert not np.allclose(other_at_d.loc[expected.index], expected)

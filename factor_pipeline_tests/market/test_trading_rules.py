"""Boards from the codes' real ranges, and each board's limit on each side of the date its rule changed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.market import trading_rules
from factor_pipeline.market.input_files import InputValidationError, validate_frames


@pytest.mark.parametrize(
    "code, board",
    [
        ("600000.SH", "main"), ("601318.SH", "main"), ("603259.SH", "main"), ("605499.SH", "main"),
        ("000001.SZ", "main"), ("001979.SZ", "main"), ("002594.SZ", "main"), ("003816.SZ", "main"),
        ("688981.SH", "star"), ("689009.SH", "star"),  # 689: STAR CDRs
        ("300750.SZ", "chinext"), ("301269.SZ", "chinext"),
        ("430047.BJ", "bse"), ("830799.BJ", "bse"), ("872925.BJ", "bse"), ("920002.BJ", "bse"),
    ],
)
def test_each_board_from_its_code_range(code, board):
    assert trading_rules.board_of(code) == board


@pytest.mark.parametrize("code", ["689009.SZ", "300750.SH", "900901.SH", "200002.SZ", "920002.SH", "T00018.SH", "123456.BJ"])
def test_a_code_on_no_board_is_an_error_not_a_default(code):
    with pytest.raises(ValueError, match="on no A-share board"):
        trading_rules.board_of(code)


def _ratio(board: str, day: str, st: bool) -> float:
    return float(trading_rules.limit_ratio(np.array([board]), np.array([np.datetime64(day, "ns")]), np.array([st]))[0])


@pytest.mark.parametrize(
    "board, day, st, ratio",
    [
        ("main", "2024-01-02", False, 0.10),
        ("main", "2024-01-02", True, 0.05),
        ("main", "2026-07-03", True, 0.05),  # the last session before the change
        ("main", "2026-07-06", True, 0.10),
        ("chinext", "2020-08-21", False, 0.10),
        ("chinext", "2020-08-24", False, 0.20),
        ("chinext", "2024-01-02", True, 0.20),
        ("star", "2024-01-02", False, 0.20),
        ("star", "2024-01-02", True, 0.20),
        ("bse", "2021-11-12", False, 0.10),
        ("bse", "2021-11-15", False, 0.30),
        ("bse", "2025-03-03", True, 0.30),
    ],
)
def test_limit_by_board_date_and_st(board, day, st, ratio):
    assert _ratio(board, day, st) == ratio
    assert trading_rules.ST_MAIN_10PCT_FROM == pd.Timestamp("2026-07-06")


def test_a_star_cdr_and_a_beijing_stock_get_their_boards_limits():
    codes = ["689009.SH", "920002.BJ", "835185.BJ"]
    boards = np.array([trading_rules.board_of(c) for c in codes])
    days = np.full(3, np.datetime64("2025-03-03", "ns"))
    assert trading_rules.limit_ratio(boards, days, np.zeros(3, bool)).tolist() == [0.20, 0.30, 0.30]


def test_a_stock_whose_code_is_on_no_board_is_rejected_with_its_row():
    stocks = pd.DataFrame({"ts_code": ["600000.SH", "900901.SH"], "name": ["a", "b"], "industry": ["Banks", "Banks"],
                           "list_date": pd.to_datetime(["2000-01-04", "2000-01-04"])})
    daily = pd.DataFrame({"ts_code": ["600000.SH"], "trade_date": pd.to_datetime(["2024-01-02"]), "open": [10.0],
                          "high": [10.0], "low": [10.0], "close": [10.0], "pre_close": [10.0], "volume": [1.0],
                          "amount": [10.0]})
    with pytest.raises(InputValidationError, match="row 1.*900901.SH.*on no A-share board"):
        validate_frames(daily, stocks)

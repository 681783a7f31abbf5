"""The one place Tushare's units become the pipeline's: shares and CNY."""

from __future__ import annotations

import numpy as np

SHARES_PER_LOT = 100.0  # daily.vol: lots (手) of 100 shares
CNY_PER_AMOUNT_UNIT = 1000.0  # daily.amount: thousands of CNY (千元)
SHARES_PER_FLOAT_SHARE_UNIT = 10_000.0  # daily_basic.float_share: 10,000 shares (万股)


def shares_from_lots(vol) -> np.ndarray:
    return np.asarray(vol, dtype=np.float64) * SHARES_PER_LOT


def cny_from_thousands(amount) -> np.ndarray:
    return np.asarray(amount, dtype=np.float64) * CNY_PER_AMOUNT_UNIT


def shares_from_ten_thousands(float_share) -> np.ndarray:
    return np.asarray(float_share, dtype=np.float64) * SHARES_PER_FLOAT_SHARE_UNIT

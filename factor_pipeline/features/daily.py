"""Daily volume-price features: the 18 of docs/method.md per stock and traded day, computed in DuckDB
(``sql/compute_daily_features.sql``) over each stock's own traded days on adjusted prices.

Formulas and reasons are in docs/features.md. Point in time: a feature on day t reads nothing after t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline import storage
from factor_pipeline.market import session_calendar


FEATURE_NAMES: tuple[str, ...] = (
    "close",
    "open",
    "high",
    "low",
    "vwap",
    "volume",
    "amount",
    "turnover_rate",
    "ret",
    "log_ret",
    "intraday_ret",
    "overnight_ret",
    "amplitude",
    "upper_shadow",
    "lower_shadow",
    "close_to_vwap",
    "volume_ratio_5",
    "turnover_ratio_20",
)
N_FEATURES: int = len(FEATURE_NAMES)


# The longest window looks back 20 traded days; two months hold at least 34 XSHG sessions before any
# month's first session (one month can hold as few as 14, around the Spring Festival).
FEATURE_LOOKBACK_MONTHS: int = 2


FEATURE_COLUMNS: tuple[str, ...] = ("ts_code", "trade_date", "month", *FEATURE_NAMES, "adj_close")


def compute_features(daily: pd.DataFrame, month: str) -> pd.DataFrame:
    """One row per stock and traded day (volume > 0) of ``month``: the 18 features and adj_close.

    ``daily`` holds the canonical bars of months month-FEATURE_LOOKBACK_MONTHS..month; bars after the
    month are allowed and never read by a window (windows only look back).
    """
    period = session_calendar.parse_month(month)
    params = {
        "month": month,
        "first_day": period.start_time,
        "last_day": period.end_time.normalize(),
    }
    out = storage.query_frames("compute_daily_features", {"daily": daily}, params)
    out["trade_date"] = session_calendar.as_datetime64_ns(out["trade_date"])
    out["ts_code"] = out["ts_code"].astype(str)
    out["month"] = out["month"].astype(str)
    for column in (*FEATURE_NAMES, "adj_close"):
        values = out[column].to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        # A zero or corrupt input can still produce an infinity; downstream treats it as missing.
        values[~np.isfinite(values)] = np.nan
        out[column] = values
    return out[list(FEATURE_COLUMNS)].reset_index(drop=True)

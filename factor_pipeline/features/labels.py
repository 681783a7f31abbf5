"""Labels and forward returns: adjusted returns from a sample's close to a later close, computed by an
ASOF join in DuckDB (``sql/compute_forward_returns.sql``). A label stays NaN until its horizon session
has closed, so nothing here reads the future of the date it is asked about.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline import storage
from factor_pipeline.market import session_calendar


def forward_returns(daily: pd.DataFrame, targets: pd.DataFrame) -> pd.Series:
    """Adjusted return from the close of start_date to the last close in (start_date, end_date], per target.

    NaN when the stock has no close on start_date or none after it up to end_date (docs/metrics.md).
    """
    frame = pd.DataFrame(
        {
            "target_row": np.arange(len(targets), dtype=np.int64),
            "ts_code": targets["ts_code"].to_numpy(object),
            "start_date": session_calendar.as_datetime64_ns(targets["start_date"]),
            "end_date": session_calendar.as_datetime64_ns(targets["end_date"]),
        }
    )
    out = storage.query_frames("compute_forward_returns", {"targets": frame, "daily": daily}, {})
    if len(out) != len(frame):
        raise ValueError("daily bars hold two rows for the same stock and day")
    values = out["forward_return"].to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.Series(values, index=targets.index, name="forward_return")


def compute_labels(daily: pd.DataFrame, samples: pd.DataFrame, horizon: int, as_of) -> pd.Series:
    """Forward return over ``horizon`` sessions after each sample's date; NaN until that session <= as_of."""
    sessions = session_calendar.all_sessions()
    position = session_calendar.session_positions(samples["trade_date"], "samples") if len(samples) else np.zeros(0, np.int64)
    end_position = position + horizon
    within = end_position < len(sessions)
    end = np.full(len(samples), np.datetime64("NaT", "ns"))
    end[within] = sessions.values[end_position[within]]
    known = within & (end <= np.datetime64(pd.Timestamp(as_of).as_unit("ns").to_datetime64()))
    labels = pd.Series(np.nan, index=samples.index, name="label")
    if known.any():
        targets = pd.DataFrame(
            {
                "ts_code": samples["ts_code"].to_numpy(object)[known],
                "start_date": session_calendar.as_datetime64_ns(samples["trade_date"])[known],
                "end_date": end[known],
            }
        )
        labels.iloc[np.flatnonzero(known)] = forward_returns(daily, targets).to_numpy()
    return labels

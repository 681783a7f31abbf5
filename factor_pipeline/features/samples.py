"""The samples: each eligible stock's 40 x 18 window on its sample dates, with the point-in-time universe
and buyable flags.

The windows gather each stock's last ``seq_len`` feature rows with numpy fancy indexing and standardise
them as docs/method.md describes (per series, then per date across stocks). Point in time: a sample on date t
reads nothing dated after t.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from factor_pipeline.market import trading_rules
from factor_pipeline.market import session_calendar
from factor_pipeline import storage
from factor_pipeline.config import SampleConfig
from factor_pipeline.features.daily import FEATURE_NAMES
from factor_pipeline.stats import MAD_SCALE, standardise, zscore

# A window of max_window_sessions (60) sessions ending on a month's first sample date can reach 59
# sessions back; three months before a month hold as few as 55 sessions (e.g. before 2018-05), four at
# least 75. build_samples checks this against the calendar for the config it is given.
SEQUENCE_LOOKBACK_MONTHS: int = 4

# Scale-aware side inputs (ModelConfig.inputs = "scale"): each feature's level (window mean) and
# log-volatility (log window std), which the per-window z-score removes, ranked across the date's
# eligible stocks. NaN on rows without a sequence.
SIDE_COLUMNS: tuple[str, ...] = (
    *(f"level_{name}" for name in FEATURE_NAMES),
    *(f"logvol_{name}" for name in FEATURE_NAMES),
)
# Price and size levels. Their window mean and volatility tell one stock from another (a price level is
# all but an identifier) rather than describe its state, so a model fed them memorises names: measured
# in bench/bench_training.py (option scale_all). ``inputs = "scale"`` leaves them out.
LEVEL_FEATURES: tuple[str, ...] = ("close", "open", "high", "low", "vwap", "volume", "amount")
STATE_FEATURES: tuple[str, ...] = tuple(name for name in FEATURE_NAMES if name not in LEVEL_FEATURES)
STATE_SIDE_COLUMNS: tuple[str, ...] = tuple(
    c for c in SIDE_COLUMNS if c.split("_", 1)[1] not in LEVEL_FEATURES
)
SAMPLE_COLUMNS: tuple[str, ...] = (
    "month",
    "trade_date",
    "ts_code",
    "industry",
    "is_st",
    "listed_sessions",
    "is_trading",
    "full_window",
    "eligible",
    "is_limit_up",
    "buyable",
    "log_float_mcap",
    "market_beta",
    "seq_index",
    *SIDE_COLUMNS,
)

# Half a price tick: on-grid closes are either at the limit or at least a tick below it, and a close
# that is off the grid by rounding noise still counts as at the limit.
_LIMIT_TOLERANCE = 0.005


def _listed_sessions(list_dates: np.ndarray, date_positions: np.ndarray) -> np.ndarray:
    """Sessions from the listing date to t (0 on the listing day), per (stock, date) pair."""
    sessions = session_calendar.all_sessions()
    first = sessions.searchsorted(pd.DatetimeIndex(list_dates), side="left")
    # The calendar starts in 2015; older listings are counted in weekdays before it, which only
    # overstates holidays and never matters for a 126-session threshold reached in 2015.
    before = np.zeros(len(list_dates), dtype=np.int64)
    early = list_dates < sessions[0].to_datetime64()
    if early.any():
        before[early] = np.busday_count(
            list_dates[early].astype("datetime64[D]"), np.datetime64(sessions[0].date(), "D")
        )
    return date_positions - first + before


def _check_sequence_lookback(month: str, first_position: int, cfg: SampleConfig) -> None:
    sessions = session_calendar.all_sessions()
    lookback_start = session_calendar.parse_month(session_calendar.shift_month(month, -SEQUENCE_LOOKBACK_MONTHS)).start_time
    earliest = sessions.searchsorted(lookback_start)
    # Before the calendar's start there are no bars to miss, so the check only binds after it.
    if earliest > 0 and first_position - (cfg.max_window_sessions - 1) < earliest:
        raise ValueError(
            f"samples.max_window_sessions={cfg.max_window_sessions} reaches further back than the "
            f"{SEQUENCE_LOOKBACK_MONTHS} months of features that month {month} reads"
        )


def _candidates(stocks: pd.DataFrame, dates: pd.DatetimeIndex, month: str) -> pd.DataFrame:
    """Every stock listed on each sample date, sorted by (trade_date, ts_code)."""
    stocks = stocks.sort_values("ts_code", kind="stable")
    codes = stocks["ts_code"].to_numpy(dtype=object)
    list_date = session_calendar.as_datetime64_ns(stocks["list_date"])
    delist_date = session_calendar.as_datetime64_ns(stocks["delist_date"]) if "delist_date" in stocks else np.full(len(stocks), np.datetime64("NaT", "ns"))
    date_values = session_calendar.as_datetime64_ns(dates)
    # delist_date is the first day the stock is no longer listed; NaT compares False, so still listed.
    listed = (list_date[None, :] <= date_values[:, None]) & ~(delist_date[None, :] <= date_values[:, None])
    date_index, stock_index = np.nonzero(listed)  # row-major: by date, then by code
    return pd.DataFrame(
        {
            "row_id": np.arange(len(date_index), dtype=np.int64),
            "month": month,
            "trade_date": date_values[date_index],
            "ts_code": codes[stock_index],
            "industry": stocks["industry"].to_numpy(dtype=object)[stock_index],
            "list_date": list_date[stock_index],
        }
    )


def _median_of_sorted(ordered: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median along the last axis of an array sorted with its NaN last, ``count`` values observed."""
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(ordered, np.maximum(count // 2, 0)[..., None], axis=-1)[..., 0]
    median = 0.5 * (low + high)
    median[count == 0] = np.nan
    return median


def _standardise_series(raw: np.ndarray, mad_clip: float) -> np.ndarray:
    """Per sample and feature along the steps: fill NaN with the median, clip, z-score.

    ``raw`` is [n, steps, features]. Median and MAD come from the observed cells. Where the MAD is 0
    (more than half the steps equal) no clip is applied: a zero-width band would flatten the series
    to a constant and erase the days that differ. A series with nothing observed becomes zeros.
    """
    filled, constant = _clipped_series(raw, mad_clip)
    filled -= filled.mean(axis=-1, keepdims=True)
    return np.swapaxes(standardise(filled, constant[..., None], axis=-1), 1, 2)


def _clipped_series(raw: np.ndarray, mad_clip: float) -> tuple[np.ndarray, np.ndarray]:
    """The first half of :func:`_standardise_series`: [n, features, steps] filled and clipped, and which
    series are constant."""
    x = np.ascontiguousarray(np.swapaxes(raw, 1, 2), dtype=np.float64)  # [n, features, steps]
    ordered = np.sort(x, axis=-1)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(x), axis=-1)
    median = _median_of_sorted(ordered, count)
    deviation = np.sort(np.abs(x - median[..., None]), axis=-1)
    mad = _median_of_sorted(deviation, count) * MAD_SCALE
    width = np.where(mad > 0, mad_clip * mad, np.inf)
    low, high = median - width, median + width
    # The filled, clipped series spans clip(smallest)..clip(largest) observed value (the fill, the
    # median, lies between them), so constancy is read off the sorted array without another pass.
    smallest = ordered[..., 0]
    largest = np.take_along_axis(ordered, np.maximum(count - 1, 0)[..., None], axis=-1)[..., 0]
    constant = (count == 0) | (np.clip(smallest, low, high) == np.clip(largest, low, high))
    filled = np.where(np.isnan(x), median[..., None], x)
    np.clip(filled, low[..., None], high[..., None], out=filled)
    filled[count == 0] = 0.0
    return filled, constant


def scale_steps(features: pd.DataFrame, samples: pd.DataFrame, cfg: SampleConfig) -> np.ndarray:
    """float32 [N, seq_len, len(STATE_FEATURES)] for the rows of X (``samples`` as build_samples returns it):
    each non-level feature's window, outlier-clipped as the seed does but standardised only across the
    date's stocks at each step, so a stock's own level and volatility stay visible (ModelConfig.inputs =
    "scale_steps"). Rows without a sequence are left out, as in X.
    """
    eligible = samples["seq_index"].to_numpy() >= 0
    rows = samples.loc[eligible].sort_values("seq_index")
    t_position = session_calendar.session_positions(rows["trade_date"], "samples") if len(rows) else np.zeros(0, np.int64)
    values, window_end, _ = _locate_windows(features, rows, t_position, cfg)
    keep = [FEATURE_NAMES.index(name) for name in STATE_FEATURES]
    out = np.empty((len(rows), cfg.seq_len, len(keep)), dtype=np.float32)
    steps = np.arange(-cfg.seq_len + 1, 1)
    order = np.argsort(t_position, kind="stable")
    if not np.array_equal(order, np.arange(len(order))):
        raise ValueError("samples must be sorted by trade_date")
    boundaries = np.flatnonzero(np.diff(t_position)) + 1
    for lo, hi in zip(np.r_[0, boundaries], np.r_[boundaries, len(rows)]):
        raw = values[window_end[lo:hi, None] + steps][..., keep]
        filled, _ = _clipped_series(raw, cfg.mad_clip)
        out[lo:hi] = zscore(np.swapaxes(filled, 1, 2), axis=0)
    return out


def build_samples(
    features: pd.DataFrame,
    daily: pd.DataFrame,
    stocks: pd.DataFrame,
    month: str,
    cfg: SampleConfig,
) -> tuple[np.ndarray, pd.DataFrame]:
    """X float32 [N, seq_len, 18] and one row per stock listed on each of the month's sample dates.

    ``features``: feature rows of months month-SEQUENCE_LOOKBACK_MONTHS..month; ``daily``: raw bars of
    months month-1..month (the flags on each date, the ST flag of halted stocks); ``stocks``: stocks as
    of the month's end. Rows are sorted by (trade_date, ts_code); row i of X is the row whose seq_index
    is i. Eligible = not ST, listed >= min_listed_sessions sessions, traded on t, full window.
    """
    dates = session_calendar.sample_dates(month, cfg.sample_every)
    date_positions = session_calendar.session_positions(dates, f"sample dates of {month}")
    _check_sequence_lookback(month, int(date_positions.min()), cfg)

    samples = _candidates(stocks, dates, month)
    t_position = session_calendar.session_positions(samples["trade_date"], "sample dates") if len(samples) else np.zeros(0, np.int64)
    samples["listed_sessions"] = _listed_sessions(samples["list_date"].to_numpy(), t_position).astype(np.int64)

    if "industry" not in daily.columns:  # bars stored before bars carried their day's industry
        daily = daily.assign(industry=pd.Series(None, index=daily.index, dtype="str"))
    bars = storage.query_frames(
        "lookup_sample_date_bars",
        {"candidates": samples[["row_id", "ts_code", "trade_date"]], "daily": daily},
        {},
    )
    samples["is_st"] = bars["is_st"].to_numpy(dtype=bool)
    # Point in time: the industry of the stock's last bar on or before t; the month-end table's without one.
    samples["industry"] = bars["industry"].where(bars["industry"].notna(), samples["industry"]).to_numpy(dtype=object)
    samples["is_trading"] = bars["is_trading"].to_numpy(dtype=bool)
    close = bars["close"].to_numpy(dtype=np.float64, na_value=np.nan)
    pre_close = bars["pre_close"].to_numpy(dtype=np.float64, na_value=np.nan)
    samples["log_float_mcap"] = bars["log_float_mcap"].to_numpy(dtype=np.float64, na_value=np.nan)

    boards = samples["ts_code"].map({code: trading_rules.board_of(code) for code in samples["ts_code"].unique()})
    ratio = trading_rules.limit_ratio(boards.to_numpy(dtype=object), samples["trade_date"], samples["is_st"])
    limit_up, _ = trading_rules.limit_prices(pre_close, ratio)
    with np.errstate(invalid="ignore"):
        at_limit = close >= limit_up - _LIMIT_TOLERANCE
    samples["is_limit_up"] = (
        samples["is_trading"].to_numpy()
        & (samples["listed_sessions"].to_numpy() >= trading_rules.NO_LIMIT_SESSIONS)
        & at_limit
    )

    values, window_end, full_window = _locate_windows(features, samples, t_position, cfg)
    samples["full_window"] = full_window
    eligible = (
        ~samples["is_st"].to_numpy()
        & (samples["listed_sessions"].to_numpy() >= cfg.min_listed_sessions)
        & samples["is_trading"].to_numpy()
        & full_window
    )
    samples["eligible"] = eligible
    samples["buyable"] = eligible & samples["is_trading"].to_numpy() & ~samples["is_limit_up"].to_numpy()
    seq_index = np.full(len(samples), -1, dtype=np.int64)
    seq_index[eligible] = np.arange(int(eligible.sum()), dtype=np.int64)
    samples["seq_index"] = seq_index

    X, side, beta = _gather_and_standardise(values, window_end[eligible], t_position[eligible], cfg)
    side_table = np.full((len(samples), len(SIDE_COLUMNS)), np.nan, dtype=np.float32)
    side_table[eligible] = side
    samples["market_beta"] = np.nan
    samples.loc[eligible, "market_beta"] = beta
    for k, column in enumerate(SIDE_COLUMNS):
        samples[column] = side_table[:, k]
    samples["trade_date"] = session_calendar.as_datetime64_ns(samples["trade_date"])
    for column in ("month", "ts_code", "industry"):
        samples[column] = samples[column].astype(str)
    return X, samples[list(SAMPLE_COLUMNS)].reset_index(drop=True)


def _locate_windows(features, samples, t_position, cfg):
    """Feature values sorted by (stock, day); per sample the sorted row of its last traded day <= t
    (-1 when none) and whether its last seq_len traded days fall within max_window_sessions of t."""
    code_ids, _ = pd.factorize(np.concatenate([features["ts_code"].to_numpy(object), samples["ts_code"].to_numpy(object)]))
    f_code, s_code = code_ids[: len(features)].astype(np.int64), code_ids[len(features) :].astype(np.int64)
    f_position = session_calendar.session_positions(features["trade_date"], "features") if len(features) else np.zeros(0, np.int64)
    order = np.lexsort((f_position, f_code))
    n_sessions = len(session_calendar.all_sessions())
    keys = f_code[order] * n_sessions + f_position[order]
    if np.any(np.diff(keys) == 0):
        raise ValueError("features hold two rows for the same stock and day")
    f_position = f_position[order]
    values = features[list(FEATURE_NAMES)].to_numpy(dtype=np.float64, na_value=np.nan)[order]

    last = np.searchsorted(keys, s_code * n_sessions + t_position, side="right") - 1
    first_of_stock = np.searchsorted(keys, s_code * n_sessions, side="left")
    count = np.maximum(last - first_of_stock + 1, 0)
    last[count == 0] = -1
    full_window = count >= cfg.seq_len
    window_start = last[full_window] - cfg.seq_len + 1
    full_window[full_window] = f_position[window_start] >= t_position[full_window] - (cfg.max_window_sessions - 1)

    ends_on_t = np.zeros(len(samples), dtype=bool)
    ends_on_t[last >= 0] = f_position[last[last >= 0]] == t_position[last >= 0]
    # The window must end on t itself; traded on t without a feature row there means the inputs disagree.
    inconsistent = full_window & samples["is_trading"].to_numpy() & ~ends_on_t
    if inconsistent.any():
        row = samples.loc[inconsistent].iloc[0]
        raise ValueError(
            f"daily bars show {row.ts_code} trading on {pd.Timestamp(row.trade_date).date()} but the "
            "features have no row for that day: recompute the features of that month"
        )
    return values, last, full_window


def _rank_scores(values: np.ndarray) -> np.ndarray:
    """Per column, average ranks across rows mapped to mean 0 and variance 1 (uniform scores).

    Ranks rather than a z-score because levels such as volume span orders of magnitude across stocks, and
    a few extreme names would otherwise squash everyone else near zero. A NaN (nothing observed) scores 0.
    """
    frame = pd.DataFrame(values)
    ranks = frame.rank(method="average").to_numpy()
    count = frame.notna().sum().to_numpy()
    centre = (count + 1) / 2.0
    scale = np.sqrt(np.maximum(count**2 - 1, 1) / 12.0)
    out = (ranks - centre) / scale
    return np.nan_to_num(out, nan=0.0)


_SIDE_STD_FLOOR = 1e-9


def _side_inputs(raw: np.ndarray) -> np.ndarray:
    """[n, steps, features] raw windows -> [n, 2 x features]: window mean and log std, ranked across rows."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN series has no mean: it ranks as NaN -> 0
        level = np.nanmean(raw, axis=1)
        # A constant series has no volatility, but its computed std is rounding noise (1e-17, 0, ...)
        # whose order would decide ranks: floor it, so constant series tie at the bottom.
        floor = _SIDE_STD_FLOOR * np.maximum(1.0, np.abs(level))
        logvol = np.log(np.maximum(np.nanstd(raw, axis=1), floor))
    logvol[~np.isfinite(logvol)] = np.nan
    level[~np.isfinite(level)] = np.nan
    return _rank_scores(np.concatenate([level, logvol], axis=1))


def market_beta(returns: np.ndarray) -> np.ndarray:
    """[n, steps] daily returns of one date's stocks -> each stock's beta to their equal-weight mean return.

    Windows are the stocks' last traded days, so a stock halted within the window is aligned with the
    others by step, not by session: close enough for a risk exposure, and point-in-time. NaN where the
    market did not move or the stock has fewer than two observed steps.
    """
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        market = np.nanmean(returns, axis=0)
        centred_market = market - market.mean()
        centred = returns - np.nanmean(returns, axis=1, keepdims=True)
        cov = np.nanmean(centred * centred_market, axis=1)
        beta = cov / np.mean(centred_market**2)
    return np.where(np.isfinite(beta), beta, np.nan)


def _gather_and_standardise(values, window_end, t_position, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather each eligible sample's last seq_len feature rows and standardise, one date at a time;
    also the side inputs of each (SIDE_COLUMNS) and its market beta."""
    n = len(window_end)
    X = np.empty((n, cfg.seq_len, len(FEATURE_NAMES)), dtype=np.float32)
    side = np.empty((n, len(SIDE_COLUMNS)), dtype=np.float32)
    beta = np.empty(n, dtype=np.float64)
    if n == 0:
        return X, side, beta
    ret = FEATURE_NAMES.index("ret")
    steps = np.arange(-cfg.seq_len + 1, 1)
    boundaries = np.flatnonzero(np.diff(t_position)) + 1
    # Processing per date bounds the float64 temporaries to one cross-section.
    for lo, hi in zip(np.r_[0, boundaries], np.r_[boundaries, n]):
        raw = values[window_end[lo:hi, None] + steps]
        X[lo:hi] = zscore(_standardise_series(raw, cfg.mad_clip), axis=0)
        side[lo:hi] = _side_inputs(raw)
        beta[lo:hi] = market_beta(raw[:, :, ret])
    if not np.isfinite(X).all():
        raise AssertionError("standardised samples hold a non-finite value")
    return X, side, beta



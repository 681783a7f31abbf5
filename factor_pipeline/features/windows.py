"""The features stage: daily volume-price features, the 40 x 18 samples with their universe flags, labels.

Daily features are computed in DuckDB (``sql/compute_daily_features.sql``) over each stock's own traded
days on adjusted prices; the samples gather each eligible stock's last ``seq_len`` feature rows with
numpy fancy indexing and standardise them as METHOD.md describes (per series, then per date across
stocks). Formulas and reasons are in docs/features.md. Everything here is point-in-time: a sample on
date t reads nothing dated after t, and a label is returned only once its horizon session has closed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from factor_pipeline.market import trading_rules
from factor_pipeline.market import session_calendar
from factor_pipeline import storage
from factor_pipeline.config import SampleConfig

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
# The longest window looks back 20 traded days; two months hold at least 34 XSHG sessions before any
# month's first session (one month can hold as few as 14, around the Spring Festival).
FEATURE_LOOKBACK_MONTHS: int = 2
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
    "seq_index",
    *SIDE_COLUMNS,
)
FEATURE_COLUMNS: tuple[str, ...] = ("ts_code", "trade_date", "month", *FEATURE_NAMES, "adj_close")

MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of a normal distribution's std
# Half a price tick: on-grid closes are either at the limit or at least a tick below it, and a close
# that is off the grid by rounding noise still counts as at the limit.
_LIMIT_TOLERANCE = 0.005


def _timestamps(values) -> np.ndarray:
    """datetime64[ns] whatever resolution the frame carries (pandas 3 defaults to microseconds)."""
    return np.asarray(pd.DatetimeIndex(values).as_unit("ns").values)


def _query(sql_name: str, relations: dict[str, pd.DataFrame], params: dict) -> pd.DataFrame:
    with duckdb.connect() as con:
        for name, frame in relations.items():
            con.register(name, frame)
        return con.execute(storage.load_sql(sql_name), params).df()


# ---------------------------------------------------------------------------------------------------
# Daily features


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
    out = _query("compute_daily_features", {"daily": daily}, params)
    out["trade_date"] = _timestamps(out["trade_date"])
    out["ts_code"] = out["ts_code"].astype(str)
    out["month"] = out["month"].astype(str)
    for column in (*FEATURE_NAMES, "adj_close"):
        values = out[column].to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        # A zero or corrupt input can still produce an infinity; downstream treats it as missing.
        values[~np.isfinite(values)] = np.nan
        out[column] = values
    return out[list(FEATURE_COLUMNS)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# Samples


def _session_positions(dates, what: str) -> np.ndarray:
    positions = session_calendar.all_sessions().get_indexer(pd.DatetimeIndex(_timestamps(dates)))
    if len(positions) and positions.min() < 0:
        bad = pd.DatetimeIndex(_timestamps(dates))[positions < 0][0]
        raise ValueError(f"{what} holds {bad.date()}, which is not an XSHG session")
    return positions


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
    list_date = _timestamps(stocks["list_date"])
    delist_date = _timestamps(stocks["delist_date"]) if "delist_date" in stocks else np.full(len(stocks), np.datetime64("NaT", "ns"))
    date_values = _timestamps(dates)
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


def _standardised(centred: np.ndarray, constant: np.ndarray, axis: int) -> np.ndarray:
    """centred / its population std along ``axis``, in place; zeros where ``constant``."""
    std = np.sqrt(np.mean(np.square(centred), axis=axis, keepdims=True))
    std[constant] = 1.0
    centred /= std
    centred *= ~constant
    return centred


def _zscore(x: np.ndarray, axis: int) -> np.ndarray:
    """z-score along ``axis`` (population std); a series whose values are all equal becomes zeros.

    Constancy is tested as max == min rather than std == 0 because the mean of equal values can be
    off by an ulp, which would blow rounding noise up to +-1.
    """
    constant = x.max(axis=axis, keepdims=True) == x.min(axis=axis, keepdims=True)
    return _standardised(x - x.mean(axis=axis, keepdims=True), constant, axis)


def _standardise_series(raw: np.ndarray, mad_clip: float) -> np.ndarray:
    """Per sample and feature along the steps: fill NaN with the median, clip, z-score.

    ``raw`` is [n, steps, features]. Median and MAD come from the observed cells. Where the MAD is 0
    (more than half the steps equal) no clip is applied: a zero-width band would flatten the series
    to a constant and erase the days that differ. A series with nothing observed becomes zeros.
    """
    filled, constant = _clipped_series(raw, mad_clip)
    filled -= filled.mean(axis=-1, keepdims=True)
    return np.swapaxes(_standardised(filled, constant[..., None], axis=-1), 1, 2)


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
    t_position = _session_positions(rows["trade_date"], "samples") if len(rows) else np.zeros(0, np.int64)
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
        out[lo:hi] = _zscore(np.swapaxes(filled, 1, 2), axis=0)
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
    date_positions = _session_positions(dates, f"sample dates of {month}")
    _check_sequence_lookback(month, int(date_positions.min()), cfg)

    samples = _candidates(stocks, dates, month)
    t_position = _session_positions(samples["trade_date"], "sample dates") if len(samples) else np.zeros(0, np.int64)
    samples["listed_sessions"] = _listed_sessions(samples["list_date"].to_numpy(), t_position).astype(np.int64)

    bars = _query(
        "lookup_sample_date_bars",
        {"candidates": samples[["row_id", "ts_code", "trade_date"]], "daily": daily},
        {},
    )
    samples["is_st"] = bars["is_st"].to_numpy(dtype=bool)
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

    X, side = _gather_and_standardise(values, window_end[eligible], t_position[eligible], cfg)
    side_table = np.full((len(samples), len(SIDE_COLUMNS)), np.nan, dtype=np.float32)
    side_table[eligible] = side
    for k, column in enumerate(SIDE_COLUMNS):
        samples[column] = side_table[:, k]
    samples["trade_date"] = _timestamps(samples["trade_date"])
    for column in ("month", "ts_code", "industry"):
        samples[column] = samples[column].astype(str)
    return X, samples[list(SAMPLE_COLUMNS)].reset_index(drop=True)


def _locate_windows(features, samples, t_position, cfg):
    """Feature values sorted by (stock, day); per sample the sorted row of its last traded day <= t
    (-1 when none) and whether its last seq_len traded days fall within max_window_sessions of t."""
    code_ids, _ = pd.factorize(np.concatenate([features["ts_code"].to_numpy(object), samples["ts_code"].to_numpy(object)]))
    f_code, s_code = code_ids[: len(features)].astype(np.int64), code_ids[len(features) :].astype(np.int64)
    f_position = _session_positions(features["trade_date"], "features") if len(features) else np.zeros(0, np.int64)
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


def _gather_and_standardise(values, window_end, t_position, cfg) -> tuple[np.ndarray, np.ndarray]:
    """Gather each eligible sample's last seq_len feature rows and standardise, one date at a time;
    also the side inputs of each (SIDE_COLUMNS)."""
    n = len(window_end)
    X = np.empty((n, cfg.seq_len, len(FEATURE_NAMES)), dtype=np.float32)
    side = np.empty((n, len(SIDE_COLUMNS)), dtype=np.float32)
    if n == 0:
        return X, side
    steps = np.arange(-cfg.seq_len + 1, 1)
    boundaries = np.flatnonzero(np.diff(t_position)) + 1
    # Processing per date bounds the float64 temporaries to one cross-section.
    for lo, hi in zip(np.r_[0, boundaries], np.r_[boundaries, n]):
        raw = values[window_end[lo:hi, None] + steps]
        X[lo:hi] = _zscore(_standardise_series(raw, cfg.mad_clip), axis=0)
        side[lo:hi] = _side_inputs(raw)
    if not np.isfinite(X).all():
        raise AssertionError("standardised samples hold a non-finite value")
    return X, side


# ---------------------------------------------------------------------------------------------------
# Forward returns and labels


def forward_returns(daily: pd.DataFrame, targets: pd.DataFrame) -> pd.Series:
    """Adjusted return from the close of start_date to the last close in (start_date, end_date], per target.

    NaN when the stock has no close on start_date or none after it up to end_date (METRICS.md).
    """
    frame = pd.DataFrame(
        {
            "target_row": np.arange(len(targets), dtype=np.int64),
            "ts_code": targets["ts_code"].to_numpy(object),
            "start_date": _timestamps(targets["start_date"]),
            "end_date": _timestamps(targets["end_date"]),
        }
    )
    out = _query("compute_forward_returns", {"targets": frame, "daily": daily}, {})
    if len(out) != len(frame):
        raise ValueError("daily bars hold two rows for the same stock and day")
    values = out["forward_return"].to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.Series(values, index=targets.index, name="forward_return")


def compute_labels(daily: pd.DataFrame, samples: pd.DataFrame, horizon: int, as_of) -> pd.Series:
    """Forward return over ``horizon`` sessions after each sample's date; NaN until that session <= as_of."""
    sessions = session_calendar.all_sessions()
    position = _session_positions(samples["trade_date"], "samples") if len(samples) else np.zeros(0, np.int64)
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
                "start_date": _timestamps(samples["trade_date"])[known],
                "end_date": end[known],
            }
        )
        labels.iloc[np.flatnonzero(known)] = forward_returns(daily, targets).to_numpy()
    return labels


# ---------------------------------------------------------------------------------------------------
# Storage


def _sample_paths(directory: Path, month: str) -> tuple[Path, Path]:
    directory = Path(directory)
    return directory / f"{month}.npy", directory / f"{month}.parquet"


def _steps_path(directory: Path, month: str) -> Path:
    return Path(directory) / f"{month}.steps.npy"


def save_samples(
    directory: Path,
    month: str,
    X: np.ndarray,
    samples: pd.DataFrame,
    provenance: dict | None = None,
    steps: np.ndarray | None = None,
) -> None:
    """<dir>/<m>.steps.npy (when ``steps`` is given), <dir>/<m>.npy, then <dir>/<m>.parquet, each atomic.

    The arrays go first so that the parquet, which readers and the DuckDB view look for, never
    points at sequences that are not there yet. ``steps``: :func:`scale_steps` of the same rows.
    """
    n_eligible = int((samples["seq_index"] >= 0).sum())
    if X.shape[0] != n_eligible:
        raise ValueError(f"X has {X.shape[0]} rows but the samples of {month} have {n_eligible} with a seq_index")
    if steps is not None and steps.shape[:2] != X.shape[:2]:
        raise ValueError(f"steps has shape {steps.shape} but X {X.shape} for {month}")
    npy_path, parquet_path = _sample_paths(directory, month)
    if steps is not None:
        storage.write_npy(np.ascontiguousarray(steps, dtype=np.float32), _steps_path(directory, month))
    storage.write_npy(np.ascontiguousarray(X, dtype=np.float32), npy_path)
    storage.write_parquet(samples, parquet_path, provenance)


def load_steps(directory: Path, months: list[str]) -> np.ndarray:
    """The step channels (:func:`scale_steps`, float32 [N, seq_len, len(STATE_FEATURES)]) of several months, row
    for row as ``load_samples(directory, months, eligible_only=True)`` returns X."""
    arrays = []
    for month in months:
        path = _steps_path(directory, month)
        if not path.exists():
            raise storage.StorageError(f"{path} is missing: re-materialise the samples of {month} (step channels)")
        steps = storage.read_npy(path)
        n_rows = len(storage.read_npy(_sample_paths(directory, month)[0], mmap=True))
        if steps.ndim != 3 or steps.shape[0] != n_rows or steps.shape[2] != len(STATE_FEATURES):
            raise storage.StorageError(f"{path} has shape {steps.shape}, not ({n_rows}, seq_len, {len(STATE_FEATURES)})")
        arrays.append(steps)
    if not arrays:
        return np.empty((0, 0, len(STATE_FEATURES)), dtype=np.float32)
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)


def load_samples(directory: Path, months: list[str], eligible_only: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """The samples of several months concatenated, seq_index renumbered to rows of the returned X."""
    arrays, frames, offset = [], [], 0
    for month in months:
        npy_path, parquet_path = _sample_paths(directory, month)
        samples = storage.read_parquet(parquet_path)
        X = storage.read_npy(npy_path)
        if "seq_index" not in samples.columns:
            raise storage.StorageError(f"{parquet_path} has no seq_index column; re-materialise that partition")
        seq_index = samples["seq_index"].to_numpy(dtype=np.int64)
        n_eligible = int((seq_index >= 0).sum())
        if X.ndim != 3 or X.shape[0] != n_eligible:
            raise storage.StorageError(
                f"{npy_path} holds {X.shape[0] if X.ndim else 0} sequences but {parquet_path} has "
                f"{n_eligible} eligible rows; re-materialise that partition"
            )
        if eligible_only:
            keep = seq_index >= 0
            samples = samples.loc[keep].reset_index(drop=True)
            seq_index = seq_index[keep]
        if n_eligible and not np.array_equal(np.sort(seq_index[seq_index >= 0]), np.arange(n_eligible)):
            raise storage.StorageError(f"{parquet_path} has a seq_index that is not 0..{n_eligible - 1}")
        samples["seq_index"] = np.where(seq_index >= 0, seq_index + offset, -1)
        arrays.append(X)
        frames.append(samples)
        offset += n_eligible
    if not frames:
        return np.empty((0, 0, len(FEATURE_NAMES)), dtype=np.float32), pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    X = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    return X, pd.concat(frames, ignore_index=True)

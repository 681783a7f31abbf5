"""The source cache: the whole source, validated once, as canonical Parquet under ``<cache_dir>/<key>/``, and
one month of it read back at a time with a row-group filter.

The key names what the cache holds (the synthetic market's fingerprint, or the input files' names, sizes
and times) and the calendar it was validated against, so a changed input or calendar never reuses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from factor_pipeline import storage
from factor_pipeline.config import Config
from factor_pipeline.market import calendar_source, session_calendar
from factor_pipeline.market.input_files import (
    ISSUE_COLUMNS,
    MarketFrames,
    locate_inputs,
    read_inputs,
    source_directory,
    validate_frames,
)
from factor_pipeline.market.trading_rules import UNCLASSIFIED
from factor_pipeline.market.tushare import exports, fetch

CACHE_FORMAT = 4  # bump when the cached layout or the canonicalisation changes
MANIFEST = "manifest.json"
DAILY_SCHEMA = pa.schema(
    [("ts_code", pa.string()), ("trade_date", pa.timestamp("ns"))]
    + [(c, pa.float64()) for c in ("open", "high", "low", "close", "pre_close", "volume", "amount")]
    + [("adj_factor", pa.float64()), ("float_shares", pa.float64()), ("is_st", pa.bool_()), ("industry", pa.string())]
)
STOCKS_SCHEMA = pa.schema(
    [
        ("ts_code", pa.string()),
        ("name", pa.string()),
        ("industry", pa.string()),
        ("list_date", pa.timestamp("ns")),
        ("delist_date", pa.timestamp("ns")),
    ]
)
INDUSTRY_CHANGES = "industry_changes.parquet"
INDEX_WEIGHT = "index_weight.parquet"  # present only when the source has index weights
TRUTH_SCHEMA = pa.schema([("month", pa.string()), ("ts_code", pa.string()), ("expected_return", pa.float64())])
ISSUES_SCHEMA = pa.schema([(c, pa.string()) for c in ISSUE_COLUMNS])


def _files_key(directory: Path, files: dict[str, Path], calendar_fingerprint: str) -> str:
    digest = hashlib.sha256(f"format={CACHE_FORMAT}\n{directory.resolve()}\ncalendar={calendar_fingerprint}\n".encode())
    for table in sorted(files):
        stat = files[table].stat()
        digest.update(f"{table}:{files[table].name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return "files-" + digest.hexdigest()[:12]


def _cache_complete(target: Path) -> bool:
    manifest = target / MANIFEST
    if not (manifest.is_file() and (target / "daily.parquet").is_file() and (target / "stocks.parquet").is_file()):
        return False
    try:
        return storage.read_json(manifest).get("format") == CACHE_FORMAT
    except storage.StorageError:
        return False


def _write_daily(daily: pd.DataFrame, path: Path) -> None:
    """Sorted by trade_date, one row group per month, so that :func:`read_month` reads one group."""
    table = pa.Table.from_pandas(daily, schema=DAILY_SCHEMA, preserve_index=False)
    months = daily["trade_date"].to_numpy(dtype="datetime64[M]")
    starts = np.flatnonzero(np.r_[True, months[1:] != months[:-1]]) if len(months) else np.array([0])
    stops = np.r_[starts[1:], len(months)]
    with storage.atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, DAILY_SCHEMA, compression="zstd") as writer:
            for start, stop in zip(starts, stops):
                writer.write_table(table.slice(int(start), int(stop - start)))


def month_states(frames: MarketFrames) -> dict[str, str]:
    """month -> fingerprint of the source's content up to that month (bars, point-in-time stocks, truth).

    Chained month by month, so a month's state covers its whole history and appending later months leaves
    it unchanged; a correction changes the state of its month and of every later one.
    """
    daily = frames.daily
    if daily.empty:
        return {}
    months = daily["trade_date"].dt.strftime("%Y-%m").to_numpy()
    bounds = np.flatnonzero(np.r_[True, months[1:] != months[:-1], True])
    stocks = frames.stocks
    changes = industry_changes(daily)
    states, chain = {}, hashlib.sha256(b"factor-pipeline source state")
    for start, stop in zip(bounds[:-1], bounds[1:]):
        month = months[start]
        end = session_calendar.parse_month(month).end_time.normalize()
        listed = stocks_as_of(stocks, end)
        # Point in time: the industry as of the month's end, not the static (newest) one.
        listed = with_industry_as_of(listed, changes, end)
        bars = daily.iloc[start:stop]
        chain.update(pd.util.hash_pandas_object(bars.drop(columns=["industry"]), index=False).to_numpy().tobytes())
        # A bar's industry counts where it is not the month-end one (a move within the month), so that a
        # home built from canonical files before bars carried an industry keeps its identity.
        month_end = bars["ts_code"].map(listed.set_index("ts_code")["industry"]).to_numpy(dtype=object)
        if (bars["industry"].to_numpy(dtype=object) != month_end).any():
            chain.update(pd.util.hash_pandas_object(bars["industry"], index=False).to_numpy().tobytes())
        chain.update(pd.util.hash_pandas_object(listed, index=False).to_numpy().tobytes())
        if frames.truth is not None:
            truth = frames.truth[frames.truth["month"] == month]
            chain.update(pd.util.hash_pandas_object(truth, index=False).to_numpy().tobytes())
        if frames.index_weight is not None:  # only then, so that a source without index data keeps its states
            weights = frames.index_weight[frames.index_weight["trade_date"].dt.strftime("%Y-%m") == month]
            chain.update(pd.util.hash_pandas_object(weights, index=False).to_numpy().tobytes())
        states[month] = chain.copy().hexdigest()[:16]
    return states


def industry_changes(daily: pd.DataFrame) -> pd.DataFrame:
    """(ts_code, trade_date, industry) of each stock's first bar and of every bar whose industry differs from
    the stock's previous bar: the point-in-time industry, small enough to read whole for any month."""
    bars = daily[["ts_code", "trade_date", "industry"]].sort_values(["ts_code", "trade_date"], kind="stable")
    first = bars["ts_code"].ne(bars["ts_code"].shift())
    changed = bars["industry"].ne(bars["industry"].shift())
    return bars[(first | changed).to_numpy()].reset_index(drop=True)


def with_industry_as_of(stocks: pd.DataFrame, changes: pd.DataFrame, date) -> pd.DataFrame:
    """``stocks`` with each stock's industry as of ``date``: its last change on or before it, else the static one."""
    known = changes[changes["trade_date"] <= date].sort_values("trade_date", kind="stable")
    as_of = stocks["ts_code"].map(known.drop_duplicates("ts_code", keep="last").set_index("ts_code")["industry"])
    return stocks.assign(industry=as_of.fillna(stocks["industry"]).astype(stocks["industry"].dtype))


def _write_cache(target: Path, frames: MarketFrames, manifest: dict) -> None:
    _write_daily(frames.daily, target / "daily.parquet")
    storage.write_parquet(industry_changes(frames.daily), target / INDUSTRY_CHANGES)
    storage.write_parquet(
        pa.Table.from_pandas(frames.stocks, schema=STOCKS_SCHEMA, preserve_index=False), target / "stocks.parquet"
    )
    if frames.truth is not None:
        storage.write_parquet(
            pa.Table.from_pandas(frames.truth, schema=TRUTH_SCHEMA, preserve_index=False), target / "truth.parquet"
        )
    if frames.issues is not None:
        storage.write_parquet(
            pa.Table.from_pandas(frames.issues, schema=ISSUES_SCHEMA, preserve_index=False), target / "issues.parquet"
        )
    if frames.index_weight is not None:
        storage.write_parquet(frames.index_weight, target / INDEX_WEIGHT)
    states = month_states(frames)
    if manifest["source"] != "synthetic":
        # Input files are named by their content, so moving or copying the directory keeps the identity.
        first = min(states) if states else "none"
        manifest["identity"] = f"input files whose first month {first} has content {states.get(first, 'none')}"
    # Written last: its presence marks a complete cache.
    storage.write_json(
        {**manifest, "format": CACHE_FORMAT, "month_states": states, **month_summary(frames)}, target / MANIFEST
    )


def load_source(
    source: str, cfg: Config, cache_dir: Path, calendar: session_calendar.SessionCalendar | None = None,
    tushare_dir: Path | None = None,
) -> Path:
    """Materialise the whole source once as canonical Parquet under ``cache_dir/<key>/``; return that directory.

    ``source`` is ``"synthetic"``, ``"tushare"`` (the responses fetched into ``tushare_dir``) or a directory of
    input files, canonical or Tushare exports. The key is ``synthetic-<market fingerprint>-cal-
    <calendar fingerprint>`` or ``files-<hash of the files' names, sizes, mtimes and the calendar>``, because
    the synthetic market and the validation both depend on the sessions; a complete cache is reused as it
    is. The input is validated fully before anything is written. The manifest records the source's identity
    and its month states (:func:`month_states`). ``calendar`` is the source's (calendar_source.resolve of
    ``source`` alone when None): the synthetic market is simulated on it and input files are validated
    against it; loading activates nothing.
    """
    cache_dir = Path(cache_dir)
    text = str(source).strip()
    calendar = calendar or calendar_source.resolve(text)
    if text.lower() == "synthetic":
        target = cache_dir / f"synthetic-{cfg.fingerprint('market')}-cal-{calendar.fingerprint}"
        if _cache_complete(target):
            return target
        from factor_pipeline.market.synthetic import generate_market  # lazy: a heavy module

        market = generate_market(cfg.market, calendar=calendar)
        frames = validate_frames(market.daily, market.stocks, getattr(market, "truth", None), "synthetic market", calendar)
        manifest = {
            "source": "synthetic",
            "identity": f"synthetic market {cfg.fingerprint('market')}",
            "market": cfg.to_dict()["market"],
            "calendar": calendar.description,
        }
    elif text.lower() == "tushare":
        if tushare_dir is None:
            raise ValueError("the tushare source needs the directory its fetched responses are stored in")
        stamp = fetch.stored_fingerprint(tushare_dir)
        target = cache_dir / f"tushare-{stamp}-cal-{calendar.fingerprint}-f{CACHE_FORMAT}"
        if _cache_complete(target):
            return target
        frames = exports.convert(*fetch.stored_tables(tushare_dir), calendar=calendar)
        manifest = {"source": "tushare", "files": {"fetched": str(tushare_dir)}, "calendar": calendar.description}
    else:
        directory = source_directory(text, from_env=True)
        files = exports.locate_exports(directory) or locate_inputs(directory)
        target = cache_dir / _files_key(directory, files, calendar.fingerprint)
        if _cache_complete(target):
            return target
        frames = exports.read_exports(files, calendar) if "stock_basic" in files else read_inputs(files, calendar)
        manifest = {
            "source": str(directory.resolve()),
            "files": {k: p.name for k, p in files.items()},
            "calendar": calendar.description,
        }
    _write_cache(target, frames, manifest)
    return target


def read_manifest(cache: Path) -> dict:
    return storage.read_json(Path(cache) / MANIFEST)


def _read_cached(path: Path, filters=None) -> pd.DataFrame:
    if not path.is_file():
        raise storage.StorageError(f"{path} does not exist: run load_source (the raw_bars asset) first")
    try:
        return pq.read_table(path, filters=filters).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise storage.StorageError(f"{path} is corrupt or truncated ({exc}); delete {path.parent} to rebuild it") from exc


def stocks_as_of(stocks: pd.DataFrame, date) -> pd.DataFrame:
    """The stocks table as known on ``date``: names listed by then, and a later delist_date not yet known (NaT)."""
    date = pd.Timestamp(date)
    out = stocks[stocks["list_date"] <= date].reset_index(drop=True)
    out["delist_date"] = out["delist_date"].where(out["delist_date"] <= date, pd.NaT)
    return out


def read_month(cache: Path, month: str) -> MarketFrames:
    """The month's daily rows, the stocks table as of its rebalance date d(m), its truth rows and the irregular
    rows the source's conversion set right, the month's own and those of no month (the snapshots'); each None
    where the source has none.

    Point in time: only names with list_date <= d(m); a delist_date later than d(m) is not yet known and
    reads NaT; the industry is the one of the stock's last bar on or before d(m) (the static column for a
    stock without bars yet).
    """
    cache = Path(cache)
    period = session_calendar.parse_month(month)
    rebalance = session_calendar.rebalance_date(month)
    start, end = period.start_time, period.end_time.normalize()
    daily = _read_cached(cache / "daily.parquet", filters=[("trade_date", ">=", start), ("trade_date", "<=", end)])
    daily = daily.reset_index(drop=True)
    daily["trade_date"] = daily["trade_date"].astype("datetime64[ns]")

    stocks = _read_cached(cache / "stocks.parquet")
    for column in ("list_date", "delist_date"):
        stocks[column] = stocks[column].astype("datetime64[ns]")
    stocks = stocks_as_of(stocks, rebalance)
    changes = _read_cached(cache / INDUSTRY_CHANGES, filters=[("trade_date", "<=", rebalance)])
    stocks = with_industry_as_of(stocks, changes, rebalance)

    truth = None
    if (cache / "truth.parquet").is_file():
        truth = _read_cached(cache / "truth.parquet", filters=[("month", "==", month)]).reset_index(drop=True)
    issues = None
    if (cache / "issues.parquet").is_file():
        issues = _read_cached(cache / "issues.parquet")
        issues = issues[issues["month"].isna() | (issues["month"] == month)].reset_index(drop=True)
    index_weight = None
    if (cache / INDEX_WEIGHT).is_file():
        index_weight = weights_as_of(_read_cached(cache / INDEX_WEIGHT, filters=[("trade_date", "<=", rebalance)]), rebalance)
    return MarketFrames(daily, stocks, truth, issues, index_weight)


def weights_as_of(index_weight: pd.DataFrame, date) -> pd.DataFrame:
    """Each index's constituents and weights as last published on or before ``date`` (point in time)."""
    known = index_weight[index_weight["trade_date"] <= pd.Timestamp(date)]
    latest = known.groupby("index_code")["trade_date"].transform("max")
    return known[known["trade_date"] == latest].reset_index(drop=True)


def month_summary(frames: MarketFrames) -> dict:
    """Plain-Python numbers for Dagster metadata."""
    daily = frames.daily
    dates = daily["trade_date"]
    return {
        "rows": int(len(daily)),
        "stocks": int(daily["ts_code"].nunique()),
        "listed_stocks": int(len(frames.stocks)),
        "sessions": int(dates.nunique()),
        "first_date": dates.min().date().isoformat() if len(daily) else None,
        "last_date": dates.max().date().isoformat() if len(daily) else None,
        "suspended_rows": int((daily["volume"] == 0).sum()),
        "truth_rows": None if frames.truth is None else int(len(frames.truth)),
        **issue_counts(frames),
    }


def issue_counts(frames: MarketFrames) -> dict:
    """The month's irregular rows set right, by kind, and its listed stocks without an industry; nothing for a
    source that cannot have any (the synthetic market)."""
    if frames.issues is None:
        return {}
    kinds = frames.issues["kind"].value_counts().sort_index()
    return {
        "data_issues": int(len(frames.issues)),
        "data_issues_by_kind": {str(k): int(v) for k, v in kinds.items()},
        "unclassified_stocks": int((frames.stocks["industry"] == UNCLASSIFIED).sum()),
    }

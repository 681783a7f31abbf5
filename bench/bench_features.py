"""Benchmark of the features stage: one month of compute_features + build_samples against pandas.

For each market size a child process generates random-walk canonical bars, computes the features of
the months the samples read (untimed, as the pipeline has them stored), then times
``compute_features`` and ``build_samples`` for the benchmark month, a straightforward pandas
groupby/rolling implementation of the same 18 features for that month, and ``load_samples`` of the
saved month. Each size runs in its own process so that its peak RSS is its own.

    .venv/bin/python bench/bench_features.py            # prints one JSON object
    .venv/bin/python bench/bench_features.py --sizes 500 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from factor_pipeline.features.daily import FEATURE_LOOKBACK_MONTHS, FEATURE_NAMES, compute_features
from factor_pipeline.features.samples import SEQUENCE_LOOKBACK_MONTHS, build_samples
from factor_pipeline.features.store import load_samples, save_samples
from factor_pipeline.market import session_calendar
from factor_pipeline.config import SampleConfig

MONTH = "2024-06"
SIZES = (500, 1000, 2000, 5000)


def generate_bars(n_stocks: int, month: str = MONTH, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical daily bars covering everything one month's features and samples read, plus stocks."""
    rng = np.random.default_rng(seed)
    first_month = session_calendar.shift_month(month, -(SEQUENCE_LOOKBACK_MONTHS + FEATURE_LOOKBACK_MONTHS))
    sessions = session_calendar.sessions_between(session_calendar.month_sessions(first_month)[0], session_calendar.rebalance_date(month))
    T, n = len(sessions), n_stocks
    codes = np.array([f"{600000 + i:06d}.SH" if i % 3 else f"{i:06d}.SZ" for i in range(n)], dtype=object)
    adj = np.ones((T, n))
    ex_day = rng.integers(1, T, n)
    adj[np.arange(T)[:, None] >= ex_day[None, :]] = 1.1
    adj_close = rng.uniform(5, 50, n) * np.exp(np.cumsum(rng.normal(0, 0.02, (T, n)), axis=0))
    close = np.round(adj_close / adj, 2)
    pre_close = np.round(np.vstack([close[:1] * 0.99, (close[:-1] * adj[:-1])]) / adj, 2)
    open_ = np.round(pre_close * np.exp(rng.normal(0, 0.01, (T, n))), 2)
    high = np.round(np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, (T, n))), 2)
    low = np.round(np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, (T, n))), 2)
    volume = np.round(np.exp(rng.normal(14, 0.7, (T, n))))
    traded = rng.random((T, n)) > 0.02
    frame = pd.DataFrame(
        {
            "ts_code": np.tile(codes, T),
            "trade_date": np.repeat(sessions.values, n),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "pre_close": pre_close.ravel(),
            "volume": volume.ravel(),
            "amount": (volume * (low + high) / 2).ravel(),
            "adj_factor": adj.ravel(),
            "float_shares": np.repeat(rng.uniform(1e7, 1e9, n)[None, :], T, axis=0).ravel(),
            "is_st": (rng.random((T, n)) < 0.002).ravel(),
        }
    )
    frame["trade_date"] = frame["trade_date"].astype("datetime64[ns]")
    stocks = pd.DataFrame(
        {
            "ts_code": codes,
            "name": codes,
            "industry": "Banks",
            "list_date": pd.Timestamp("2015-06-01"),
            "delist_date": pd.NaT,
        }
    )
    stocks["list_date"] = stocks["list_date"].astype("datetime64[ns]")
    stocks["delist_date"] = stocks["delist_date"].astype("datetime64[ns]")
    return frame[traded.ravel()].reset_index(drop=True), stocks


def months_window(month: str, back: int) -> list[str]:
    return session_calendar.months_between(session_calendar.shift_month(month, -back), month)


def bars_of(daily: pd.DataFrame, months: list[str]) -> pd.DataFrame:
    """The rows of the given months, as the asset reads its session_calendar."""
    first = session_calendar.month_sessions(months[0])[0]
    last = session_calendar.rebalance_date(months[-1])
    return daily[(daily.trade_date >= first) & (daily.trade_date <= last)]


def pandas_features(daily: pd.DataFrame, month: str) -> pd.DataFrame:
    """The same 18 features with whole-frame pandas groupby/shift/rolling (no Python per stock)."""
    df = daily[daily["volume"] > 0].sort_values(["ts_code", "trade_date"]).reset_index(drop=True)
    a = df["adj_factor"]
    out = pd.DataFrame({"ts_code": df["ts_code"], "trade_date": df["trade_date"]})
    out["close"] = df["close"] * a
    out["open"] = df["open"] * a
    out["high"] = df["high"] * a
    out["low"] = df["low"] * a
    out["vwap"] = df["amount"] / df["volume"] * a
    out["volume"] = df["volume"]
    out["amount"] = df["amount"]
    out["turnover_rate"] = df["volume"] / df["float_shares"].replace(0, np.nan)
    groups = out.groupby("ts_code", sort=False)
    prev = groups["close"].shift(1).fillna(df["pre_close"] * a)
    out["ret"] = out["close"] / prev - 1
    out["log_ret"] = np.log(out["close"] / prev)
    out["intraday_ret"] = out["close"] / out["open"] - 1
    out["overnight_ret"] = out["open"] / prev - 1
    out["amplitude"] = (out["high"] - out["low"]) / prev
    out["upper_shadow"] = (out["high"] - np.maximum(out["open"], out["close"])) / prev
    out["lower_shadow"] = (np.minimum(out["open"], out["close"]) - out["low"]) / prev
    out["close_to_vwap"] = out["close"] / out["vwap"] - 1
    volume_mean = groups["volume"].rolling(5, min_periods=1).mean().reset_index(level=0, drop=True).sort_index()
    turnover_mean = groups["turnover_rate"].rolling(20, min_periods=1).mean().reset_index(level=0, drop=True).sort_index()
    out["volume_ratio_5"] = out["volume"] / volume_mean.groupby(out["ts_code"], sort=False).shift(1)
    out["turnover_ratio_20"] = out["turnover_rate"] / turnover_mean.groupby(out["ts_code"], sort=False).shift(1)
    period = session_calendar.parse_month(month)
    in_month = (out["trade_date"] >= period.start_time) & (out["trade_date"] <= period.end_time)
    return out[in_month].reset_index(drop=True)


def _one_stock(g: pd.DataFrame) -> pd.DataFrame:
    a = g["adj_factor"]
    close, open_, high, low = g["close"] * a, g["open"] * a, g["high"] * a, g["low"] * a
    vwap = g["amount"] / g["volume"] * a
    turnover = g["volume"] / g["float_shares"].replace(0, np.nan)
    prev = close.shift(1).fillna(g["pre_close"] * a)
    return pd.DataFrame(
        {
            "trade_date": g["trade_date"],
            "close": close,
            "open": open_,
            "high": high,
            "low": low,
            "vwap": vwap,
            "volume": g["volume"],
            "amount": g["amount"],
            "turnover_rate": turnover,
            "ret": close / prev - 1,
            "log_ret": np.log(close / prev),
            "intraday_ret": close / open_ - 1,
            "overnight_ret": open_ / prev - 1,
            "amplitude": (high - low) / prev,
            "upper_shadow": (high - np.maximum(open_, close)) / prev,
            "lower_shadow": (np.minimum(open_, close) - low) / prev,
            "close_to_vwap": close / vwap - 1,
            "volume_ratio_5": g["volume"] / g["volume"].rolling(5, min_periods=1).mean().shift(1),
            "turnover_ratio_20": turnover / turnover.rolling(20, min_periods=1).mean().shift(1),
        }
    )


def pandas_features_per_stock(daily: pd.DataFrame, month: str) -> pd.DataFrame:
    """The same 18 features one stock at a time (groupby.apply): the straightforward way to write it."""
    df = daily[daily["volume"] > 0].sort_values(["ts_code", "trade_date"])
    out = df.groupby("ts_code").apply(_one_stock).reset_index(level=0).reset_index(drop=True)
    period = session_calendar.parse_month(month)
    in_month = (out["trade_date"] >= period.start_time) & (out["trade_date"] <= period.end_time)
    return out[in_month].reset_index(drop=True)


def _max_rel_diff(baseline: pd.DataFrame, ours: pd.DataFrame) -> float:
    names = list(FEATURE_NAMES)
    assert len(baseline) == len(ours)
    a, b = baseline[names].to_numpy(dtype=float), ours[names].to_numpy(dtype=float)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    return float(np.nanmax(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


def run_size(n_stocks: int) -> dict:
    cfg = SampleConfig()
    daily, stocks = generate_bars(n_stocks)
    feature_months = months_window(MONTH, SEQUENCE_LOOKBACK_MONTHS)
    stored = [
        compute_features(bars_of(daily, months_window(m, FEATURE_LOOKBACK_MONTHS)), m)
        for m in feature_months[:-1]
    ]
    month_bars = bars_of(daily, months_window(MONTH, FEATURE_LOOKBACK_MONTHS))
    flag_bars = bars_of(daily, months_window(MONTH, 1))

    start = time.perf_counter()
    month_features = compute_features(month_bars, MONTH)
    features_s = time.perf_counter() - start
    start = time.perf_counter()
    X, samples = build_samples(pd.concat([*stored, month_features], ignore_index=True), flag_bars, stocks, MONTH, cfg)
    samples_s = time.perf_counter() - start

    ours = month_features.sort_values(["ts_code", "trade_date"]).reset_index(drop=True)
    start = time.perf_counter()
    vectorised = pandas_features(month_bars, MONTH)
    pandas_s = time.perf_counter() - start
    start = time.perf_counter()
    per_stock = pandas_features_per_stock(month_bars, MONTH)
    per_stock_s = time.perf_counter() - start
    max_diff = max(_max_rel_diff(vectorised, ours), _max_rel_diff(per_stock, ours))

    with tempfile.TemporaryDirectory() as directory:
        save_samples(directory, MONTH, X, samples)
        start = time.perf_counter()
        loaded, _ = load_samples(directory, [MONTH])
        load_s = time.perf_counter() - start
    assert loaded.shape == X.shape

    ours_s = features_s + samples_s
    return {
        "stocks": n_stocks,
        "feature_rows": len(month_features),
        "samples": len(samples),
        "eligible": int(X.shape[0]),
        "compute_features_s": round(features_s, 3),
        "build_samples_s": round(samples_s, 3),
        "ours_total_s": round(ours_s, 3),
        "pandas_per_stock_features_s": round(per_stock_s, 3),
        "ratio_per_stock_over_ours_total": round(per_stock_s / ours_s, 2),
        "ratio_per_stock_over_ours_features": round(per_stock_s / features_s, 2),
        "pandas_vectorised_features_s": round(pandas_s, 3),
        "ratio_vectorised_over_ours_total": round(pandas_s / ours_s, 2),
        "ratio_vectorised_over_ours_features": round(pandas_s / features_s, 2),
        "max_rel_diff_vs_pandas": max_diff,
        "load_samples_s": round(load_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_size(args.child)))
        return
    results = []
    for size in args.sizes:
        child = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", str(size)], capture_output=True, text=True, check=True
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "benchmark": "features",
                "month": MONTH,
                "cpu_count": os.cpu_count(),
                "duckdb_threads": "default",
                "baselines": {
                    "per_stock": "groupby('ts_code').apply of shift/rolling per stock, same 18 features",
                    "vectorised": "groupby shift/rolling over all stocks at once, same 18 features",
                    "note": "baselines compute features only; ours_total also builds the samples",
                },
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

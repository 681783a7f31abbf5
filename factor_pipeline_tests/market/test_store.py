"""The source cache: built once from validated input, reused while the input is unchanged, read a month at a time."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from factor_pipeline.market import input_files, session_calendar, store
from factor_pipeline.market.input_files import InputValidationError
from factor_pipeline.market.store import load_source, month_summary, read_month
from factor_pipeline_tests.market.test_input_files import (  # noqa: F401 (valid_dir is a fixture)
    CFG,
    STOCKS,
    cache_files,
    raw_frames,
    read_directory,
    valid_dir,
    write_dir,
)


def test_load_source_writes_canonical_cache_with_a_row_group_per_month(tmp_path, valid_dir):
    cache = load_source(str(valid_dir), CFG, tmp_path / "cache")
    assert cache.parent == tmp_path / "cache" and cache.name.startswith("files-")
    assert sorted(p.name for p in cache.iterdir()) == ["daily.parquet", "industry_changes.parquet", "manifest.json", "stocks.parquet"]
    assert pq.ParquetFile(cache / "daily.parquet").metadata.num_row_groups == 2  # January, February
    stored = pd.read_parquet(cache / "daily.parquet")
    pd.testing.assert_frame_equal(stored, read_directory(valid_dir).daily)


def test_cache_is_reused_without_reading_the_input(tmp_path, valid_dir, monkeypatch):
    first = load_source(str(valid_dir), CFG, tmp_path / "cache")
    stamps = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}

    def must_not_read(*args, **kwargs):
        raise AssertionError("the input was read again")

    monkeypatch.setattr(store, "read_inputs", must_not_read)
    second = load_source(str(valid_dir), CFG, tmp_path / "cache")
    assert second == first
    assert {p.name: p.stat().st_mtime_ns for p in second.iterdir()} == stamps

    # A changed input file is a new key.
    monkeypatch.undo()
    stat = (valid_dir / "daily.csv").stat()
    os.utime(valid_dir / "daily.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = load_source(str(valid_dir), CFG, tmp_path / "cache")
    assert third != first and (third / "manifest.json").is_file()


def test_incomplete_cache_is_rebuilt(tmp_path, valid_dir):
    first = load_source(str(valid_dir), CFG, tmp_path / "cache")
    (first / "manifest.json").unlink()  # as if a crash happened before the cache was complete
    (first / "stocks.parquet").write_bytes(b"garbage")
    again = load_source(str(valid_dir), CFG, tmp_path / "cache")
    assert again == first and (again / "manifest.json").is_file()
    assert len(read_month(again, "2024-01").stocks) == 4


def test_read_month_is_point_in_time(tmp_path, valid_dir):
    cache = load_source(str(valid_dir), CFG, tmp_path / "cache")
    january = read_month(cache, "2024-01")
    february = read_month(cache, "2024-02")
    assert january.truth is None
    jan_sessions = session_calendar.month_sessions("2024-01")
    assert set(january.daily["trade_date"]) == set(jan_sessions)
    assert january.daily["trade_date"].dtype == "datetime64[ns]"
    assert len(january.daily) == 4 * len(jan_sessions)  # 688981.SH is not listed yet
    assert len(january.daily) + len(february.daily) == len(read_directory(valid_dir).daily)
    assert (february.daily["trade_date"].dt.month == 2).all()

    jan_stocks = january.stocks.set_index("ts_code")
    assert "688981.SH" not in jan_stocks.index  # lists 2024-02-05, after d(2024-01)
    assert pd.isna(jan_stocks.loc["600001.SH", "delist_date"])  # delisting on 2024-02-20 not yet known
    feb_stocks = february.stocks.set_index("ts_code")
    assert "688981.SH" in feb_stocks.index
    assert feb_stocks.loc["600001.SH", "delist_date"] == pd.Timestamp("2024-02-20")
    assert feb_stocks["delist_date"].dtype == "datetime64[ns]"

    summary = month_summary(january)
    assert summary["rows"] == len(january.daily)
    assert summary["stocks"] == 4 and summary["listed_stocks"] == 4
    assert summary["first_date"] == "2024-01-02" and summary["last_date"] == "2024-01-31"
    assert summary["suspended_rows"] == 1
    # An empty month (before the data) reads as empty frames with the right columns.
    empty = read_month(cache, "2023-12")
    assert len(empty.daily) == 0 and list(empty.daily.columns) == list(input_files.DAILY_COLUMNS)
    assert month_summary(empty)["first_date"] is None


def test_synthetic_source_is_cached_by_market_fingerprint(tmp_path, monkeypatch):
    """With a stand-in generator: the real synthetic_market module is tested on its own."""
    frames = read_directory(write_dir(tmp_path / "input", *raw_frames()))
    truth = pd.DataFrame(
        {
            "month": ["2024-01"] * 4 + ["2024-02"] * 5,
            "ts_code": ["000001.SZ", "300750.SZ", "600000.SH", "600001.SH"] + sorted(c for c, *_ in STOCKS),
            "expected_return": np.linspace(-0.02, 0.02, 9),
        }
    )
    calls = []

    def generate_market(cfg, sessions=None, calendar=None):
        calls.append(cfg)
        return types.SimpleNamespace(daily=frames.daily, stocks=frames.stocks, truth=truth)

    fake = types.ModuleType("factor_pipeline.market.synthetic")
    fake.generate_market = generate_market
    monkeypatch.setitem(sys.modules, "factor_pipeline.market.synthetic", fake)

    cache = load_source("synthetic", CFG, tmp_path / "cache")
    assert cache.name.startswith(f"synthetic-{CFG.fingerprint('market')}-cal-")
    assert calls == [CFG.market]
    assert load_source("synthetic", CFG, tmp_path / "cache") == cache
    assert len(calls) == 1  # reused
    january = read_month(cache, "2024-01")
    assert list(january.truth["month"].unique()) == ["2024-01"] and len(january.truth) == 4
    assert january.truth["expected_return"].dtype == np.float64
    pd.testing.assert_frame_equal(january.daily, read_month(cache, "2024-01").daily)
    other = load_source("synthetic", CFG.replace(market={"seed": 1}), tmp_path / "cache")
    assert other != cache and len(calls) == 2


def test_synthetic_market_is_validated_too(tmp_path, monkeypatch):
    frames = read_directory(write_dir(tmp_path / "input", *raw_frames()))
    daily = frames.daily.copy()
    daily.loc[5, "high"] = daily.loc[5, "low"] - 1.0
    fake = types.ModuleType("factor_pipeline.market.synthetic")
    fake.generate_market = lambda cfg, sessions=None, calendar=None: types.SimpleNamespace(daily=daily, stocks=frames.stocks, truth=None)
    monkeypatch.setitem(sys.modules, "factor_pipeline.market.synthetic", fake)
    with pytest.raises(InputValidationError) as caught:
        load_source("synthetic", CFG, tmp_path / "cache")
    assert (caught.value.file, caught.value.column, caught.value.row) == ("synthetic market daily", "high", 5)
    assert cache_files(tmp_path / "cache") == []

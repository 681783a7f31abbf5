"""Tushare exports read natively: units, point-in-time industry and ST, the same frames as canonical files,
and bad exports named by file, column and row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.config import profile_config
from factor_pipeline.market.input_files import InputValidationError
from factor_pipeline.market.store import load_source, read_month
from factor_pipeline.market.tushare import exports
from factor_pipeline_tests.market.tushare.fake_api import (
    ADJ_GAP,
    TWICE,
    UNCLASSIFIED_CODES,
    exports_from_canonical,
    planted_issues,
    small_market,
    untidy_market,
    write_canonical,
    write_tables,
)

CFG = profile_config("smoke")


@pytest.fixture(scope="module")
def market():
    return small_market()


@pytest.fixture
def tables(market):
    return exports_from_canonical(*market)


def _load(tmp_path, directory):
    return load_source(str(directory), CFG, tmp_path / "cache")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_exports_give_the_same_months_as_canonical_files(tmp_path, market, tables, fmt):
    daily, stocks, _ = market
    canonical = _load(tmp_path, write_canonical(tmp_path / "canonical", daily, stocks))
    native = _load(tmp_path, write_tables(tmp_path / "exports", tables, fmt))
    assert canonical != native
    for month in ("2024-01", "2024-02", "2024-03"):
        a, b = read_month(canonical, month), read_month(native, month)
        pd.testing.assert_frame_equal(a.daily, b.daily, check_exact=True)
        pd.testing.assert_frame_equal(a.stocks, b.stocks, check_exact=True)


def test_units_industry_and_st_per_day(tmp_path, market, tables):
    frames = exports.read_exports(exports.locate_exports(write_tables(tmp_path / "exports", tables)))
    daily = frames.daily.set_index(["ts_code", "trade_date"])
    raw = tables["daily"].assign(trade_date=pd.to_datetime(tables["daily"]["trade_date"])).set_index(["ts_code", "trade_date"])
    basic = tables["daily_basic"].assign(trade_date=pd.to_datetime(tables["daily_basic"]["trade_date"])).set_index(["ts_code", "trade_date"])
    assert np.array_equal(daily["volume"].to_numpy(), raw.loc[daily.index, "vol"].to_numpy() * 100)
    assert np.array_equal(daily["amount"].to_numpy(), raw.loc[daily.index, "amount"].to_numpy() * 1000)
    assert np.array_equal(daily["float_shares"].to_numpy(), basic.loc[daily.index, "float_share"].to_numpy() * 10_000)
    pingan = daily.loc["000001.SZ"]
    assert set(pingan.loc[:"2024-02-16", "industry"]) == {"Computers"}
    assert set(pingan.loc["2024-02-19":, "industry"]) == {"Media"}
    assert not pingan.loc[:"2024-02-02", "is_st"].any() and pingan.loc["2024-02-05":, "is_st"].all()
    pufa = daily.loc["600000.SH", "adj_factor"]
    assert pufa.loc[:"2024-01-16"].eq(1.0).all() and pufa.loc["2024-01-17":].eq(1.05).all()
    assert "2024-01-10" not in daily.loc["300001.SZ"].index.strftime("%Y-%m-%d")  # suspended: no bar
    assert frames.stocks.set_index("ts_code").loc["600001.SH", "delist_date"] == pd.Timestamp("2024-02-15")
    assert frames.stocks.set_index("ts_code").loc["000001.SZ", "industry"] == "Media"  # not stock_basic's 全国地产


def test_the_month_end_stock_table_has_the_industry_of_its_month(tmp_path, tables):
    cache = _load(tmp_path, write_tables(tmp_path / "exports", tables))
    industry = {m: read_month(cache, m).stocks.set_index("ts_code").loc["000001.SZ", "industry"] for m in ("2024-01", "2024-02")}
    assert industry == {"2024-01": "Computers", "2024-02": "Media"}


def test_a_directory_of_exports_is_recognised_and_canonical_is_not(tmp_path, market, tables):
    daily, stocks, _ = market
    assert exports.locate_exports(write_canonical(tmp_path / "canonical", daily, stocks)) is None
    found = exports.locate_exports(write_tables(tmp_path / "exports", tables))
    assert sorted(found) == sorted(exports.TABLES)


def _mutate_row(tables, table, row, column, value):
    tables[table] = tables[table].copy()
    tables[table].loc[row, column] = value
    return tables


@pytest.mark.parametrize(
    "mutate, file, column, row, fragment",
    [
        (lambda t: _mutate_row(t, "daily", 7, "vol", -3.0), "daily.csv", "vol", 7, "negative"),
        (lambda t: _mutate_row(t, "daily", 9, "high", 1.0), "daily.csv", "high", 9, "below max(open, close)"),
        (lambda t: _mutate_row(t, "adj_factor", 4, "adj_factor", 0.0), "adj_factor.csv", "adj_factor", 4, "not positive"),
        # The small market's pre_close is never the previous close: a missing factor there cannot be carried.
        (lambda t: {**t, "adj_factor": t["adj_factor"].drop(index=5)}, "adj_factor.csv", "adj_factor", 5,
         "a corporate action happened; add the row (Tushare adj_factor, ts_code=300001.SZ, trade_date=20240103)"),
        (lambda t: _mutate_row(t, "index_member_all", 2, "l1_name", "元器件"), "index_member_all.csv", "l1_name", 2, "unknown industry"),
        (lambda t: _mutate_row(t, "namechange", 1, "start_date", "2024-13-01"), "namechange.csv", "start_date", 1, "is not a date"),
        # A code that is not an A-share code is dropped elsewhere, but a bar's stays fatal.
        (lambda t: _mutate_row(t, "daily", 3, "ts_code", "T00018.SH"), "daily.csv", "ts_code", 3, "is not an A-share code"),
        # Two different memberships from one day are not a repeat: which one holds is unknown.
        (lambda t: {**t, "index_member_all": pd.concat([t["index_member_all"], t["index_member_all"].iloc[[2]].assign(
            l1_name="传媒")], ignore_index=True)}, "index_member_all.csv", "in_date", 5, "has two memberships from"),
    ],
)
def test_bad_exports_name_file_column_and_row_and_write_nothing(tmp_path, tables, mutate, file, column, row, fragment):
    directory = write_tables(tmp_path / "exports", mutate(tables))
    with pytest.raises(InputValidationError) as caught:
        _load(tmp_path, directory)
    error = caught.value
    assert (error.file, error.column, error.row) == (file, column, row), str(error)
    assert fragment in str(error)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("manifest.json"))


def test_canonical_volume_beside_stock_basic_is_refused_with_the_unit(tmp_path, tables):
    tables["daily"] = tables["daily"].rename(columns={"vol": "volume"})
    with pytest.raises(InputValidationError) as caught:
        _load(tmp_path, write_tables(tmp_path / "exports", tables))
    assert caught.value.column == "vol" and "lots of 100 shares" in str(caught.value)


def test_a_later_reassignment_or_st_leaves_earlier_months_as_they_were(tmp_path, tables):
    before = _load(tmp_path / "a", write_tables(tmp_path / "before", tables))
    members = tables["index_member_all"].copy()
    members.loc[members["ts_code"] == "600000.SH", ["out_date", "is_new"]] = ["20240310", "N"]
    moved = members[members["ts_code"] == "600000.SH"].assign(l1_name="传媒", l1_code="801760.SI", in_date="20240311",
                                                              out_date=None, is_new="Y")
    names = tables["namechange"]
    st = names[names["ts_code"] == "600000.SH"].assign(name="*ST浦发", start_date="20240312", end_date=None)
    changed = {**tables, "index_member_all": pd.concat([members, moved]), "namechange": pd.concat([names, st])}
    after = _load(tmp_path / "b", write_tables(tmp_path / "after", changed))
    for month in ("2024-01", "2024-02"):
        pd.testing.assert_frame_equal(read_month(before, month).daily, read_month(after, month).daily)
        pd.testing.assert_frame_equal(read_month(before, month).stocks, read_month(after, month).stocks)
    march = read_month(after, "2024-03")
    pufa = march.daily[march.daily["ts_code"] == "600000.SH"].set_index("trade_date")
    assert pufa.loc["2024-03-11", "industry"] == "Media" and pufa.loc["2024-03-08", "industry"] == "Banks"
    assert pufa.loc["2024-03-12":, "is_st"].all() and not pufa.loc[:"2024-03-11", "is_st"].any()
    assert march.stocks.set_index("ts_code").loc["600000.SH", "industry"] == "Media"


def test_a_reassignment_changes_the_month_states_from_its_month_on(market):
    from factor_pipeline.market.input_files import validate_frames
    from factor_pipeline.market.store import month_states

    daily, stocks, _ = market
    static = daily.assign(industry=daily["ts_code"].map(stocks.set_index("ts_code")["industry"]))
    moved, unmoved = month_states(validate_frames(daily, stocks)), month_states(validate_frames(static, stocks))
    without_column = month_states(validate_frames(daily.drop(columns=["industry"]), stocks))
    assert unmoved == without_column  # the static industry on every bar: the states canonical files always had
    assert moved["2024-02"] != unmoved["2024-02"] and moved["2024-03"] != unmoved["2024-03"]
    # The move on 2024-02-19 is not known in January: January's state is that of the market before it, in
    # which the stock was a Computers stock all along (a later membership must not reach back).
    before = static.assign(industry=static["industry"].where(static["ts_code"] != "000001.SZ", "Computers"))
    stocks_before = stocks.assign(industry=stocks["industry"].where(stocks["ts_code"] != "000001.SZ", "Computers"))
    assert moved["2024-01"] == month_states(validate_frames(before, stocks_before))["2024-01"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_untidy_exports_read_as_the_market_set_right_with_every_irregularity_once(tmp_path, fmt):
    daily, stocks, tables = untidy_market()
    cache = _load(tmp_path, write_tables(tmp_path / "exports", tables, fmt))
    canonical = _load(tmp_path, write_canonical(tmp_path / "canonical", daily, stocks))
    found = []
    for month in ("2024-01", "2024-02", "2024-03"):
        got, want = read_month(cache, month), read_month(canonical, month)
        pd.testing.assert_frame_equal(got.daily, want.daily, check_exact=True)
        pd.testing.assert_frame_equal(got.stocks, want.stocks, check_exact=True)
        assert want.issues is None and set(got.issues["month"].dropna()) <= {month}
        found.append(got.issues)
    found = pd.concat(found).drop_duplicates()  # a snapshot's issues (month None) come with every month
    assert sorted((s.split(".")[0], k, c) for s, k, c in found[["source", "kind", "ts_code"]].itertuples(index=False)) == \
        planted_issues(TWICE, ADJ_GAP[0], UNCLASSIFIED_CODES)
    assert found.loc[found["kind"] == "adj_factor_carried", "month"].tolist() == ["2024-02"]
    assert found.loc[found["kind"] != "adj_factor_carried", "month"].isna().all()
    february = read_month(cache, "2024-02")
    carried = february.daily.set_index(["ts_code", "trade_date"]).loc[(ADJ_GAP[0], pd.Timestamp(ADJ_GAP[1])), "adj_factor"]
    assert carried == 1.0
    listed = february.stocks.set_index("ts_code")["industry"]
    assert listed["920002.BJ"] == listed["301999.SZ"] == "Unclassified" and listed["689009.SH"] == "Electronics"
    from factor_pipeline.market.store import month_summary

    summary = month_summary(february)
    assert summary["unclassified_stocks"] == 2
    assert summary["data_issues_by_kind"] == {"adj_factor_carried": 1, "duplicate_row": 1, "malformed_code": 1,
                                              "membership_not_listed": 1, "unclassified": 2}

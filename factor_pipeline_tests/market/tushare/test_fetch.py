"""Fetching Tushare month by month: stored as answered with provenance, only what is missing, never half-written."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from factor_pipeline import storage
from factor_pipeline.config import profile_config
from factor_pipeline.market import calendar_source
from factor_pipeline.market.store import load_source, read_month
from factor_pipeline.market.tushare import fetch
from factor_pipeline.market.tushare.client import Token, TushareClient, TushareServerError
from factor_pipeline_tests.market.tushare.fake_api import (
    TOKEN,
    ADJ_GAP,
    TWICE,
    UNCLASSIFIED_CODES,
    FakeTushare,
    exports_from_canonical,
    small_market,
    planted_issues,
    untidy_market,
    write_canonical,
    write_tables,
)

MONTHS = ("2024-01", "2024-02", "2024-03")
END = pd.Timestamp("2024-03-31")


@pytest.fixture(scope="module")
def market():
    return small_market()


@pytest.fixture(scope="module")
def tables(market):
    return exports_from_canonical(*market)


@pytest.fixture
def api(tables):
    with FakeTushare(tables) as server:
        yield server


def client(api, retries=1):
    return TushareClient(Token(TOKEN), url=api.url, retries=retries, sleep=lambda s: None)


def fetch_all(api, raw, months=MONTHS, through=END):
    return fetch.fetch_months(client(api), raw, list(months), through)


def day_requests(api, name):
    return [p["trade_date"] for n, p in api.requests if n == name]


def test_each_month_is_stored_as_answered_with_provenance(tmp_path, api, tables):
    raw = tmp_path / "tushare"
    fetch_all(api, raw)
    stored = storage.read_parquet(raw / "2024-02" / "daily.parquet")
    expected = tables["daily"][tables["daily"]["trade_date"].str.startswith("202402")].reset_index(drop=True)
    pd.testing.assert_frame_equal(stored[list(expected.columns)], expected, check_dtype=False)
    provenance = storage.read_provenance(raw / "2024-02" / "daily.parquet")
    assert provenance["endpoint"] == "daily" and provenance["rows"] == len(expected)
    assert provenance["dates"] == sorted(expected["trade_date"].unique())
    assert {tuple(r["params"]) for r in provenance["requests"]} == {("trade_date",)}
    assert all(r["calls"] == 1 for r in provenance["requests"])
    assert all(r["fetched_at"] and r["rows"] > 0 for r in provenance["requests"])
    basic = storage.read_provenance(raw / "snapshots" / "stock_basic.parquet")
    assert [r["params"]["list_status"] for r in basic["requests"]] == ["L", "D", "P"]
    assert storage.read_parquet(raw / "snapshots" / "stock_basic.parquet")["list_status"].tolist().count("D") == 1
    # One request per trade date and day endpoint, plus the calendar and the snapshots.
    sessions = tables["trade_cal"].query("is_open == 1 and cal_date.str.startswith('202402')", engine="python")
    per_month = [r for r in api.requests if r[0] == "daily" and r[1]["trade_date"].startswith("202402")]
    assert len(per_month) == len(sessions)


def test_a_rerun_fetches_nothing_and_a_new_month_only_that_month(tmp_path, api):
    raw = tmp_path / "tushare"
    fetch_all(api, raw, MONTHS[:2])
    before = len(api.requests)
    assert [s["requests"] for s in fetch_all(api, raw, MONTHS[:2])] == [0, 0]
    assert len(api.requests) == before
    fetch_all(api, raw, MONTHS)
    new = api.requests[before:]
    assert {p["trade_date"][:6] for n, p in new if "trade_date" in p} == {"202403"}
    # March's sessions came with February (each fetch stores the next month's calendar); April's has none yet.
    assert [p["start_date"] for n, p in new if n == "trade_cal"] == ["20240401"]
    assert (raw / "2024-03" / "trade_cal.parquet").is_file() and not (raw / "2024-04").exists()


def test_a_day_not_yet_published_is_asked_again(tmp_path, api, caplog):
    raw = tmp_path / "tushare"
    api.unpublished.add("20240329")
    with caplog.at_level(logging.INFO, logger="factor_pipeline.tushare"):
        fetch_all(api, raw, MONTHS[2:])
    assert "20240329" not in storage.read_provenance(raw / "2024-03" / "daily.parquet")["dates"]
    assert any("no rows for 20240329 yet" in r.message for r in caplog.records)
    api.unpublished.clear()
    before = len(api.requests)
    summary = fetch_all(api, raw, MONTHS[2:])[0]
    asked = [(n, p.get("trade_date")) for n, p in api.requests[before:]]
    assert ("daily", "20240329") in asked and ("adj_factor", "20240329") in asked
    assert {d for _, d in asked if d} == {"20240329"}
    assert summary["new_dates"]["daily"] == ["20240329"]
    # The snapshots are taken again, as of the new day.
    assert storage.read_provenance(raw / "snapshots" / "namechange.parquet")["through"] == "20240329"


def test_only_days_up_to_through_are_fetched(tmp_path, api):
    raw = tmp_path / "tushare"
    fetch_all(api, raw, MONTHS[:1], through=pd.Timestamp("2024-01-10"))
    assert day_requests(api, "daily") == ["20240102", "20240103", "20240104", "20240105", "20240108", "20240109", "20240110"]
    assert fetch_all(api, raw, ("2024-04",), through=pd.Timestamp("2024-01-10"))[0]["requests"] == 0


@pytest.mark.parametrize("drop_from", [3, 40])
def test_a_fetch_killed_midway_leaves_whole_files_and_the_rerun_completes(tmp_path, api, tables, drop_from):
    raw = tmp_path / "tushare"
    api.drop_from = drop_from
    with pytest.raises(TushareServerError, match="no answer"):
        fetch_all(api, raw)
    kept = {p: storage.read_provenance(p) for p in raw.rglob("*.parquet")}
    assert not [p for p in raw.rglob("*") if p.name.startswith(".")]  # no temporaries left
    for path, provenance in kept.items():  # each stored file is whole: as many rows as its provenance says
        assert len(storage.read_parquet(path)) == provenance.get("rows", len(storage.read_parquet(path)))
    stored_days = {(p.parent.name, p.stem): set(v.get("dates", [])) for p, v in kept.items()}
    api.drop_from = None
    before = len(api.requests)
    fetch_all(api, raw)
    for name, params in api.requests[before:]:
        if "trade_date" in params:
            assert params["trade_date"] not in stored_days.get((params["trade_date"][:4] + "-" + params["trade_date"][4:6], name), set())
    with FakeTushare(tables) as fresh:
        fetch_all(fresh, tmp_path / "once")
    for path in (tmp_path / "once").rglob("*.parquet"):
        pd.testing.assert_frame_equal(storage.read_parquet(raw / path.relative_to(tmp_path / "once")), storage.read_parquet(path))


def test_canonical_files_exports_and_the_api_give_the_same_months(tmp_path, api, market, tables):
    daily, stocks, _ = market
    cfg = profile_config("smoke")
    raw = tmp_path / "home" / "tushare"
    fetch_all(api, raw)
    caches = [
        load_source(str(write_canonical(tmp_path / "canonical", daily, stocks)), cfg, tmp_path / "c1"),
        load_source(str(write_tables(tmp_path / "exports", tables, "parquet")), cfg, tmp_path / "c2"),
        load_source("tushare", cfg, tmp_path / "c3", calendar_source.resolve("tushare", str(raw / fetch.CALENDAR_FILE)), tushare_dir=raw),
    ]
    for month in MONTHS:
        first, *others = [read_month(cache, month) for cache in caches]
        for other in others:
            pd.testing.assert_frame_equal(first.daily, other.daily, check_exact=True)
            pd.testing.assert_frame_equal(first.stocks, other.stocks, check_exact=True)
    assert TOKEN.encode() not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert all(TOKEN.encode() in body for body in api.bodies)  # it did travel, in the request body only


def test_snapshots_are_taken_once_for_many_months(tmp_path, api):
    fetch_all(api, tmp_path / "tushare")
    asked = [n for n, _ in api.requests]
    assert asked.count("stock_basic") == 3 and asked.count("namechange") == 1
    assert asked.count("index_member_all") == len(fetch.SNAPSHOTS["index_member_all"]) == 62
    assert not any((tmp_path / "tushare" / m / "stock_basic.parquet").exists() for m in MONTHS)


def test_memberships_asked_per_level1_code_survive_an_answer_order_that_changes(tmp_path, api, tables):
    api.shuffled.add("index_member_all")
    fetch_all(api, tmp_path / "tushare")
    asked = [p for n, p in api.requests if n == "index_member_all"]
    assert all(set(p) == {"l1_code", "is_new", "limit", "offset"} and p["offset"] == 0 for p in asked)  # one page each
    stored = storage.read_parquet(tmp_path / "tushare" / "snapshots" / "index_member_all.parquet")
    key = ["ts_code", "l1_code", "in_date"]
    expected = tables["index_member_all"]
    assert sorted(map(tuple, stored[key].to_numpy())) == sorted(map(tuple, expected[key].to_numpy()))


def test_a_listed_stock_without_membership_is_named_when_fetched(tmp_path, tables, caplog):
    members = tables["index_member_all"]
    with FakeTushare({**tables, "index_member_all": members[members["ts_code"] != "300001.SZ"]}) as server:
        with caplog.at_level(logging.WARNING, logger="factor_pipeline.tushare"):
            fetch_all(server, tmp_path / "tushare")
    assert any("1 listed stocks have no Shenwan level-1 membership: 300001.SZ" in r.message for r in caplog.records)


def test_the_untidy_service_backfills_with_every_irregularity_listed_once(tmp_path):
    daily, stocks, tables = untidy_market()
    raw = tmp_path / "tushare"
    with FakeTushare(tables) as server:
        server.shuffled.add("index_member_all")
        server.faults = {5: (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
                         40: (200, b"<!DOCTYPE html><html><body>\xe7\xb3\xbb\xe7\xbb\x9f\xe7\xbb\xb4\xe6\x8a\xa4</body></html>")}
        fetch.fetch_months(client(server, retries=3), raw, list(MONTHS), END)
        assert not server.faults  # both were answered, mid-backfill
        # Each request was answered with data exactly once: none lost, none asked again after its success.
        keys = [(n, tuple(sorted(p.items()))) for n, p in server.answered]
        assert len(keys) == len(set(keys)) == len(server.requests) - 2
        assert set(keys) == {(n, tuple(sorted(p.items()))) for n, p in server.requests}
    cfg = profile_config("smoke")
    cache = load_source("tushare", cfg, tmp_path / "c", calendar_source.resolve("tushare", str(raw / fetch.CALENDAR_FILE)),
                        tushare_dir=raw)
    canonical = load_source(str(write_canonical(tmp_path / "canonical", daily, stocks)), cfg, tmp_path / "c2")
    issues = []
    for month in MONTHS:
        got, want = read_month(cache, month), read_month(canonical, month)
        pd.testing.assert_frame_equal(got.daily, want.daily, check_exact=True)
        pd.testing.assert_frame_equal(got.stocks, want.stocks, check_exact=True)
        issues.append(got.issues)
    issues = pd.concat(issues).drop_duplicates()  # a snapshot's issues (month None) come with every month
    issues = [(source.rsplit("/", 1)[-1].split(".")[0], kind, code)
              for source, kind, code in issues[["source", "kind", "ts_code"]].itertuples(index=False)]
    assert sorted(issues) == planted_issues(TWICE, ADJ_GAP[0], UNCLASSIFIED_CODES)

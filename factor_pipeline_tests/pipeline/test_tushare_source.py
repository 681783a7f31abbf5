"""FACTOR_PIPELINE_SOURCE=tushare end to end on the smoke profile, against a local Tushare Pro server: a CLI
backfill fetches and builds two months, the monthly schedule's run for the next month fetches only what
that month lacks, canonical files and Tushare exports of the same market give bit-identical raw bars and
pRet, the factor's industry is the one each stock had on the date, and the token is nowhere in the home or
the logs."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from factor_pipeline import storage
from factor_pipeline.config import profile_config
from factor_pipeline.market import session_calendar
from factor_pipeline.market.tushare.client import TushareAuthError
from factor_pipeline.pipeline import tushare_source
from factor_pipeline_tests.conftest import REPO, pipeline_env, run_cli
from factor_pipeline_tests.market.tushare.fake_api import (
    TOKEN,
    FakeTushare,
    exact_units,
    exports_from_canonical,
    planted_issues,
    small_market,
    untidy,
    write_canonical,
    write_tables,
)

MONTHS = ["2024-05", "2024-06"]
NEXT = "2024-07"
FIRST_DAY, LAST_DAY = "2023-01-01", "2024-08-31"
MOVED_ON = pd.Timestamp("2024-06-11")  # between the rebalance dates of May and June
UNTHROTTLED = "6000000"  # the local server has no rate; the throttle is tested on its own

SCHEDULED_RUN = """
import datetime as dt, sys
from zoneinfo import ZoneInfo
import dagster as dg
from factor_pipeline.pipeline.definitions import defs
from factor_pipeline.pipeline.schedules import monthly_factor_schedule
tick = dt.datetime(2024, 8, 1, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
request = monthly_factor_schedule(dg.build_schedule_context(scheduled_execution_time=tick))
with dg.DagsterInstance.get() as instance:
    result = defs.get_job_def("monthly_factor_job").execute_in_process(
        partition_key=request.partition_key, instance=instance, tags=request.tags)
print("scheduled", request.partition_key, result.success)
sys.exit(0 if result.success else 1)
"""


@pytest.fixture(scope="module")
def market():
    """The smoke synthetic market over FIRST_DAY..LAST_DAY in exact Tushare units, one stock moved to another
    industry on MOVED_ON; memberships as index_member_all rows."""
    from factor_pipeline.market.synthetic import generate_market

    cfg = profile_config("smoke")
    generated = generate_market(cfg.market, calendar=session_calendar.synthetic_calendar())
    daily = generated.daily[(generated.daily["trade_date"] >= FIRST_DAY) & (generated.daily["trade_date"] <= LAST_DAY)]
    daily = exact_units(daily[daily["volume"] > 0]).reset_index(drop=True)
    stocks = generated.stocks[generated.stocks["ts_code"].isin(daily["ts_code"])].reset_index(drop=True)
    static = stocks.set_index("ts_code")["industry"]
    counts = daily.groupby("ts_code").size()
    never_st = daily.groupby("ts_code")["is_st"].sum() == 0
    moved = counts[(counts == counts.max()) & never_st].index[0]  # trades every day: in every month's universe
    to = next(i for i in ("Media", "Banks") if i != static[moved])
    daily["industry"] = daily["ts_code"].map(static)
    daily.loc[(daily["ts_code"] == moved) & (daily["trade_date"] >= MOVED_ON), "industry"] = to
    stocks.loc[stocks["ts_code"] == moved, "industry"] = to
    members = [(c, static[c], pd.Timestamp("2014-02-21"), None) for c in stocks["ts_code"] if c != moved]
    members += [(moved, static[moved], pd.Timestamp("2014-02-21"), MOVED_ON - pd.Timedelta(days=1)), (moved, to, MOVED_ON, None)]
    return daily, stocks, members, moved, static[moved], to


def _frames(home, dataset, months):
    return {m: storage.read_parquet(home / dataset / f"{m}.parquet") for m in months}


def _everything_in(home) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


@pytest.mark.slow  # drives four Dagster backfills and a scheduled run
def test_tushare_backfill_then_the_schedule_fetches_only_the_next_month(tmp_path, market):
    daily, stocks, members, moved, before, after = market
    tables = exports_from_canonical(daily, stocks, members)
    tables["daily"] = tables["daily"].astype({"vol": "float64", "amount": "float64"})
    homes = {name: tmp_path / name for name in ("tushare", "canonical", "exports")}
    sources = {
        "canonical": str(write_canonical(tmp_path / "in_canonical", daily, stocks)),
        "exports": str(write_tables(tmp_path / "in_exports", tables, "parquet")),
    }
    logs = []
    july = [d.strftime("%Y%m%d") for d in session_calendar.sessions_between(f"{NEXT}-01", f"{NEXT}-31")]
    late_july = {d for d in july if d > "20240715"}
    with FakeTushare(tables) as api:
        api.caps = {"daily": 100, "index_member_all": 60}  # pages, as the real caps would on a whole market
        api.unpublished = set(late_july)  # the backfill runs mid-July: June's evaluation reads July so far
        env = {**pipeline_env(homes["tushare"]), "FACTOR_PIPELINE_SOURCE": "tushare", "TUSHARE_TOKEN": TOKEN,
               "FACTOR_PIPELINE_TUSHARE_URL": api.url, "TUSHARE_CALLS_PER_MINUTE": UNTHROTTLED}
        result = run_cli(["backfill", "--from", MONTHS[0], "--to", MONTHS[-1], "--executor", "in_process"], env)
        logs += [result.stdout, result.stderr]
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
        fetched = {p["trade_date"][:6] for n, p in api.requests if "trade_date" in p}
        # The training window and its feature history, and July so far (the bars June's evaluation reads).
        assert fetched == {m.replace("-", "") for m in session_calendar.months_between("2023-01", NEXT)}
        assert any(p.get("offset", 0) > 0 for _, p in api.requests)  # paginated

        api.unpublished.clear()  # August 1st: July is complete
        before_schedule = len(api.requests)
        scheduled = subprocess.run([sys.executable, "-c", SCHEDULED_RUN], cwd=REPO, env=env, capture_output=True,
                                   text=True, timeout=900)
        logs += [scheduled.stdout, scheduled.stderr]
        assert scheduled.returncode == 0, scheduled.stdout[-3000:] + scheduled.stderr[-6000:]
        assert f"scheduled {NEXT} True" in scheduled.stdout
        new = api.requests[before_schedule:]
        by_endpoint = {n: sorted({p["trade_date"] for m, p in new if m == n}) for n in ("daily", "adj_factor", "daily_basic")}
        assert by_endpoint == {n: sorted(late_july) for n in by_endpoint}  # only what July lacked
        assert {n for n, _ in new} == {"daily", "adj_factor", "daily_basic", "stock_basic", "index_member_all", "namechange"}

    # The same market as canonical files and as exports: June alone (its model trains on the same window).
    for name in ("canonical", "exports"):
        result = run_cli(["backfill", "--from", MONTHS[-1], "--to", MONTHS[-1], "--executor", "in_process"],
                         {**pipeline_env(homes[name]), "FACTOR_PIPELINE_SOURCE": sources[name]})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]

    # Bit-identical raw bars, stock tables and pRet from the three ways in.
    built = sorted(p.stem for p in (homes["canonical"] / "raw_bars" / "daily").glob("*.parquet"))
    assert built[0] < "2024-01" and built[-1] == NEXT  # the window, its feature history, and July
    reference = {d: _frames(homes["canonical"], d, built) for d in ("raw_bars/daily", "raw_bars/stocks")}
    reference["factor"] = _frames(homes["canonical"], "factor", MONTHS[-1:])
    for name in ("exports", "tushare"):
        for dataset, frames in reference.items():
            other = _frames(homes[name], dataset, list(frames))
            for month, frame in frames.items():
                pd.testing.assert_frame_equal(frame, other[month], check_exact=True, obj=f"{name} {dataset} {month}")
    assert np.isfinite(reference["factor"][MONTHS[-1]]["pret"]).sum() > 50

    # The factor (and so the industry attribution, which groups it by this column) has each month's industry.
    pret = _frames(homes["tushare"], "factor", MONTHS)
    for month, industry in ((MONTHS[0], before), (MONTHS[1], after)):
        row = pret[month][pret[month]["ts_code"] == moved]
        assert list(row["industry"]) == [industry], (month, row)

    # The token: nowhere in the home (Parquet, provenance, DuckDB, the Dagster event log), nor in any log.
    assert TOKEN.encode() not in _everything_in(homes["tushare"])
    assert all(TOKEN not in text for text in logs)
    provenance = json.dumps(storage.read_provenance(homes["tushare"] / "tushare" / NEXT / "daily.parquet"))
    assert "trade_date" in provenance and TOKEN not in provenance


def _renamed(daily, stocks, members, names: dict[str, str]):
    """The market with some codes renamed (to put a STAR CDR and a 920 Beijing code in it)."""
    rename = lambda codes: codes.replace(names)  # noqa: E731
    daily = daily.assign(ts_code=rename(daily["ts_code"])).sort_values(["trade_date", "ts_code"], kind="stable")
    stocks = stocks.assign(ts_code=rename(stocks["ts_code"])).sort_values("ts_code", kind="stable")
    members = [(names.get(c, c), *rest) for c, *rest in members]
    return daily.reset_index(drop=True), stocks.reset_index(drop=True), members


@pytest.mark.slow  # two Dagster backfills of the untidy market, through the exports and through the server
def test_the_untidy_market_backfills_through_exports_and_the_server_with_every_irregularity_once(tmp_path, market):
    import duckdb

    daily, stocks, members, *_ = market
    star = next(c for c in stocks["ts_code"] if c.startswith("688"))
    bse = next(c for c in stocks["ts_code"] if c.endswith(".BJ"))
    daily, stocks, members = _renamed(daily, stocks, members, {star: "689009.SH", bse: "920002.BJ"})
    june = daily[(daily["ts_code"] == "689009.SH") & (daily["trade_date"].dt.strftime("%Y-%m") == MONTHS[-1])]
    flat = june[(june["pre_close"].to_numpy() == june["close"].shift().to_numpy())]  # no corporate action since the bar before
    gap = ("689009.SH", flat["trade_date"].iloc[0].strftime("%Y%m%d"))
    counts = daily.groupby("ts_code").size()
    unclassified = ("920002.BJ", next(c for c in counts[counts == counts.max()].index if c.startswith("6") and c != "689009.SH"))
    twice = next(c for c, *_ in members if c not in unclassified)
    tables = untidy(exports_from_canonical(daily, stocks, members), twice, gap, unclassified)
    tables["daily"] = tables["daily"].astype({"vol": "float64", "amount": "float64"})
    expected = planted_issues(twice, gap[0], unclassified)
    homes = {name: tmp_path / name for name in ("exports", "tushare")}
    backfill = ["backfill", "--from", MONTHS[-1], "--to", MONTHS[-1], "--executor", "in_process"]
    result = run_cli(backfill, {**pipeline_env(homes["exports"]),
                                "FACTOR_PIPELINE_SOURCE": str(write_tables(tmp_path / "in_exports", tables, "parquet"))})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    with FakeTushare(tables) as api:
        api.shuffled.add("index_member_all")
        api.faults = {7: (502, b"<html><body>502 Bad Gateway</body></html>"), 300: (200, b"<!DOCTYPE html><html>busy</html>")}
        env = {**pipeline_env(homes["tushare"]), "FACTOR_PIPELINE_SOURCE": "tushare", "TUSHARE_TOKEN": TOKEN,
               "FACTOR_PIPELINE_TUSHARE_URL": api.url, "TUSHARE_CALLS_PER_MINUTE": UNTHROTTLED}
        # From May, as the tidy backfill: a tushare source's first month is the first one fetched.
        result = run_cli(["backfill", "--from", MONTHS[0], *backfill[3:]], env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
        assert not api.faults and "retry 1 of 6" in result.stdout + result.stderr
    for name, home in homes.items():
        with duckdb.connect(str(home / "factor.duckdb"), read_only=True) as con:
            rows = con.execute("SELECT source, kind, ts_code FROM raw.data_issues").fetchall()
        found = sorted((source.rsplit("/", 1)[-1].split(".")[0], kind, code) for source, kind, code in rows)
        assert found == expected, name
        factor = storage.read_parquet(home / "factor" / f"{MONTHS[-1]}.parquet").set_index("ts_code")
        assert np.isfinite(factor["pret"]).sum() > 50
        held = factor.loc[factor.index.intersection(list(unclassified))]
        assert len(held) and (held["industry"] == "Unclassified").all() and np.isfinite(held["pret"]).all()
        assert "## Data quality" in (home / "reports" / MONTHS[-1] / "report.md").read_text()
    assert TOKEN.encode() not in _everything_in(homes["tushare"])


@pytest.fixture
def small_api(monkeypatch):
    with FakeTushare(exports_from_canonical(*small_market())) as api:
        monkeypatch.setenv("TUSHARE_TOKEN", TOKEN)
        monkeypatch.setenv("FACTOR_PIPELINE_TUSHARE_URL", api.url)
        monkeypatch.setenv("TUSHARE_CALLS_PER_MINUTE", UNTHROTTLED)
        yield api


def test_the_current_month_is_fetched_session_by_session(tmp_path, small_api):
    """The partial-month sensor's refresh: each evening, only the sessions published since the last one."""
    tushare_source.fetch_months(tmp_path, ["2024-02"], today=dt.date(2024, 2, 7))
    first = {p["trade_date"] for n, p in small_api.requests if n == "daily"}
    assert first == {"20240201", "20240202", "20240205", "20240206", "20240207"}
    before = len(small_api.requests)
    tushare_source.fetch_months(tmp_path, ["2024-02"], today=dt.date(2024, 2, 20))
    later = {p["trade_date"] for n, p in small_api.requests[before:] if n == "daily"}
    assert later == {"20240208", "20240219", "20240220"}  # the Spring Festival closed 02-09..02-16
    assert tushare_source.calendar_file(tmp_path) is not None


def test_without_a_token_the_fetch_says_which_variable(tmp_path, small_api, monkeypatch):
    monkeypatch.delenv("TUSHARE_TOKEN")
    with pytest.raises(TushareAuthError, match="TUSHARE_TOKEN"):
        tushare_source.fetch_months(tmp_path, ["2024-02"])
    assert small_api.requests == []


def test_a_backfill_fetches_the_history_its_first_model_and_samples_read():
    months = tushare_source.backfill_months("2024-05", "2024-06", profile_config("smoke"))
    assert months[0] == "2023-01" and months[-1] == "2024-06" and len(months) == 18


def test_the_throttle_follows_the_accounts_points(monkeypatch):
    monkeypatch.delenv("TUSHARE_CALLS_PER_MINUTE", raising=False)
    monkeypatch.delenv("TUSHARE_POINTS", raising=False)
    assert tushare_source.rate_per_minute() == 200  # the lowest tier the pipeline's endpoints allow
    monkeypatch.setenv("TUSHARE_POINTS", "5,000")
    assert tushare_source.rate_per_minute() == 500
    monkeypatch.setenv("TUSHARE_CALLS_PER_MINUTE", "1000")
    assert tushare_source.rate_per_minute() == 1000
    monkeypatch.setenv("TUSHARE_CALLS_PER_MINUTE", "fast")
    with pytest.raises(ValueError, match="TUSHARE_CALLS_PER_MINUTE='fast' is not a whole number"):
        tushare_source.rate_per_minute()


def test_a_dry_run_prints_a_ten_year_backfills_calls_and_time_per_tier_before_fetching(tmp_path, small_api, capsys, monkeypatch):
    import argparse

    from factor_pipeline.pipeline.backfill_command import dry_run
    from factor_pipeline.pipeline.resources import PipelineResource

    monkeypatch.setenv("TUSHARE_POINTS", "2000")
    monkeypatch.delenv("TUSHARE_CALLS_PER_MINUTE")
    pipeline = PipelineResource(home=str(tmp_path), source="tushare", profile="smoke")
    assert dry_run(argparse.Namespace(first="2016-01", last="2025-12"), pipeline) == 0
    out = capsys.readouterr().out
    print(out)
    calls = int(out.split("about ")[1].split(" calls")[0].replace(",", ""))
    assert 7000 < calls < 9500
    assert f"at 2,000 points (200 calls a minute): at least {calls / 200:.0f} minutes" in out
    assert f"at 5,000 points (500 calls a minute): at least {calls / 500:.0f} minutes" in out
    assert small_api.requests == [] and not any(tmp_path.iterdir())  # nothing fetched, nothing written

"""The report a quant reads, on the smoke backfill: the new views answer from a plain DuckDB session, the report
shows every section for pRet and its baseline, and a real browser (headless Chromium) loads every figure and
every table of the HTML page."""

import json
import shutil
import subprocess

import duckdb
import pandas as pd
import pytest

from factor_pipeline.evaluation import decay

pytestmark = pytest.mark.slow

MONTHS = ["2024-05", "2024-06", "2024-07"]
NEW_VIEWS = ("eval.group_returns", "eval.long_short", "eval.ic_decay", "eval.style_exposure", "eval.factor_profile",
             "eval.index_pools")


def _query(home, sql):
    with duckdb.connect(str(home / "factor.duckdb"), read_only=True) as con:
        return con.execute(sql).df()


def test_new_views_answer_from_a_plain_duckdb_session(smoke_backfill):
    home, _, _ = smoke_backfill
    for view in NEW_VIEWS:
        frame = _query(home, f"select * from {view}")
        assert len(frame) > 0, view
        assert set(frame["factor"]) == {"pret", "reversal_20d"}, view
    groups = _query(home, "select * from eval.group_returns order by month, factor, \"group\"")
    assert set(groups["group"]) == set(range(1, 11))
    assert {"month", "factor", "group", "n", "mean_return", "turnover"} <= set(groups.columns)
    top = groups[(groups["factor"] == "pret") & (groups["group"] == 10)].set_index("month")["mean_return"]
    portfolio = _query(home, "select month, long_return from eval.portfolio").set_index("month")["long_return"]
    pd.testing.assert_series_equal(top.reindex(portfolio.index), portfolio, check_names=False, atol=1e-15)
    spread = _query(home, "select * from eval.long_short where factor = 'pret' order by month")
    bottom = groups[(groups["factor"] == "pret") & (groups["group"] == 1)].set_index("month")["mean_return"]
    assert spread["spread"].to_numpy() == pytest.approx((top - bottom).reindex(spread["month"]).to_numpy())
    decay_rows = _query(home, "select * from eval.ic_decay")
    assert set(decay_rows["horizon_sessions"].dropna()) == set(decay.HORIZONS)
    assert set(decay_rows["lag_months"]) == {0, *decay.LAGS}
    styles = _query(home, "select distinct style from eval.style_exposure")
    assert set(styles["style"]) == {"size", "beta", "volatility_20d", "turnover_20d", "reversal_20d", "momentum_12_1"}
    pools = _query(home, "select index_code, avg(n_stocks) as n from eval.index_pools group by 1 order by 1")
    assert len(pools) == 3 and (pools["n"] > 0).all()


def test_the_report_shows_every_section(smoke_backfill):
    home, _, _ = smoke_backfill
    report = (home / "reports" / MONTHS[-1] / "report.md").read_text()
    for title in ("## Every group", "## Long-short spread (diagnostic)", "## IC statistics", "## IC decay",
                  "## Style exposure", "## Costs", "## Index benchmarks and pools", "## Holdings: the top group of 2024-07"):
        assert title in report
    assert "t-statistic" in report and "60 sessions" in report and "month m+1" in report and "CSI 1000" in report
    assert "stamp duty on sells" in report and "per unit of two-sided turnover" not in report
    holdings = pd.read_parquet(home / "eval" / "holdings" / "2024-07.parquet")
    codes = holdings.loc[holdings["factor"] == "pret", "ts_code"]
    assert len(codes) and all(code in report for code in codes)
    summary = json.loads((home / "reports" / MONTHS[-1] / "summary.json").read_text())["summary"]
    assert summary["costs"]["commission"] == pytest.approx(0.00025)


def test_reporting_twice_gives_the_same_tables_and_report(smoke_backfill, tmp_path):
    home, env, _ = smoke_backfill
    import os

    from factor_pipeline.evaluation import store
    from factor_pipeline.pipeline.resources import PipelineResource

    before = {p.name: p.read_bytes() for p in (home / "reports" / MONTHS[-1]).iterdir()}
    decay_before = (home / "eval" / "ic_decay" / f"{MONTHS[-1]}.parquet").read_bytes()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        resource = PipelineResource.from_env()
        resource.activate_calendar()
        store.write_report(resource.layout, MONTHS[-1], resource.config)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert (home / "eval" / "ic_decay" / f"{MONTHS[-1]}.parquet").read_bytes() == decay_before
    after = {p.name: p.read_bytes() for p in (home / "reports" / MONTHS[-1]).iterdir()}
    assert after == before


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


CHECK_PAGE = """
(() => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const tables = [...document.querySelectorAll('table')];
  const empty = tables.filter(t => t.tBodies.length === 0 || t.tBodies[0].rows.length === 0).length;
  document.title = JSON.stringify({images: images.length, broken, tables: tables.length, empty,
                                   sections: document.querySelectorAll('h2').length});
})();
"""


def test_a_real_browser_loads_every_figure_and_table(smoke_backfill, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium: .ci/run installs the distribution's package")
    home, _, _ = smoke_backfill
    page = tmp_path / "report.html"
    html = (home / "reports" / MONTHS[-1] / "report.html").read_text()
    page.write_text(html.replace("</body>", f"<script>{CHECK_PAGE}</script></body>"))
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "--virtual-time-budget=5000",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    title = done.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    result = json.loads(title.replace("&quot;", '"'))
    assert result["broken"] == [] and result["empty"] == 0
    figures = ("group_means", "group_value", "ic_histogram", "ic_heatmap", "ic_decay", "style_exposure", "ic", "nav",
               "industry_ic")
    assert result["images"] == len(figures) == html.count("<img ")
    assert result["tables"] == html.count("<table>") >= 12
    assert result["sections"] >= 12


def test_the_headline_tables_are_the_report_assets_metadata_in_the_ui(smoke_backfill):
    import dagster as dg

    home, env, _ = smoke_backfill
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("factor_report"))
    metadata = event.asset_materialization.metadata
    for title in ("Every group", "Long-short spread (diagnostic)", "IC statistics", "IC decay", "Style exposure"):
        assert title in metadata and "|" in metadata[title].value, title
    assert "group_value" in metadata and "ic_heatmap" in metadata

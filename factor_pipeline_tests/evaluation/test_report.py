"""report.py: the seed's table formatting, PNG figures and the Markdown/HTML documents."""

import base64
import re

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.evaluation.report import (
    PNG_MAGIC,
    format_table,
    plot_ic,
    plot_industry_ic,
    plot_curves,
    plot_nav,
    render_html,
    render_markdown,
)

# The seed's headline figures (seed-report-2026-03.txt), as summarize() would return them.
SEED = {
    "first_month": "2019-01",
    "last_month": "2026-01",
    "n_months": 85,
    "n_return_months": 84,
    "ic_mean": 0.1096,
    "rank_ic_mean": 0.1201,
    "icir": 0.87,
    "turnover": 0.82,
    "latest_month": "2026-01",
    "latest_ic": -0.0105,
    "latest_as_of": "2026-02-25",
    "latest_complete": False,
    "one_year_ic": 0.0517,
    "annual_return": 0.3813,
    "annual_volatility": 0.2318,
    "ir": 0.3813 / 0.2318,
    "max_drawdown": 0.2729,
    "annual_excess_return": 0.2232,
    "excess_ir": 1.9,
    "cost_per_turnover": 0.003,
    "net_annual_return": 0.33,
    "oracle_ic_mean": None,
    "efficiency": None,
    "industry_ic_latest": [("Utilities", 0.1257), ("Retail", 0.1196), ("Real Estate", 0.1151),
                           ("Construction", 0.1130), ("Basic Chemicals", 0.1063)],
    "industry_ic_1y": [("Steel", 0.1404), ("Computers", 0.1175), ("Media", 0.1132), ("Retail", 0.1014),
                       ("Food & Beverage", 0.0989)],
    "industry_excess_latest": [("Oil & Petrochemicals", 0.0791), ("Communications", 0.0311),
                               ("Electronics", 0.0306), ("Non-ferrous Metals", 0.0278), ("Computers", 0.0278)],
    "industry_excess_1y": [("Real Estate", 0.0383), ("Retail", 0.0204), ("Automobiles", 0.0193),
                           ("Construction", 0.0150), ("Consumer Services", 0.0149)],
}
BASELINE = {**SEED, "ic_mean": 0.0412, "icir": float("nan"), "annual_return": None}


def _frames(n=30):
    rng = np.random.default_rng(0)
    months = [str(p) for p in pd.period_range("2023-08", periods=n, freq="M")]
    ic = pd.DataFrame({"month": months, "ic": rng.normal(0.05, 0.1, n), "complete": [True] * (n - 1) + [False]})
    long = rng.normal(0.02, 0.06, n)
    bench = rng.normal(0.01, 0.05, n)
    portfolio = pd.DataFrame({"month": months, "long_return": long, "benchmark_return": bench,
                              "excess_return": long - bench, "complete": ic.complete})
    industry = pd.DataFrame([{"month": m, "industry": k, "ic": rng.normal(0.05, 0.1)}
                             for m in months for k in ("Banks", "Steel", "Food & Beverage", "Conglomerates")])
    return ic, portfolio, industry


def test_table_formats_like_the_seed():
    text = format_table(SEED, {"reversal_20d": BASELINE})
    for figure in ("0.1096", "0.87", "0.82X", "-0.0105", "0.0517", "38.13%", "23.18%", "1.64", "27.29%", "22.32%"):
        assert figure in text, figure
    assert "as of 2026-02-25" in text and "GAN_GRU" in text and "reversal_20d" in text
    assert "Oracle" not in text  # no oracle anywhere: the rows are left out
    ic_line = next(line for line in text.splitlines() if line.startswith("IC mean"))
    assert ic_line.split()[-2:] == ["0.1096", "0.0412"]
    icir_line = next(line for line in text.splitlines() if line.startswith("ICIR"))
    assert icir_line.split()[-2:] == ["0.87", "-"]  # undefined figures print as '-'
    assert "1. Utilities  0.1257" in text and "1. Oil & Petrochemicals  7.91%" in text


def test_table_shows_oracle_when_present():
    text = format_table({**SEED, "oracle_ic_mean": 0.2345, "efficiency": 0.467})
    assert "0.2345" in text and "0.47" in text


@pytest.mark.parametrize("plot,which", [(plot_ic, 0), (plot_nav, 1), (plot_industry_ic, 2)])
def test_plots_are_deterministic_pngs(plot, which):
    frame = _frames()[which]
    data = plot(frame)
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert plot(frame) == data  # same data, same bytes
    empty = plot(frame.iloc[0:0])
    assert empty.startswith(PNG_MAGIC)


def test_markdown_has_table_industries_and_figures():
    text = render_markdown(SEED, {"GAN off": BASELINE}, {"ic": "figures/ic.png", "nav": "figures/nav.png"})
    assert "| Metric | GAN_GRU | GAN off |" in text
    assert "![ic](figures/ic.png)" in text and "![nav](figures/nav.png)" in text
    assert "| Steel | 0.1404 |" in text and "| Real Estate | 3.83% |" in text
    assert text.count("## Top 5 industries") == 4
    assert "as of 2026-02-25" in text


def test_html_is_self_contained_with_embedded_pngs():
    ic, portfolio, industry = _frames()
    images = {"ic": plot_ic(ic), "nav": plot_nav(portfolio), "industry_ic": plot_industry_ic(industry)}
    page = render_html(SEED, None, images)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 3
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    assert base64.b64decode(uris[0]) == images["ic"]
    assert "Food &amp; Beverage" in page and "Food & Beverage" not in page  # escaped
    assert "38.13%" in page and "src=\"http" not in page


def test_plot_curves_of_different_lengths():
    data = plot_curves({"generator": [1.0, 0.8, np.nan, 0.7], "discriminator": [0.7, 0.69]}, "GAN losses")
    assert data.startswith(PNG_MAGIC)
    assert plot_curves({"empty": []}, "nothing").startswith(PNG_MAGIC)

"""report/render.py: the Markdown and self-contained HTML documents."""

import base64
import html
import re

from factor_pipeline.evaluation.report.plots import PNG_MAGIC, plot_ic, plot_industry_ic, plot_nav
from factor_pipeline.evaluation.report.render import render_html, render_markdown
from factor_pipeline_tests.evaluation.report.test_plots import eval_frames
from factor_pipeline_tests.evaluation.report.test_tables import BASELINE, SEED


def test_markdown_has_table_industries_and_figures():
    text = render_markdown(SEED, {"GAN off": BASELINE}, {"ic": "figures/ic.png", "nav": "figures/nav.png"})
    assert "| Metric | GAN_GRU | GAN off |" in text
    assert "![ic](figures/ic.png)" in text and "![nav](figures/nav.png)" in text
    assert "| Steel | 0.1404 |" in text and "| Real Estate | 3.83% |" in text
    assert text.count("## Top 5 industries") == 4
    assert "as of 2026-02-25" in text


def test_html_is_self_contained_with_embedded_pngs():
    ic, portfolio, industry = eval_frames()
    images = {"ic": plot_ic(ic), "nav": plot_nav(portfolio), "industry_ic": plot_industry_ic(industry)}
    page = render_html(SEED, None, images)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 3
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    assert base64.b64decode(uris[0]) == images["ic"]
    assert "Food &amp; Beverage" in page and "Food & Beverage" not in page  # escaped
    assert "38.13%" in page and "src=\"http" not in page


def test_every_document_lists_how_the_run_departs_from_the_seed():
    from factor_pipeline.config import departures_from_seed, profile_config
    from factor_pipeline.evaluation.report.tables import DEPARTURES_TITLE, format_table

    lines = departures_from_seed(profile_config("demo"))
    summary = {**SEED, "departures_from_seed": lines}
    markdown, page, table = render_markdown(summary, None, {}), render_html(summary, None, {}), format_table(summary)
    for line in lines:
        assert f"- `{line}`" in markdown and f"  - {line}" in table
        assert html.escape(line) in page
    assert all(DEPARTURES_TITLE in doc for doc in (markdown, table)) and html.escape(DEPARTURES_TITLE) in page
    # A summary written before the list existed renders without the section.
    assert DEPARTURES_TITLE not in render_markdown(SEED, None, {}) and DEPARTURES_TITLE not in format_table(SEED)

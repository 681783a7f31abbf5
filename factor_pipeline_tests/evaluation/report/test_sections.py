"""The report's sections from stored tables, rendered to Markdown and HTML (the fast lane's view of the report)."""

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.config import EvaluationConfig
from factor_pipeline.evaluation import summaries
from factor_pipeline.evaluation.report.render import render_html, render_markdown
from factor_pipeline.evaluation.report.sections import build_sections

MONTHS = ["2023-06", "2023-07", "2023-08", "2023-09"]


def tables():
    rng = np.random.default_rng(0)
    group_rows, ls_rows, decay_rows, style_rows, profile_rows, index_rows = [], [], [], [], [], []
    for factor in ("pret", "reversal_20d"):
        for i, month in enumerate(MONTHS):
            means = np.sort(rng.normal(0.01, 0.02, 5))
            for g in range(1, 6):
                group_rows.append({"month": month, "factor": factor, "group": g, "n": 20, "mean_return": means[g - 1],
                                   "turnover": np.nan if i == 0 else 0.5,
                                   "rebalance_date": pd.Timestamp(month) + pd.offsets.MonthEnd(0),
                                   "complete": i < len(MONTHS) - 1})
            ls_rows.append({"month": month, "factor": factor, "spread": means[-1] - means[0], "complete": i < 3})
            for h in (5, 20):
                decay_rows.append({"month": month, "factor": factor, "horizon_sessions": h, "lag_months": 0,
                                   "ic": rng.normal(0.05, 0.02), "rank_ic": 0.0, "n_stocks": 100})
            decay_rows.append({"month": month, "factor": factor, "horizon_sessions": pd.NA, "lag_months": 1,
                               "ic": 0.01, "rank_ic": 0.0, "n_stocks": 100})
            for s in ("size", "momentum_12_1"):
                style_rows.append({"month": month, "factor": factor, "style": s, "correlation": rng.normal()})
            profile_rows.append({"month": month, "factor": factor, "rank_autocorr": 0.3, "ic": 0.05,
                                 "ic_industry_size_neutral": 0.04, "ic_style_neutral": 0.03})
            index_rows.append({"month": month, "factor": factor, "index_code": "000300.SH", "n_stocks": 6,
                               "index_return": 0.01, "long_excess": 0.02, "ic": 0.1, "rank_ic": 0.1,
                               "pool_long_return": 0.02, "pool_long_excess": 0.01, "complete": i < 3})
    ic = pd.DataFrame({"month": MONTHS, "ic": [0.05, 0.1, -0.02, 0.04], "rank_ic": [0.04, 0.08, 0.0, 0.03],
                       "complete": [True, True, True, False], "oracle_ic": np.nan})
    portfolio = pd.DataFrame({"month": MONTHS, "excess_return": [0.01, -0.01, 0.02, 0.0], "complete": ic["complete"]})
    baselines = pd.DataFrame({"month": MONTHS, "factor": "reversal_20d", "ic": 0.02, "rank_ic": 0.02,
                              "excess_return": 0.0, "complete": ic["complete"]})
    holdings = pd.DataFrame({"month": ["2023-08", "2023-08", "2023-09", "2023-09"], "factor": "pret",
                             "ts_code": ["A", "B", "B", "C"]})
    return {
        "group_returns": pd.DataFrame(group_rows), "long_short": pd.DataFrame(ls_rows), "ic": ic,
        "portfolio": portfolio, "baselines": baselines, "ic_decay": pd.DataFrame(decay_rows),
        "style_exposure": pd.DataFrame(style_rows), "factor_profile": pd.DataFrame(profile_rows),
        "index_pools": pd.DataFrame(index_rows), "holdings": holdings,
    }


def report_data():
    t = tables()
    factors = summaries.factors_present(t)
    labels = {f: summaries.FACTOR_LABELS[f] for f in factors}
    cfg = EvaluationConfig()
    factor_table = pd.DataFrame({"ts_code": ["B", "C"], "industry": ["Banks", None], "log_float_mcap": [23.0, 21.0],
                                 "pret": [0.1, 0.2]})
    return {
        "factors": factors, "labels": labels, "n_groups": 5,
        "groups": {labels[f]: summaries.group_summary(t["group_returns"], f, cfg) for f in factors},
        "long_short": {labels[f]: summaries.long_short_summary(t["long_short"], f) for f in factors},
        "ic_stats": {labels[f]: summaries.ic_summary(t, f) for f in factors},
        "yearly": pd.DataFrame({"year": ["2023"], "ic": [0.05], "rank_ic": [0.04], "long_excess": [0.02],
                                "win_rate": [0.5], "months": [3]}),
        "decay": {labels[f]: summaries.decay_summary(t["ic_decay"], f) for f in factors},
        "style": summaries.style_summary(t["style_exposure"], t["factor_profile"]),
        "cost_text": "commission 2.5 bp a side",
        "indices": {labels[f]: summaries.index_summary(t["index_pools"], f) for f in factors},
        "index_note": "note",
        "holdings": summaries.holdings_summary(t["holdings"], factor_table, pd.Series({"C": "Name C"}), "2023-09"),
    }


def test_group_summary_compounds_complete_months_and_charges_costs():
    t = tables()
    s = summaries.group_summary(t["group_returns"], "pret", EvaluationConfig())
    rows = t["group_returns"]
    top = rows[(rows.factor == "pret") & (rows.group == 5) & rows.complete]["mean_return"].to_numpy()
    assert s["table"].loc[5, "annual_return"] == pytest.approx(np.prod(1 + top) ** (12 / 3) - 1)
    side = 0.00075
    # From cash in June; July sells at 10 bp of stamp duty, August (rebalanced 2023-08-31) at 5 bp.
    cost = np.array([side, 0.5 * side + 0.5 * (side + 0.001), 0.5 * side + 0.5 * (side + 0.0005)])
    assert s["net"][5].to_numpy() == pytest.approx(top - cost)
    assert s["monotonicity"] == pytest.approx(1.0)  # sorted means in every month


def test_holdings_mark_new_names_and_exits():
    h = report_data()["holdings"]
    assert h["table"]["ts_code"].tolist() == ["C", "B"]  # by pRet, highest first
    assert h["table"]["new"].tolist() == [True, False] and h["exits"] == ["A"] and h["previous_month"] == "2023-08"
    assert h["table"]["name"].iloc[0] == "Name C"


def test_every_section_renders_in_markdown_and_html():
    data = report_data()
    sections = build_sections(data)
    titles = [s.title for s in sections]
    assert titles == ["Every group", "Long-short spread (diagnostic)", "IC statistics", "IC decay", "Style exposure",
                      "Costs", "Index benchmarks and pools", "Holdings: the top group of 2023-09"]
    summary = {"first_month": MONTHS[0], "last_month": MONTHS[-1]}
    images = {"group_value": b"\x89PNG", "ic_decay": b"\x89PNG", "other": b"\x89PNG"}
    markdown = render_markdown(summary, None, {k: f"{k}.png" for k in images}, sections=sections)
    html = render_html(summary, None, images, sections=sections)
    for title in titles:
        assert f"## {title}" in markdown and f"<h2>{title}</h2>" in html
    assert "| 5 sessions | 0." in markdown and "month m+1" in markdown and "CSI 300 (000300.SH)" in markdown
    # A section places its own figures; the rest close the report.
    assert markdown.index("![group_value]") < markdown.index("## Long-short")
    assert markdown.index("![other]") > markdown.index("## Holdings")
    assert html.count("<img ") == 3 and "<strong>pRet</strong>" in html

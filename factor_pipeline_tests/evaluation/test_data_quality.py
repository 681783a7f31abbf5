"""The report's data-quality section: every irregular row counted by month and kind, the newest month's listed."""

from __future__ import annotations

import pandas as pd

from factor_pipeline.evaluation.report.data_quality import SHOWN, data_quality_html, data_quality_markdown
from factor_pipeline.market.input_files import empty_issues


def _issues(rows):
    return pd.DataFrame(rows, columns=["month", "source", "kind", "ts_code", "detail"])


def test_counts_by_month_and_kind_and_the_newest_months_rows():
    issues = _issues([
        (None, "stock_basic", "malformed_code", "T600018.SH", "row 7: not an A-share code; dropped"),
        ("2024-01", "daily", "duplicate_row", "600000.SH", "row 3: an exact repeat of an earlier row; dropped"),
        (None, "index_member_all", "unclassified", "920002.BJ", "no membership"),
        (None, "index_member_all", "unclassified", "920002.BJ", "no membership"),  # stored with another month too
        ("2024-02", "adj_factor", "adj_factor_carried", "689009.SH", "no row for 2024-02-20"),
        ("2024-03", "adj_factor", "adj_factor_carried", "689009.SH", "after the report's month"),
    ])
    text = data_quality_markdown(issues, "2024-02")
    assert "| month | adj_factor_carried | duplicate_row | malformed_code | unclassified | total |" in text
    assert "| 2024-01 | 0 | 1 | 0 | 0 | 1 |" in text and "| 2024-02 | 1 | 0 | 0 | 0 | 1 |" in text
    assert "| all months | 0 | 0 | 1 | 1 | 2 |" in text  # the unclassified stock once, though stored with two months
    assert "2024-03" not in text and "after the report's month" not in text
    assert "- adj_factor_carried 689009.SH (adj_factor): no row for 2024-02-20" in text
    assert "920002.BJ" not in text and "600000.SH" not in text  # other months are counted, not listed
    assert "<h2>Data quality</h2>" in data_quality_html(issues, "2024-02")


def test_a_month_with_many_is_listed_in_part_and_counted_whole():
    issues = _issues([("2024-01", "adj_factor", "adj_factor_carried", f"6000{i:02d}.SH", "gap") for i in range(SHOWN + 3)])
    text = data_quality_markdown(issues, "2024-01")
    assert text.count("- adj_factor_carried") == SHOWN and "- and 3 more" in text
    assert f"| 2024-01 | {SHOWN + 3} | {SHOWN + 3} |" in text


def test_no_irregular_rows_says_so():
    assert "No irregular rows" in data_quality_markdown(empty_issues(), "2024-01")

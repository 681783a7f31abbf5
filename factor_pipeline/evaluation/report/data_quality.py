"""The report's data-quality section: what the source's reader set right instead of failing, month by month
(raw.data_issues), so that a reader of the factor sees what its data went through."""

from __future__ import annotations

import html

import pandas as pd

SHOWN = 20  # the newest month's rows listed in full; the rest are counted
SNAPSHOTS = "all months"  # the row of the issues of no month (the snapshots'), stored with every month


def _counts(issues: pd.DataFrame) -> pd.DataFrame:
    """month x kind counts, with a total column; an empty frame when nothing was set right."""
    if issues.empty:
        return pd.DataFrame()
    counts = issues.fillna({"month": SNAPSHOTS}).groupby(["month", "kind"]).size().unstack("kind", fill_value=0).sort_index()
    return counts.assign(total=counts.sum(axis=1))


def data_quality_markdown(issues: pd.DataFrame, month: str) -> str:
    """The section in Markdown, for the months of ``issues`` up to ``month``."""
    issues = issues[issues["month"].isna() | (issues["month"] <= month)].drop_duplicates()
    lines = ["", "## Data quality", ""]
    counts = _counts(issues)
    if counts.empty:
        return "\n".join(lines + ["No irregular rows: every row of the source was read as it came.", ""])
    lines += ["Irregular rows set right instead of failing, by month and kind (`raw.data_issues`):", ""]
    lines += ["| month | " + " | ".join(counts.columns) + " |", "|---" * (len(counts.columns) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(str(int(v)) for v in row) + " |" for m, row in counts.iterrows()]
    dated = counts.index[counts.index != SNAPSHOTS]
    shown = dated[-1] if len(dated) else SNAPSHOTS
    newest = issues[issues["month"] == shown] if len(dated) else issues
    lines += ["", f"{shown}, the newest month with any:" if len(dated) else "Of all months (the snapshots'):", ""]
    lines += [f"- {r.kind} {r.ts_code or ''} ({r.source}): {r.detail}" for r in newest.head(SHOWN).itertuples()]
    if len(newest) > SHOWN:
        lines.append(f"- and {len(newest) - SHOWN} more")
    return "\n".join(lines + [""])


def data_quality_html(issues: pd.DataFrame, month: str) -> str:
    """The same section as an HTML block."""
    text = data_quality_markdown(issues, month)
    return f"<h2>Data quality</h2><pre>{html.escape(text.split('## Data quality', 1)[1].strip())}</pre>"

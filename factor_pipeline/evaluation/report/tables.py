"""The report's tables as text: the seed's metric table and the top-industry lists, one formatting
rule for every cell, shared by the terminal table here and the documents in ``render.py``.

Pure functions of the dict that ``metrics.summarize`` returns.
"""

from __future__ import annotations

import pandas as pd

from factor_pipeline.market.trading_rules import STAMP_DUTY_SCHEDULE

FACTOR_NAME = "GAN_GRU"

# (label, summary key, format). Formats follow the seed: IC with 4 decimals, ratios with 2,
# percentages with 2, turnover as "0.82X".
# The truth rows come first, as docs/metrics.md judges (synthetic market only): a mean ± its standard error, and
# in each baseline's column the paired monthly difference of the factor minus that baseline.
TABLE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Truth correlation mean", "truth_corr", "mean_se"),
    ("Truth correlation, {factor} minus this (paired)", "truth_corr_gap", "gap"),
    ("IC mean", "ic_mean", "ic"),
    ("Rank IC mean", "rank_ic_mean", "ic"),
    ("ICIR (not annualised)", "icir", "ratio"),
    ("Turnover", "turnover", "turnover"),
    ("Latest IC", "latest_ic", "ic"),
    ("One-year IC", "one_year_ic", "ic"),
    ("Annualised return", "annual_return", "pct"),
    ("Annualised volatility", "annual_volatility", "pct"),
    ("IR", "ir", "ratio"),
    ("Max drawdown", "max_drawdown", "pct"),
    ("Annualised excess return", "annual_excess_return", "pct"),
    ("Excess IR", "excess_ir", "ratio"),
    ("Annualised return net of cost", "net_annual_return", "pct"),
    ("Oracle IC mean", "oracle_ic_mean", "ic"),
    ("Efficiency (IC / oracle IC)", "efficiency", "ratio"),
    ("Months (IC / returns)", "n_months", "months"),
)

INDUSTRY_TABLES: tuple[tuple[str, str, str], ...] = (
    ("industry_ic_latest", "Top 5 industries by IC, {latest}", "ic"),
    ("industry_ic_1y", "Top 5 industries by IC, mean of the last 12 months", "ic"),
    ("industry_excess_latest", "Top 5 industries by long excess return, {latest}", "pct"),
    ("industry_excess_1y", "Top 5 industries by long excess return, mean monthly excess of the last 12 months", "pct"),
)


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_value(value, kind: str, summary: dict | None = None) -> str:
    """One cell: '-' when the figure is undefined (NaN/None)."""
    if kind == "months":
        summary = summary or {}
        n_ic, n_ret = summary.get("n_months"), summary.get("n_return_months")
        return f"{'-' if _missing(n_ic) else int(n_ic)} / {'-' if _missing(n_ret) else int(n_ret)}"
    if kind in ("mean_se", "gap"):  # a {mean, se} dict; a gap carries its sign
        if not value or _missing(value.get("mean")):
            return "-"
        se = "-" if _missing(value.get("se")) else f"{value['se']:.3f}"
        return f"{value['mean']:{'+' if kind == 'gap' else ''}.3f} ± {se}"
    if _missing(value):
        return "-"
    value = float(value)
    if kind == "ic":
        return f"{value:.4f}"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "turnover":
        return f"{value:.2f}X"
    return f"{value:.2f}"


def _row_label(label: str, key: str, summary: dict) -> str:
    if key == "latest_ic" and summary.get("latest_month"):
        label = f"{label} ({summary['latest_month']}"
        if summary.get("latest_complete") is False and summary.get("latest_as_of"):
            label += f", as of {summary['latest_as_of']}"
        label += ")"
    if key == "net_annual_return" and summary.get("costs"):
        label = f"{label} ({cost_text(summary['costs'])})"
    return label


def cost_text(costs: dict) -> str:
    """The cost model's settings in a few words (docs/market.md, "Trading costs")."""
    stamp = ", ".join(
        f"{rate * 1e4:g} bp" + ("" if i == 0 else f" from {start}") for i, (start, rate) in enumerate(STAMP_DUTY_SCHEDULE)
    )
    return (
        f"commission {costs['commission'] * 1e4:g} bp a side, slippage {costs['slippage'] * 1e4:g} bp a side, "
        f"stamp duty on sells {stamp}"
    )


def metric_table(
    summary: dict, baselines: dict[str, dict] | None, factor_name: str
) -> tuple[list[str], list[list[str]]]:
    """Header and body rows shared by the terminal, Markdown and HTML tables."""
    columns = [(factor_name, summary)] + list((baselines or {}).items())
    header = ["Metric"] + [name for name, _ in columns]
    body = []
    for label, key, kind in TABLE_ROWS:
        cells = [format_value(s.get(key), kind, s) for _, s in columns]
        if key in ("oracle_ic_mean", "efficiency", "truth_corr", "truth_corr_gap") and all(c == "-" for c in cells):
            continue  # no truth (input files rather than the synthetic market): leave the rows out
        body.append([_row_label(label.format(factor=factor_name), key, summary)] + cells)
    return header, body


def period(summary: dict) -> str:
    first, last = summary.get("first_month"), summary.get("last_month")
    return f"{first} to {last}" if first and last else "no months evaluated"


def partial_note(summary: dict) -> str | None:
    if summary.get("latest_complete") is False:
        counted = (
            "It counts in the IC means and the industry tables"
            if summary.get("partial_in_ic", True)
            else "It is shown as the latest IC and in the industry tables but left out of the IC means"
        )
        return (
            f"The latest month ({summary.get('latest_month')}) is partial: its forward return runs to "
            f"{summary.get('latest_as_of')}. {counted}, not in the return, volatility, drawdown and excess "
            "figures, which use complete months only."
        )
    return None


def industry_sections(summary: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(industry, formatted value)]) for each top-industry list, in the report's order."""
    sections = []
    for key, title, kind in INDUSTRY_TABLES:
        rows = [(str(name), format_value(v, kind)) for name, v in summary.get(key) or []]
        sections.append((title.format(latest=summary.get("latest_month")), rows))
    return sections


DEPARTURES_TITLE = "How this run's model and training depart from the seed's"


def departures(summary: dict) -> list[str]:
    """config.departures_from_seed of the run, as write_report stored it (none in an older summary)."""
    return list(summary.get("departures_from_seed") or [])


def format_table(summary: dict, baselines: dict[str, dict] | None = None, *, factor_name: str = FACTOR_NAME) -> str:
    """The seed's table for a terminal: one column for the factor and one per baseline."""
    header, body = metric_table(summary, baselines, factor_name)
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]

    def line(row):
        return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))

    out = [f"{factor_name} factor report, {period(summary)}", line(header), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in body]
    note = partial_note(summary)
    if note:
        out += ["", note]
    for key, title, kind in INDUSTRY_TABLES:
        entries = summary.get(key) or []
        out += ["", title.format(latest=summary.get("latest_month"))]
        out += [f"  {i}. {name}  {format_value(v, kind)}" for i, (name, v) in enumerate(entries, 1)] or ["  (none)"]
    if departures(summary):
        out += ["", DEPARTURES_TITLE] + [f"  - {line}" for line in departures(summary)]
    return "\n".join(out) + "\n"

"""The factor report: the seed's table for a terminal, PNG figures, Markdown and self-contained HTML.

Pure functions of the dict that ``evaluation.summarize`` returns and of the eval tables. Figures are
drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot: no global state, safe in
a Dagster worker thread) at a fixed dpi and without the "Software" PNG tag, so the same data gives the
same bytes and an unchanged report does not look changed.
"""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from factor_pipeline.market.trading_rules import EXCLUDED_FROM_ATTRIBUTION

DPI = 100
FACTOR_NAME = "GAN_GRU"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (label, summary key, format). Formats follow the seed: IC with 4 decimals, ratios with 2,
# percentages with 2, turnover as "0.82X".
TABLE_ROWS: tuple[tuple[str, str, str], ...] = (
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


# ---------------------------------------------------------------------------------------------
# Formatting


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
    if key == "net_annual_return" and not _missing(summary.get("cost_per_turnover")):
        label = f"{label} ({summary['cost_per_turnover'] * 100:.2f}% per unit of two-sided turnover)"
    return label


def _table(summary: dict, baselines: dict[str, dict] | None, factor_name: str) -> tuple[list[str], list[list[str]]]:
    """Header and body rows shared by the terminal, Markdown and HTML tables."""
    columns = [(factor_name, summary)] + list((baselines or {}).items())
    header = ["Metric"] + [name for name, _ in columns]
    body = []
    for label, key, kind in TABLE_ROWS:
        cells = [format_value(s.get(key), kind, s) for _, s in columns]
        if key in ("oracle_ic_mean", "efficiency") and all(c == "-" for c in cells):
            continue  # no oracle (input files rather than the synthetic market): leave the rows out
        body.append([_row_label(label, key, summary)] + cells)
    return header, body


def _period(summary: dict) -> str:
    first, last = summary.get("first_month"), summary.get("last_month")
    return f"{first} to {last}" if first and last else "no months evaluated"


def _partial_note(summary: dict) -> str | None:
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


def format_table(summary: dict, baselines: dict[str, dict] | None = None, *, factor_name: str = FACTOR_NAME) -> str:
    """The seed's table for a terminal: one column for the factor and one per baseline."""
    header, body = _table(summary, baselines, factor_name)
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]

    def line(row):
        return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))

    out = [f"{factor_name} factor report, {_period(summary)}", line(header), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in body]
    note = _partial_note(summary)
    if note:
        out += ["", note]
    for key, title, kind in INDUSTRY_TABLES:
        entries = summary.get(key) or []
        out += ["", title.format(latest=summary.get("latest_month"))]
        out += [f"  {i}. {name}  {format_value(v, kind)}" for i, (name, v) in enumerate(entries, 1)] or ["  (none)"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Figures


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # No "Software" tag: its matplotlib version would change the bytes without changing the figure.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _empty(fig: Figure, ax, message: str) -> bytes:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return _png(fig)


def _month_ticks(ax, months: list[str]) -> None:
    # About a dozen labels whatever the length of the history, so that they never overlap.
    step = max(1, math.ceil(len(months) / 12))
    ticks = list(range(0, len(months), step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([months[i] for i in ticks], rotation=45, ha="right", fontsize=8)


def plot_ic(ic: pd.DataFrame) -> bytes:
    """Monthly IC bars (a partial month hatched) and the cumulative IC on a second axis."""
    fig = Figure(figsize=(10, 4.5))
    ax = fig.add_subplot()
    frame = ic.sort_values("month", kind="mergesort") if len(ic) else ic
    if len(frame) == 0:
        return _empty(fig, ax, "no IC yet")
    months = frame["month"].astype(str).tolist()
    values = frame["ic"].astype("float64").to_numpy()
    x = np.arange(len(months))
    colors = np.where(np.nan_to_num(values) >= 0, "#c0392b", "#2e86c1")  # A-share red = up
    bars = ax.bar(x, np.nan_to_num(values), color=colors, width=0.8, label="monthly IC")
    if "complete" in frame.columns:
        for bar, complete in zip(bars, frame["complete"].astype("boolean").fillna(True)):
            if not complete:
                bar.set_hatch("//")
                bar.set_alpha(0.6)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("IC")
    twin = ax.twinx()
    twin.plot(x, np.nancumsum(values), color="#34495e", linewidth=1.5, label="cumulative IC")
    twin.set_ylabel("cumulative IC")
    _month_ticks(ax, months)
    ax.set_title("Monthly IC and cumulative IC")
    handles = [bars, twin.get_lines()[0]]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_nav(portfolio: pd.DataFrame) -> bytes:
    """NAV of the long portfolio, the benchmark and the excess return, complete months only
    (the same months as the return statistics)."""
    fig = Figure(figsize=(10, 4.5))
    ax = fig.add_subplot()
    frame = portfolio
    if len(frame) and "complete" in frame.columns:
        frame = frame[frame["complete"].astype("boolean").fillna(False).astype(bool)]
    frame = frame.sort_values("month", kind="mergesort") if len(frame) else frame
    if len(frame) == 0:
        return _empty(fig, ax, "no complete month yet")
    months = frame["month"].astype(str).tolist()
    x = np.arange(len(months) + 1)  # position 0 is NAV(0) = 1, before the first month
    labels = ["start"] + months
    for column, name, color in (
        ("long_return", "long (top group)", "#c0392b"),
        ("benchmark_return", "benchmark (equal-weight universe)", "#7f8c8d"),
        ("excess_return", "excess", "#2e86c1"),
    ):
        growth = np.concatenate([[1.0], np.cumprod(1.0 + frame[column].astype("float64").fillna(0.0).to_numpy())])
        ax.plot(x, growth, label=name, color=color, linewidth=1.5)
    ax.axhline(1.0, color="black", linewidth=0.6)
    _month_ticks(ax, labels)
    ax.set_ylabel("NAV")
    ax.set_title("Net asset value (before costs)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_industry_ic(industry_ic: pd.DataFrame) -> bytes:
    """Industry IC of the latest month beside the mean of the last 12 months, one pair of bars per
    industry (Conglomerates excluded), sorted by the 12-month mean."""
    fig = Figure(figsize=(10, 7))
    ax = fig.add_subplot()
    frame = industry_ic[industry_ic["industry"] != EXCLUDED_FROM_ATTRIBUTION] if len(industry_ic) else industry_ic
    if len(frame) == 0:
        return _empty(fig, ax, "no industry IC yet")
    months = frame["month"].astype(str)
    latest = months.max()
    first = (pd.Period(latest, freq="M") - 11).strftime("%Y-%m")
    year = frame[(months >= first) & (months <= latest)].groupby("industry")["ic"].mean()
    last = frame[months == latest].set_index("industry")["ic"].reindex(year.index)
    order = year.sort_values(kind="mergesort").index
    y = np.arange(len(order))
    latest_values = np.nan_to_num(last.reindex(order).to_numpy())
    year_values = np.nan_to_num(year.reindex(order).to_numpy())
    ax.barh(y - 0.2, latest_values, height=0.4, color="#c0392b", label=f"latest month ({latest})")
    ax.barh(y + 0.2, year_values, height=0.4, color="#2e86c1", label="mean of 12 months")
    ax.set_yticks(y)
    ax.set_yticklabels(list(order), fontsize=8)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("IC (industries with fewer than the minimum pairs show no bar)")
    ax.set_title("Industry IC (SW level 1)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_curves(curves: dict[str, list[float]], title: str) -> bytes:
    """Training curves (GAN losses per step, GRU loss and validation IC per epoch) on one axis.

    Each curve is drawn against its own index (step or epoch), so curves of different lengths can
    share the figure; NaN points leave gaps rather than failing.
    """
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    drawn = False
    for name, values in curves.items():
        y = np.asarray(list(values) if values is not None else [], dtype="float64")
        if len(y):
            ax.plot(np.arange(len(y)), y, label=str(name), linewidth=1.2)
            drawn = True
    if not drawn:
        return _empty(fig, ax, "no values")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# Documents


def _industry_sections(summary: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    sections = []
    for key, title, kind in INDUSTRY_TABLES:
        rows = [(str(name), format_value(v, kind)) for name, v in summary.get(key) or []]
        sections.append((title.format(latest=summary.get("latest_month")), rows))
    return sections


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(c) for c in header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return lines


def render_markdown(
    summary: dict, baselines: dict[str, dict] | None, images: dict[str, str], *, factor_name: str = FACTOR_NAME
) -> str:
    """The report as Markdown; ``images`` maps a figure name to its PNG path relative to the file."""
    header, body = _table(summary, baselines, factor_name)
    lines = [f"# {factor_name} factor report", "", f"Evaluation months: {_period(summary)}.", ""]
    lines += _md_table(header, body)
    note = _partial_note(summary)
    if note:
        lines += ["", f"> {note}"]
    for title, rows in _industry_sections(summary):
        lines += ["", f"## {title}", ""]
        if rows:
            lines += _md_table(["Industry", "Value"], [list(r) for r in rows])
        else:
            lines.append("(no industry with enough stocks)")
    if images:
        lines += ["", "## Figures"]
        for name, path in images.items():
            lines += ["", f"![{name}]({path})"]
    return "\n".join(lines) + "\n"


def _html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


_CSS = (
    "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 10px}"
    "td:not(:first-child),th:not(:first-child){text-align:right}img{max-width:100%}"
    ".note{background:#fff7e0;padding:.5em 1em}"
)


def render_html(
    summary: dict, baselines: dict[str, dict] | None, images: dict[str, bytes], *, factor_name: str = FACTOR_NAME
) -> str:
    """The report as one self-contained HTML page: the PNGs are embedded as base64 data URIs."""
    header, body = _table(summary, baselines, factor_name)
    title = html.escape(f"{factor_name} factor report")
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{_CSS}</style></head><body>',
        f"<h1>{title}</h1>",
        f"<p>Evaluation months: {html.escape(_period(summary))}.</p>",
        _html_table(header, body),
    ]
    note = _partial_note(summary)
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    for section, rows in _industry_sections(summary):
        parts.append(f"<h2>{html.escape(section)}</h2>")
        if rows:
            parts.append(_html_table(["Industry", "Value"], [list(r) for r in rows]))
        else:
            parts.append("<p>(no industry with enough stocks)</p>")
    if images:
        parts.append("<h2>Figures</h2>")
        for name, data in images.items():
            encoded = base64.b64encode(data).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">'
                         f"<figcaption>{html.escape(name)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

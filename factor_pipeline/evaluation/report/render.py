"""The report as documents: Markdown beside its PNG files, and one self-contained HTML page."""

from __future__ import annotations

import base64
import html

from factor_pipeline.evaluation.report.sections import Section
from factor_pipeline.evaluation.report.tables import (
    DEPARTURES_TITLE,
    FACTOR_NAME,
    departures,
    industry_sections,
    metric_table,
    partial_note,
    period,
)


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(c) for c in header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return lines


def _md_section(section: Section, images: dict[str, str]) -> list[str]:
    lines = ["", f"## {section.title}"]
    for block in section.blocks:
        if block[0] == "text":
            lines += ["", block[1]]
        elif block[0] == "table":
            lines += [""] + _md_table(block[1], block[2])
        elif block[1] in images:
            lines += ["", f"![{block[1]}]({images[block[1]]})"]
    return lines


def render_markdown_section(section: Section) -> str:
    """One section as Markdown without its figures (the Dagster UI's metadata)."""
    return "\n".join(_md_section(section, {})).strip() + "\n"


def _section_figures(sections: list[Section]) -> set[str]:
    return {block[1] for section in sections for block in section.blocks if block[0] == "figure"}


def render_markdown(
    summary: dict,
    baselines: dict[str, dict] | None,
    images: dict[str, str],
    *,
    factor_name: str = FACTOR_NAME,
    sections: list[Section] = (),
) -> str:
    """The report as Markdown; ``images`` maps a figure name to its PNG path relative to the file. ``sections``
    follow the seed's table and industry lists; the figures they do not place close the report."""
    header, body = metric_table(summary, baselines, factor_name)
    lines = [f"# {factor_name} factor report", "", f"Evaluation months: {period(summary)}.", ""]
    lines += _md_table(header, body)
    note = partial_note(summary)
    if note:
        lines += ["", f"> {note}"]
    for title, rows in industry_sections(summary):
        lines += ["", f"## {title}", ""]
        if rows:
            lines += _md_table(["Industry", "Value"], [list(r) for r in rows])
        else:
            lines.append("(no industry with enough stocks)")
    for section in sections:
        lines += _md_section(section, images)
    if departures(summary):
        lines += ["", f"## {DEPARTURES_TITLE}", ""] + [f"- `{line}`" for line in departures(summary)]
    placed = _section_figures(sections)
    rest = {name: path for name, path in images.items() if name not in placed}
    if rest:
        lines += ["", "## Figures"]
        for name, path in rest.items():
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


def _html_figure(name: str, data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>")


def _html_text(text: str) -> str:
    # The sections' only markup is **bold**, for a factor's name above its table.
    escaped = html.escape(text)
    parts = escaped.split("**")
    return "<p>" + "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts)) + "</p>"


def _html_section(section: Section, images: dict[str, bytes]) -> list[str]:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    for block in section.blocks:
        if block[0] == "text":
            parts.append(_html_text(block[1]))
        elif block[0] == "table":
            parts.append(_html_table(block[1], block[2]))
        elif block[1] in images:
            parts.append(_html_figure(block[1], images[block[1]]))
    return parts


def render_html(
    summary: dict,
    baselines: dict[str, dict] | None,
    images: dict[str, bytes],
    *,
    factor_name: str = FACTOR_NAME,
    sections: list[Section] = (),
) -> str:
    """The report as one self-contained HTML page: the PNGs are embedded as base64 data URIs."""
    header, body = metric_table(summary, baselines, factor_name)
    title = html.escape(f"{factor_name} factor report")
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{_CSS}</style></head><body>',
        f"<h1>{title}</h1>",
        f"<p>Evaluation months: {html.escape(period(summary))}.</p>",
        _html_table(header, body),
    ]
    note = partial_note(summary)
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    for section, rows in industry_sections(summary):
        parts.append(f"<h2>{html.escape(section)}</h2>")
        if rows:
            parts.append(_html_table(["Industry", "Value"], [list(r) for r in rows]))
        else:
            parts.append("<p>(no industry with enough stocks)</p>")
    for section in sections:
        parts += _html_section(section, images)
    if departures(summary):
        parts.append(f"<h2>{html.escape(DEPARTURES_TITLE)}</h2>")
        parts.append("<ul>" + "".join(f"<li><code>{html.escape(line)}</code></li>" for line in departures(summary)) + "</ul>")
    placed = _section_figures(sections)
    rest = {name: data for name, data in images.items() if name not in placed}
    if rest:
        parts.append("<h2>Figures</h2>")
        for name, data in rest.items():
            parts.append(_html_figure(name, data))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

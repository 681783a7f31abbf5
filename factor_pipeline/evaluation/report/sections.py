"""The report's sections after the seed's table, each built by one function from the report data
(``store.report_data``), so that a section can be added or moved without touching the renderers.

A section is a title and blocks: ("text", str), ("table", header, rows) or ("figure", name). Markdown and HTML
(render.py) draw the same blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from factor_pipeline.evaluation.report.tables import format_value


@dataclass
class Section:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def text(self, line: str) -> "Section":
        self.blocks.append(("text", line))
        return self

    def table(self, header: list[str], rows: list[list[str]]) -> "Section":
        self.blocks.append(("table", header, rows))
        return self

    def figure(self, name: str) -> "Section":
        self.blocks.append(("figure", name))
        return self


def _f(value, kind: str) -> str:
    return format_value(value, kind)


def groups_section(data: dict) -> Section:
    section = Section("Every group")
    section.text(
        f"Each month the buyable stocks are sorted into {data['n_groups']} equal groups by the factor (1 = lowest); "
        "returns are equal-weight, before costs unless marked net."
    )
    for label, summary in data["groups"].items():
        table = summary["table"]
        if table.empty:
            section.text(f"{label}: no complete month yet.")
            continue
        rows = [
            [str(g), _f(r.mean_return, "pct"), _f(r.annual_return, "pct"), _f(r.net_annual_return, "pct"),
             _f(r.turnover, "turnover"), f"{r.n:.0f}"]
            for g, r in table.iterrows()
        ]
        section.text(f"**{label}**: monotonicity (Spearman of group and mean return) {_f(summary['monotonicity'], 'ratio')}.")
        section.table(["Group", "Mean monthly return", "Annualised", "Annualised net of costs", "Turnover", "Stocks"], rows)
    section.figure("group_means").figure("group_value")
    return section


def long_short_section(data: dict) -> Section:
    section = Section("Long-short spread (diagnostic)")
    section.text("Top group minus bottom group, monthly. A diagnostic only: shorting is restricted in A-shares.")
    rows = [
        [label, _f(s["annual_return"], "pct"), _f(s["annual_volatility"], "pct"), _f(s["ir"], "ratio"),
         _f(s["max_drawdown"], "pct"), str(s["months"])]
        for label, s in data["long_short"].items()
    ]
    return section.table(["Factor", "Annualised", "Volatility", "IR", "Max drawdown", "Months"], rows)


IC_ROWS = (
    ("IC mean", "mean", "ic"), ("IC std", "std", "ic"), ("t-statistic", "t_stat", "ratio"),
    ("p-value (two-sided)", "p_value", "ic"), ("Skew", "skew", "ratio"), ("Excess kurtosis", "kurtosis", "ratio"),
    ("Share of positive months", "positive_share", "pct"), ("ICIR", "icir", "ratio"), ("Rank ICIR", "rank_icir", "ratio"),
    ("Months", "months", "count"),
)


def ic_section(data: dict) -> Section:
    section = Section("IC statistics")
    labels = list(data["ic_stats"])
    rows = []
    for title, key, kind in IC_ROWS:
        cells = [str(s[key]) if kind == "count" else _f(s[key], kind) for s in data["ic_stats"].values()]
        rows.append([title] + cells)
    section.table(["Statistic"] + labels, rows)
    yearly = data["yearly"]
    if not yearly.empty:
        section.text("By calendar year (pRet): long excess compounded over the year's complete months; win rate the "
                     "share of those months whose excess is positive.")
        section.table(
            ["Year", "IC", "Rank IC", "Long excess", "Win rate", "Months"],
            [[r.year, _f(r.ic, "ic"), _f(r.rank_ic, "ic"), _f(r.long_excess, "pct"), _f(r.win_rate, "pct"), str(r.months)]
             for r in yearly.itertuples()],
        )
    return section.figure("ic_histogram").figure("ic_heatmap")


def decay_section(data: dict) -> Section:
    section = Section("IC decay")
    section.text("Mean IC of the factor of d(m) against the return over h sessions after d(m), and against the "
                 "holding month one and two months later. Rank autocorrelation: the factor's Spearman correlation "
                 "with its previous month.")
    labels = list(data["decay"])
    keys = set()
    for frame in data["decay"].values():
        keys |= {(int(r.lag_months), 0 if pd.isna(r.horizon_sessions) else int(r.horizon_sessions)) for r in frame.itertuples()}
    rows = []
    for lag, horizon in sorted(keys):
        name = f"{horizon} sessions" if lag == 0 else f"month m+{lag}"
        cells = []
        for frame in data["decay"].values():
            hit = frame[(frame["lag_months"] == lag) & ((frame["horizon_sessions"] == horizon) if lag == 0 else True)]
            cells.append(_f(hit["ic"].iloc[0], "ic") + f" ({int(hit['months'].iloc[0])})" if len(hit) else "-")
        rows.append([name] + cells)
    profile = data["style"]["profile"]
    rows.append(["Rank autocorrelation"] + [_f(profile["rank_autocorr"].get(f), "ic") for f in data["factors"]])
    section.table(["Horizon (months behind the mean)"] + labels, rows)
    return section.figure("ic_decay")


STYLE_LABELS = {
    "size": "Size (log float cap)", "beta": "Beta", "volatility_20d": "20-day volatility",
    "turnover_20d": "20-day turnover", "reversal_20d": "20-day reversal", "momentum_12_1": "12-1 momentum",
}


def style_section(data: dict) -> Section:
    section = Section("Style exposure")
    exposure, profile = data["style"]["exposure"], data["style"]["profile"]
    labels = [data["labels"][f] for f in data["factors"]]
    rows = [
        [STYLE_LABELS.get(style, style)] + [_f(exposure.loc[style].get(f), "ic") for f in data["factors"]]
        for style in exposure.index
    ]
    section.text("Mean monthly rank correlation of each factor with each style on the rebalance date.")
    section.table(["Style"] + labels, rows)
    neutral = [
        ["IC (raw)"] + [_f(profile["ic"].get(f), "ic") for f in data["factors"]],
        ["IC, industry and size neutral"] + [_f(profile["ic_industry_size_neutral"].get(f), "ic") for f in data["factors"]],
        ["IC, industry and every style neutral"] + [_f(profile["ic_style_neutral"].get(f), "ic") for f in data["factors"]],
    ]
    section.table(["Mean monthly IC"] + labels, neutral)
    return section.figure("style_exposure")


def costs_section(data: dict) -> Section:
    section = Section("Costs")
    section.text(f"Net returns charge {data['cost_text']}; the minimum commission per order is left out. "
                 "Every group's net figures are in its table above; the top group's net value is the dashed curve.")
    rows = []
    for label, summary in data["groups"].items():
        gross, net = summary["gross"], summary["net"]
        if gross.empty:
            continue
        top = gross.columns.max()
        cost = (gross[top] - net[top]).mean()
        rows.append([label, _f(summary["table"].loc[top, "annual_return"], "pct"),
                     _f(summary["table"].loc[top, "net_annual_return"], "pct"), _f(cost, "pct"), _f(cost * 12, "pct")])
    return section.table(["Top group", "Annualised", "Annualised net", "Mean monthly cost", "Cost a year"], rows)


def index_section(data: dict) -> Section:
    section = Section("Index benchmarks and pools")
    section.text(data["index_note"])
    for label, table in data["indices"].items():
        if table.empty:
            continue
        section.text(f"**{label}**")
        section.table(
            ["Index", "Pool size", "Index annualised", "Long excess annualised", "Excess IR", "Excess drawdown",
             "IC in pool", "Rank IC in pool", "Pool long excess annualised"],
            [[f"{r.index_name} ({r.index_code})", f"{r.pool_size:.0f}", _f(r.index_annual_return, "pct"),
              _f(r.long_annual_excess, "pct"), _f(r.long_excess_ir, "ratio"), _f(r.long_excess_max_drawdown, "pct"),
              _f(r.pool_ic, "ic"), _f(r.pool_rank_ic, "ic"), _f(r.pool_long_annual_excess, "pct")]
             for r in table.itertuples()],
        )
    return section


def holdings_section(data: dict) -> Section:
    holdings = data["holdings"]
    section = Section(f"Holdings: the top group of {holdings['month']}")
    table = holdings["table"]
    section.table(
        ["Code", "Name", "Industry", "Float cap (CNY bn)", "pRet", "New"],
        [[r.ts_code, r.name if isinstance(r.name, str) else "-", r.industry if isinstance(r.industry, str) else "-",
          _f(r.float_mcap / 1e9, "ratio"), f"{r.pret:.4f}", "new" if r.new else ""] for r in table.itertuples()],
    )
    if holdings["previous_month"]:
        entries = int(table["new"].sum())
        exits = holdings["exits"]
        section.text(f"Since {holdings['previous_month']}: {entries} entries, {len(exits)} exits"
                     + (f" ({', '.join(exits)})." if exits else "."))
    return section


SECTIONS = (
    groups_section, long_short_section, ic_section, decay_section, style_section, costs_section, index_section,
    holdings_section,
)


def build_sections(data: dict) -> list[Section]:
    return [build(data) for build in SECTIONS]

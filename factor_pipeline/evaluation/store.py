"""The evaluation stage's reads and writes in the home: scoring a month into its factor table, evaluating
it, and writing the report, around the pure factor_table.py, metrics.py and report/.

R(i,m) runs from the close of d(m) to the close of d(m+1). When d(m+1) has not closed yet (the newest
month), R runs to the newest bar available and the month is marked incomplete with that "as of" date: it
supplies the report's latest IC, and is kept out of the return statistics until its month is complete.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from factor_pipeline.config import Config, departures_from_seed
from factor_pipeline.evaluation import benchmarks, decay, factor_table, groups, ic_stats, metrics, style
from factor_pipeline.evaluation import summaries as report_summaries
from factor_pipeline.evaluation.report.data_quality import data_quality_html, data_quality_markdown
from factor_pipeline.evaluation.report.plots import (
    plot_group_means,
    plot_group_value,
    plot_ic,
    plot_ic_decay,
    plot_ic_heatmap,
    plot_ic_histogram,
    plot_industry_ic,
    plot_nav,
    plot_style_exposure,
)
from factor_pipeline.evaluation.report.render import render_html, render_markdown, render_markdown_section
from factor_pipeline.evaluation.report.sections import build_sections
from factor_pipeline.evaluation.report.tables import cost_text, format_table
from factor_pipeline.market import session_calendar
from factor_pipeline.storage import Layout, StorageError, read_json, read_months, write_bytes, write_json, write_parquet


def score_and_store(layout: Layout, month: str, cfg: Config) -> tuple[pd.DataFrame, dict]:
    """Score the month (model.scoring), build its factor table and write it; returns the table and the
    checkpoint record."""
    from factor_pipeline.model import scoring

    rows, pret_raw, pret_gan_off, record = scoring.score_month(layout, month, cfg)
    months = session_calendar.months_back(month, factor_table.REVERSAL_HISTORY_MONTHS, first=layout.first_month)
    bars = read_months(layout, "raw_bars/daily", months)
    rebalance = session_calendar.rebalance_date(month)
    out = factor_table.build_factor_table(rows, pret_raw, record, bars, rebalance, cfg.factor.neutralize, pret_gan_off)
    write_parquet(out, layout.partition("factor", month), layout.stamp("factor", month))
    return out, record


EVAL_TABLES = ("ic", "portfolio", "industry_ic", "industry_long_excess", "baselines", "holdings")
# Written beside the seed's tables: every group, the spread, styles, the factor's profile and the index pools by
# the evaluation; the decay by the report, which is the first step that has every earlier month's factor.
EXTENDED_TABLES = ("group_returns", "long_short", "style_exposure", "factor_profile", "index_pools", "ic_decay")
BASELINE_COLUMNS = {"reversal_20d": "20-day reversal", "pret_gan_off": "GRU, GAN off"}


def _bars_after(layout: Layout, month: str) -> pd.DataFrame:
    months = [month]
    following = session_calendar.shift_month(month, 1)
    if layout.partition("raw_bars/daily", following).exists():
        months.append(following)
    return read_months(layout, "raw_bars/daily", months)


def holding_period(bars: pd.DataFrame, month: str) -> tuple[pd.Timestamp, pd.Timestamp, bool]:
    """(d(m), end of the returns, complete?) for month m given the bars available."""
    start = session_calendar.rebalance_date(month)
    try:
        target = session_calendar.rebalance_date(session_calendar.shift_month(month, 1))
    except session_calendar.CalendarHorizonError:
        target = None
    newest = bars["trade_date"].max()
    if newest <= start:
        raise StorageError(
            f"no bars after {month}'s rebalance date {start.date()}: materialise raw_bars for "
            f"{session_calendar.shift_month(month, 1)} before evaluating {month}"
        )
    if target is not None and newest >= target:
        return start, target, True
    return start, newest, False


def _panel(factor_table: pd.DataFrame, column: str, returns: pd.Series | None) -> pd.DataFrame:
    panel = factor_table[["ts_code", "industry", "buyable"]].copy()
    panel["factor"] = factor_table[column].to_numpy(dtype=float)
    panel["fwd_return"] = returns.to_numpy(dtype=float) if returns is not None else np.nan
    return panel


def _previous_top(layout: Layout, month: str, column: str, cfg: Config) -> list[str] | None:
    path = layout.partition("factor", session_calendar.shift_month(month, -1))
    if not path.exists():
        return None
    previous = read_months(layout, "factor", [session_calendar.shift_month(month, -1)])
    if column not in previous:
        return None
    return metrics.top_group(_panel(previous, column, None), cfg.factor.n_groups)


def evaluate_and_store(layout: Layout, month: str, cfg: Config, log=print) -> dict:
    from factor_pipeline.features.labels import forward_returns

    table = read_months(layout, "factor", [month])
    bars = _bars_after(layout, month)
    start, end, complete = holding_period(bars, month)
    targets = pd.DataFrame({"ts_code": table["ts_code"], "start_date": start, "end_date": end})
    returns = forward_returns(bars, targets)
    base = {"month": month, "as_of": end, "complete": complete}

    main = metrics.evaluate_month(month, _panel(table, "pret", returns), _previous_top(layout, month, "pret", cfg), cfg.factor)
    oracle_ic = np.nan
    expected = None  # E[R(i,m)] per row of the table (synthetic market only)
    truth_path = layout.partition("raw_bars/truth", month)
    if truth_path.exists():
        truth = read_months(layout, "raw_bars/truth", [month]).set_index("ts_code")["expected_return"]
        expected = table["ts_code"].map(truth).set_axis(table.index)
        oracle_ic = metrics.oracle_ic(expected, returns)

    def truth_corr(column: str) -> float:
        return np.nan if expected is None else metrics.truth_corr(table[column], expected)

    ic_row = pd.DataFrame([{**base, **main.ic_record(), "oracle_ic": oracle_ic, "truth_corr": truth_corr("pret")}])
    portfolio_row = pd.DataFrame([{**base, **main.portfolio_record(), "n_long": main.n_long}])
    baselines, holdings = [], [pd.DataFrame({"month": month, "factor": "pret", "ts_code": main.top_codes})]
    for column in BASELINE_COLUMNS:
        if column not in table:
            continue
        result = metrics.evaluate_month(
            month, _panel(table, column, returns), _previous_top(layout, month, column, cfg), cfg.factor
        )
        baselines.append(
            {**base, "factor": column, **result.ic_record(), **result.portfolio_record(), "truth_corr": truth_corr(column)}
        )
        holdings.append(pd.DataFrame({"month": month, "factor": column, "ts_code": result.top_codes}))

    # The baselines' truth_corr also sits in eval.ic, so one DuckDB query compares them month by month.
    for column in BASELINE_COLUMNS:
        if column in table:
            ic_row[f"truth_corr_{column}"] = truth_corr(column)
    stamp = layout.stamp("eval", month)
    write_parquet(ic_row, layout.partition("eval/ic", month), stamp)
    write_parquet(portfolio_row, layout.partition("eval/portfolio", month), stamp)
    write_parquet(main.industry_ic.assign(month=month), layout.partition("eval/industry_ic", month), stamp)
    write_parquet(main.industry_long_excess.assign(month=month), layout.partition("eval/industry_long_excess", month), stamp)
    write_parquet(pd.DataFrame(baselines, columns=["month", "as_of", "complete", "factor", "ic", "rank_ic", "n_stocks",
                                                   "long_return", "benchmark_return", "excess_return", "turnover", "truth_corr"]),
                  layout.partition("eval/baselines", month), stamp)
    write_parquet(pd.concat(holdings, ignore_index=True), layout.partition("eval/holdings", month), stamp)
    for name, frame in _extended_tables(layout, month, table, returns, base, cfg).items():
        write_parquet(frame, layout.partition(f"eval/{name}", month), stamp)
    log(f"{month}: IC {main.ic:.4f}, rank IC {main.rank_ic:.4f}, oracle IC {oracle_ic:.4f}, returns as of {end.date()}")
    return {
        "ic": float(main.ic),
        "rank_ic": float(main.rank_ic),
        "oracle_ic": float(oracle_ic),
        "truth_corr": float(ic_row["truth_corr"].iloc[0]),
        "n_stocks": int(main.n_stocks),
        "long_return": float(main.long_return),
        "excess_return": float(main.excess_return),
        "as_of": str(end.date()),
        "complete": complete,
    }


def _existing_months(layout: Layout, dataset: str, months: list[str]) -> list[str]:
    return [m for m in months if layout.partition(dataset, m).exists()]


def _beta_on_rebalance(layout: Layout, month: str) -> pd.Series:
    """Each stock's market beta on d(m) from the month's samples; empty (the beta style left blank) where a
    factor was built without them, as a partial month's refresh may evaluate one."""
    if not layout.partition("samples", month).exists():
        return pd.Series(dtype="float64", name="market_beta")
    samples = read_months(layout, "samples", [month])
    on_date = samples[samples["trade_date"] == session_calendar.rebalance_date(month)]
    return on_date.set_index("ts_code")["market_beta"]


def _style_bars(layout: Layout, month: str) -> pd.DataFrame:
    wanted = [session_calendar.shift_month(month, -style.MOMENTUM_MONTHS[0])] + session_calendar.months_back(month, 1)
    return read_months(layout, "raw_bars/daily", _existing_months(layout, "raw_bars/daily", wanted))


def _extended_tables(
    layout: Layout, month: str, table: pd.DataFrame, returns: pd.Series, base: dict, cfg: Config
) -> dict[str, pd.DataFrame]:
    """Every group, the long-short spread, style exposure, the factor's profile and the index pools of the month,
    for pRet and each baseline."""
    previous_month = session_calendar.shift_month(month, -1)
    previous = read_months(layout, "factor", [previous_month]) if layout.partition("factor", previous_month).exists() else None
    styles = style.style_frame(table, _beta_on_rebalance(layout, month), _style_bars(layout, month), month)
    if layout.partition("raw_bars/index_weight", month).exists():
        weights = read_months(layout, "raw_bars/index_weight", [month])
        masks, log_weights = benchmarks.published_pools(table, weights, cfg.evaluation.indices)
    else:
        masks = benchmarks.pools(table, cfg.evaluation.indices)
        log_weights = {code: table["log_float_mcap"].to_numpy(dtype="float64") for code in masks}
    rebalance = session_calendar.rebalance_date(month)
    group_frames, style_frames, profiles, index_rows = [], [], [], []
    for column in ("pret", *BASELINE_COLUMNS):
        if column not in table:
            continue
        panel = _panel(table, column, returns)
        members = groups.group_members(panel, cfg.factor.n_groups)
        before = None
        if previous is not None and column in previous:
            before = groups.group_members(_panel(previous, column, None), cfg.factor.n_groups)
        by_group = groups.group_returns(panel, members, before, cfg.factor.n_groups)
        group_frames.append(by_group.assign(factor=column))
        style_frames.append(style.style_rows(month, column, panel["factor"], styles))
        neutral = style.neutral_ics(panel["factor"], table["industry"], styles, panel["fwd_return"])
        profiles.append({"factor": column, "rank_autocorr": decay.rank_autocorrelation(table, previous, column), **neutral})
        own_long = float(by_group["mean_return"].iloc[-1])  # the top group: the factor's long portfolio
        index_rows += benchmarks.index_rows(month, column, panel, log_weights, own_long, masks, cfg.factor.n_groups)
    extra = {"rebalance_date": rebalance, **base}
    group_table = pd.concat(group_frames, ignore_index=True).assign(**extra)
    group_table = group_table[["month", "factor", *groups.GROUP_COLUMNS, "rebalance_date", "as_of", "complete"]]
    return {
        "group_returns": group_table,
        "long_short": groups.long_short(group_table).assign(as_of=base["as_of"], complete=base["complete"]),
        "style_exposure": pd.concat(style_frames, ignore_index=True),
        "factor_profile": pd.DataFrame(profiles).assign(month=month, as_of=base["as_of"], complete=base["complete"]),
        "index_pools": pd.DataFrame(index_rows, columns=benchmarks.INDEX_COLUMNS).assign(complete=base["complete"]),
    }


def write_decay(layout: Layout, month: str) -> pd.DataFrame:
    """The decay rows that close within month m's holding period, from every evaluated month's factor (decay.py)."""
    evaluated = set(layout.months_present("eval/ic"))
    history = session_calendar.months_back(month, decay.HISTORY_MONTHS, first=layout.first_month)
    sources = [k for k in history if k in evaluated]
    tables = {k: read_months(layout, "factor", [k]) for k in sources}
    bars = read_months(layout, "raw_bars/daily", _existing_months(layout, "raw_bars/daily", session_calendar.months_back(
        month, decay.HISTORY_MONTHS, forward=1)))
    start, end, _ = holding_period(bars, month)
    rows = decay.decay_rows(tables, bars, month, (start, end), ["pret", *BASELINE_COLUMNS])
    write_parquet(rows, layout.partition("eval/ic_decay", month), layout.stamp("eval", month))
    return rows


def read_evaluations(layout: Layout, through: str) -> dict[str, pd.DataFrame]:
    """Every stored evaluation table, for the months up to ``through``."""
    out = {}
    for name in EVAL_TABLES + EXTENDED_TABLES:
        months = [m for m in layout.months_present(f"eval/{name}") if m <= through]
        out[name] = read_months(layout, f"eval/{name}", months) if months else pd.DataFrame()
    if out["ic"].empty:
        raise StorageError(f"no evaluated month up to {through}: materialise factor_evaluation first")
    return out


def summaries(tables: dict[str, pd.DataFrame], cfg: Config) -> tuple[dict, dict[str, dict]]:
    ic, portfolio = tables["ic"], tables["portfolio"]
    oracle = ic[["month", "oracle_ic"]] if ic["oracle_ic"].notna().any() else None
    summary = metrics.summarize(
        ic, portfolio, tables["industry_ic"], tables["industry_long_excess"], oracle, cfg.evaluation
    )
    baselines = {}
    if not tables["baselines"].empty:
        for column, label in BASELINE_COLUMNS.items():
            rows = tables["baselines"][tables["baselines"]["factor"] == column]
            if rows.empty:
                continue
            baselines[label] = metrics.summarize(
                rows[["month", "ic", "rank_ic", "n_stocks", "as_of", "complete", "truth_corr"]],
                rows[["month", "long_return", "benchmark_return", "excess_return", "turnover", "complete"]],
                pd.DataFrame(columns=["month", "industry", "ic", "n_stocks"]),
                pd.DataFrame(columns=["month", "industry", "excess_return", "n_long"]),
                oracle,
                cfg.evaluation,
            )
            if summary["truth_corr"] and baselines[label]["truth_corr"]:
                # How docs/metrics.md compares two factors: the paired monthly difference, pRet minus this one.
                baselines[label]["truth_corr_gap"] = metrics.paired_difference(
                    summary["truth_corr_by_month"], baselines[label]["truth_corr_by_month"]
                )
    return summary, baselines


def _stock_names(layout: Layout, month: str) -> pd.Series:
    stocks = read_months(layout, "raw_bars/stocks", [month])
    return stocks.drop_duplicates("ts_code", keep="last").set_index("ts_code")["name"]


def _index_note(layout: Layout, month: str, embedded: bool) -> str:
    if layout.partition("raw_bars/index_weight", month).exists():
        return ("Each index's constituents and weights as the source published them on or before the rebalance "
                "date; the index return is their weighted return. The headline benchmark stays the equal-weight "
                "universe.")
    if embedded:
        return ("The embedded market's CSI 300, CSI 500 and CSI 1000, built from its own float caps on each "
                "rebalance date (the largest 6%, the next 10%, the next 20% of the universe), each weighted by float cap.")
    return ("This source has no index data: the headline benchmark is the equal-weight universe, and the pools "
            "below approximate the indices by their rule from float caps (the largest 6%, the next 10%, the next "
            "20% of the universe), each weighted by float cap.")


def report_data(layout: Layout, tables: dict[str, pd.DataFrame], month: str, cfg: Config) -> dict:
    """Everything the report's sections show beyond the seed's table (summaries.py), by factor label."""
    factors = report_summaries.factors_present(tables)
    labels = {f: report_summaries.FACTOR_LABELS[f] for f in factors}
    latest = str(tables["ic"]["month"].astype(str).max())
    embedded = bool(tables["ic"]["oracle_ic"].notna().any())  # only the embedded market knows its truth
    return {
        "factors": factors,
        "labels": labels,
        "n_groups": cfg.factor.n_groups,
        "groups": {labels[f]: report_summaries.group_summary(tables["group_returns"], f, cfg.evaluation) for f in factors},
        "long_short": {labels[f]: report_summaries.long_short_summary(tables["long_short"], f) for f in factors},
        "ic_stats": {labels[f]: report_summaries.ic_summary(tables, f) for f in factors},
        "yearly": ic_stats.yearly_table(tables["ic"], tables["portfolio"]),
        "decay": {labels[f]: report_summaries.decay_summary(tables["ic_decay"], f) for f in factors},
        "style": report_summaries.style_summary(tables["style_exposure"], tables["factor_profile"]),
        "cost_text": cost_text(dataclasses.asdict(cfg.evaluation)),
        "indices": {labels[f]: report_summaries.index_summary(tables["index_pools"], f) for f in factors},
        "index_note": _index_note(layout, latest, embedded),
        "holdings": report_summaries.holdings_summary(
            tables["holdings"], read_months(layout, "factor", [latest]), _stock_names(layout, latest), latest
        ),
    }


def report_images(tables: dict[str, pd.DataFrame], data: dict) -> dict[str, bytes]:
    pret = data["labels"]["pret"]
    return {
        "ic": plot_ic(tables["ic"]),
        "nav": plot_nav(tables["portfolio"]),
        "industry_ic": plot_industry_ic(tables["industry_ic"]),
        "group_means": plot_group_means({label: s["table"] for label, s in data["groups"].items()}),
        "group_value": plot_group_value(data["groups"][pret]["gross"], data["groups"][pret]["net"],
                                        f"Value of every group, {pret}"),
        "ic_histogram": plot_ic_histogram(tables["ic"]),
        "ic_heatmap": plot_ic_heatmap(tables["ic"]),
        "ic_decay": plot_ic_decay(data["decay"]),
        "style_exposure": plot_style_exposure(
            data["style"]["exposure"].rename(columns=data["labels"]).reindex(columns=list(data["labels"].values()))
        ),
    }


def write_report(layout: Layout, month: str, cfg: Config) -> dict:
    write_decay(layout, month)
    tables = read_evaluations(layout, month)
    summary, baselines = summaries(tables, cfg)
    summary["departures_from_seed"] = departures_from_seed(cfg)
    data = report_data(layout, tables, month, cfg)
    images = report_images(tables, data)
    sections = build_sections(data)
    directory = layout.reports / month
    for name, png in images.items():
        write_bytes(png, directory / f"{name}.png")
    table = format_table(summary, baselines)
    markdown = render_markdown(summary, baselines, {name: f"{name}.png" for name in images}, sections=sections)
    page = render_html(summary, baselines, images, sections=sections)
    issue_months = [m for m in layout.months_present("raw_bars/issues") if m <= month]
    if issue_months:  # a source whose reader sets irregular rows right (Tushare): what it set right, appended
        issues = read_months(layout, "raw_bars/issues", issue_months)
        markdown += data_quality_markdown(issues, month)
        page = page.replace("</body></html>", data_quality_html(issues, month) + "</body></html>")
    write_bytes(table.encode(), directory / "table.txt")
    write_bytes(markdown.encode(), directory / "report.md")
    write_bytes(page.encode(), directory / "report.html")
    write_json({"month": month, "summary": summary, "baselines": baselines}, directory / "summary.json")
    write_json({"month": month}, layout.reports / "latest.json")
    return {"markdown": directory / "report.md", "html": directory / "report.html", "table": table, "images": images,
            "headlines": headline_tables(data)}


def headline_tables(data: dict) -> dict[str, str]:
    """The headline tables as Markdown, for the Dagster UI."""
    wanted = {"Every group", "Long-short spread (diagnostic)", "IC statistics", "IC decay", "Style exposure"}
    out = {}
    for section in build_sections(data):
        if section.title in wanted:
            out[section.title] = render_markdown_section(section)
    return out


def latest_report_table(layout: Layout) -> str:
    latest = read_json(layout.reports / "latest.json")
    return (layout.reports / latest["month"] / "table.txt").read_text(encoding="utf-8")

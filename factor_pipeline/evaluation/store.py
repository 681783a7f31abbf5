"""The evaluation stage's reads and writes in the home: scoring a month into its factor table, evaluating
it, and writing the report, around the pure factor_table.py, metrics.py and report/.

R(i,m) runs from the close of d(m) to the close of d(m+1). When d(m+1) has not closed yet (the newest
month), R runs to the newest bar available and the month is marked incomplete with that "as of" date: it
supplies the report's latest IC, and is kept out of the return statistics until its month is complete.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.config import Config, departures_from_seed
from factor_pipeline.evaluation import factor_table, metrics
from factor_pipeline.evaluation.report.data_quality import data_quality_html, data_quality_markdown
from factor_pipeline.evaluation.report.plots import plot_ic, plot_industry_ic, plot_nav
from factor_pipeline.evaluation.report.render import render_html, render_markdown
from factor_pipeline.evaluation.report.tables import format_table
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


def read_evaluations(layout: Layout, through: str) -> dict[str, pd.DataFrame]:
    """Every stored evaluation table, for the months up to ``through``."""
    out = {}
    for name in EVAL_TABLES:
        months = [m for m in layout.months_present(f"eval/{name}") if m <= through]
        out[name] = read_months(layout, f"eval/{name}", months) if months else pd.DataFrame()
    if out["ic"].empty:
        raise StorageError(f"no evaluated month up to {through}: materialise factor_evaluation first")
    return out


def summaries(tables: dict[str, pd.DataFrame], cfg: Config) -> tuple[dict, dict[str, dict]]:
    ic, portfolio = tables["ic"], tables["portfolio"]
    oracle = ic[["month", "oracle_ic"]] if ic["oracle_ic"].notna().any() else None
    summary = metrics.summarize(
        ic, portfolio, tables["industry_ic"], tables["industry_long_excess"], oracle, cfg.factor.cost_per_turnover
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
                cfg.factor.cost_per_turnover,
            )
            if summary["truth_corr"] and baselines[label]["truth_corr"]:
                # How docs/metrics.md compares two factors: the paired monthly difference, pRet minus this one.
                baselines[label]["truth_corr_gap"] = metrics.paired_difference(
                    summary["truth_corr_by_month"], baselines[label]["truth_corr_by_month"]
                )
    return summary, baselines


def write_report(layout: Layout, month: str, cfg: Config) -> dict:
    tables = read_evaluations(layout, month)
    summary, baselines = summaries(tables, cfg)
    summary["departures_from_seed"] = departures_from_seed(cfg)
    images = {
        "ic": plot_ic(tables["ic"]),
        "nav": plot_nav(tables["portfolio"]),
        "industry_ic": plot_industry_ic(tables["industry_ic"]),
    }
    directory = layout.reports / month
    for name, png in images.items():
        write_bytes(png, directory / f"{name}.png")
    table = format_table(summary, baselines)
    markdown = render_markdown(summary, baselines, {name: f"{name}.png" for name in images})
    page = render_html(summary, baselines, images)
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
    return {"markdown": directory / "report.md", "html": directory / "report.html", "table": table, "images": images}


def latest_report_table(layout: Layout) -> str:
    latest = read_json(layout.reports / "latest.json")
    return (layout.reports / latest["month"] / "table.txt").read_text(encoding="utf-8")

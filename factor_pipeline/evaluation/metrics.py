"""Monthly factor evaluation and the report's summary statistics, as docs/metrics.md defines them.

Pure functions on pandas frames. ``evaluate_month`` turns one month's panel (the universe U(m) with
factor, buyable flag and forward return R(i,m)) into the rows of the ``eval.*`` tables;
``summarize`` turns the stored tables into the seed's headline figures.

Conventions that docs/metrics.md leaves open, settled here (and repeated where they apply):

* **Pairs.** Every correlation uses the stocks that have both values; a stock without R (no close at
  all after d(m)) drops out of the IC, the long return, the benchmark and the industry tables alike.
  A correlation with fewer than two pairs, or with no spread in either variable, is NaN.
* **Groups and ties.** B(m) stocks with a factor are ordered by (factor descending, ts_code
  ascending): the ts_code breaks ties so the result never depends on row order. A stock at position
  q (0-based) of the N ordered stocks is in the top group of G when q < (N - 1) / G, i.e. the top
  group holds ceil((N - 1) / G) stocks, and at least one. This is ``pandas.qcut``'s (and so
  alphalens') rule for distinct values, applied to the ordinal positions, so ties are split between
  groups by ts_code instead of making qcut's bin edges collide. Groups are near-equal: their sizes
  differ by at most one.
* **Small months.** With fewer buyable stocks than groups (1 <= N < G) the rule above makes the top
  group the single best stock; with none the long return is NaN and the month is left out of the
  return statistics.
* **Long return.** r_p(m) is the mean R over the top group's stocks that have an R; a top-group stock
  without R (delisted with no close after d(m)) is not replaced. ``n_long`` and ``top_codes`` are the
  target holdings (all of the top group), which is also what the turnover compares.
* **Industry long excess.** The top ``max(1, floor(fraction * n))`` of the industry's n buyable stocks
  under the same ordering, so "the top 20% (at least one)" of 12 stocks is 2.
* **Partial months** (``as_of`` before d(m+1)): see :func:`summarize`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from factor_pipeline.config import EvaluationConfig, FactorConfig
from factor_pipeline.evaluation.costs import net_returns
from factor_pipeline.evaluation.portfolio import (
    annualised_return,
    annualised_volatility,
    arithmetic_ir,
    group_turnover,
    max_drawdown,
    months_with_returns,
    ranked_codes,
    ratio_or_nan,
    top_fraction_size,
    top_group,
)
from factor_pipeline.market import session_calendar
from factor_pipeline.market.trading_rules import EXCLUDED_FROM_ATTRIBUTION, NOT_ATTRIBUTED
from factor_pipeline.stats import pearson

ONE_YEAR_MONTHS = 12
TOP_INDUSTRIES = 5

PANEL_COLUMNS = ("ts_code", "industry", "factor", "buyable", "fwd_return")


def pair_count(x, y) -> int:
    """The number of stocks with both values, the pairs a correlation is computed over."""
    return int((np.isfinite(np.asarray(x, dtype="float64")) & np.isfinite(np.asarray(y, dtype="float64"))).sum())


def spearman(x, y) -> float:
    """Spearman correlation: Pearson of the average ranks (docs/metrics.md), ranked within the pairs with both values."""
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    keep = np.isfinite(x) & np.isfinite(y)
    # pandas' "average" method gives tied values the mean of the ranks they span.
    return pearson(pd.Series(x[keep]).rank(method="average"), pd.Series(y[keep]).rank(method="average"))


def oracle_ic(expected: pd.Series, fwd_return: pd.Series) -> float:
    """Pearson IC of the generator's E[R(i,m)] against the realised R(i,m).

    Both Series are indexed by ts_code and aligned on it; the pairs rule is the IC's (stocks with
    both values). To compare with IC(m) over the *same* pairs, pass ``expected`` restricted to the
    stocks of U(m) that have a factor value.
    """
    expected, fwd_return = pd.Series(expected).align(pd.Series(fwd_return), join="inner")
    return pearson(expected, fwd_return)


def truth_corr(factor, expected) -> float:
    """Truth correlation(m) (docs/metrics.md): Pearson correlation of a factor with the generator's E[R(i,m)]
    over the stocks that have both. Aligned by position (or index, for two Series)."""
    if isinstance(factor, pd.Series) and isinstance(expected, pd.Series):
        factor, expected = factor.align(expected, join="inner")
    return pearson(factor, expected)


def paired_difference(a, b) -> dict:
    """Mean of the monthly differences a - b over the months with both, with its standard error
    (std of the differences, ddof = 1, over sqrt(n)): how docs/metrics.md judges two factors."""
    return mean_and_se(pd.Series(a, dtype="float64") - pd.Series(b, dtype="float64"))


def mean_and_se(values) -> dict:
    """Mean over months with its standard error (std, ddof = 1, over sqrt(n))."""
    values = pd.Series(values, dtype="float64").dropna()
    n = len(values)
    return {
        "mean": float(values.mean()) if n else math.nan,
        "se": float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        "months": n,
    }


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


@dataclass
class MonthEvaluation:
    """Everything ``evaluate_month`` computes for month m (the rows of the eval.* tables)."""

    month: str
    ic: float
    rank_ic: float
    n_stocks: int  # IC pairs: stocks of U(m) with both a factor and an R
    long_return: float
    benchmark_return: float
    excess_return: float
    turnover: float  # NaN for the first month
    n_long: int  # target holdings (the whole top group)
    top_codes: list[str] = field(default_factory=list)
    industry_ic: pd.DataFrame = field(default_factory=pd.DataFrame)  # industry, ic, n_stocks
    industry_long_excess: pd.DataFrame = field(default_factory=pd.DataFrame)  # industry, excess_return, n_long

    def ic_record(self) -> dict:
        """The IC columns of a row of eval.ic (and of eval.baselines)."""
        return {"ic": self.ic, "rank_ic": self.rank_ic, "n_stocks": self.n_stocks}

    def portfolio_record(self) -> dict:
        """The portfolio columns of a row of eval.portfolio (and of eval.baselines)."""
        return {
            "long_return": self.long_return,
            "benchmark_return": self.benchmark_return,
            "excess_return": self.excess_return,
            "turnover": self.turnover,
        }


def _check_panel(panel: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in PANEL_COLUMNS if c not in panel.columns]
    if missing:
        raise ValueError(f"evaluation panel lacks column(s) {missing}; it needs {list(PANEL_COLUMNS)}")
    if panel["ts_code"].duplicated().any():
        dup = panel.loc[panel["ts_code"].duplicated(), "ts_code"].iloc[0]
        raise ValueError(f"evaluation panel has ts_code {dup!r} twice; it must hold one row per stock of U(m)")
    panel = panel.loc[:, list(PANEL_COLUMNS)].reset_index(drop=True)
    panel["factor"] = pd.to_numeric(panel["factor"], errors="coerce").astype("float64")
    panel["fwd_return"] = pd.to_numeric(panel["fwd_return"], errors="coerce").astype("float64")
    # A missing buyable flag means we cannot show the stock was tradable: never buy it.
    panel["buyable"] = panel["buyable"].astype("boolean").fillna(False).astype(bool)
    return panel


def _industry_tables(panel: pd.DataFrame, cfg: FactorConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    ic_rows, excess_rows = [], []
    attributable = panel[panel["industry"].notna() & ~panel["industry"].isin(NOT_ATTRIBUTED)]
    for industry, sub in attributable.groupby("industry", sort=True):
        pairs = pair_count(sub["factor"], sub["fwd_return"])
        # Industries with too few pairs stay in the table with a NaN IC, so that a reader sees why
        # they are missing from the top-5 lists.
        ic = pearson(sub["factor"], sub["fwd_return"]) if pairs >= cfg.industry_min_stocks else math.nan
        ic_rows.append({"industry": industry, "ic": ic, "n_stocks": pairs})

        buyable = sub[sub["buyable"]]
        order = ranked_codes(buyable["ts_code"], buyable["factor"])
        top = order[: top_fraction_size(len(order), cfg.industry_top_fraction)]
        long = _mean(sub.loc[top, "fwd_return"])
        base = _mean(sub["fwd_return"])
        excess_rows.append({"industry": industry, "excess_return": long - base, "n_long": int(len(top))})
    industry_ic = pd.DataFrame(ic_rows, columns=["industry", "ic", "n_stocks"])
    industry_excess = pd.DataFrame(excess_rows, columns=["industry", "excess_return", "n_long"])
    return (
        industry_ic.astype({"ic": "float64", "n_stocks": "int64"}),
        industry_excess.astype({"excess_return": "float64", "n_long": "int64"}),
    )


def evaluate_month(
    month: str, panel: pd.DataFrame, prev_top_codes: list[str] | None, cfg: FactorConfig
) -> MonthEvaluation:
    """IC, RankIC, long portfolio, turnover and industry attribution of month m.

    ``panel`` has one row per stock of U(m): ts_code, industry, factor, buyable (bool: in B(m)) and
    fwd_return (R(i,m), NaN when undefined). ``prev_top_codes`` is last month's top group (None for
    the first evaluated month). Conventions: see the module docstring.

    - IC / RankIC: Pearson / Spearman (average ranks) over U(m)'s pairs with both factor and R.
    - Long: the top of ``cfg.n_groups`` groups of the buyable stocks with a factor; r_p = mean R of
      its stocks that have one. A stock of U(m) that is not buyable is in the benchmark and the IC
      but never in the long group.
    - Benchmark: mean R over U(m) (stocks with R). Excess = long - benchmark.
    - Industry IC needs ``cfg.industry_min_stocks`` pairs; industry long excess takes the top
      ``cfg.industry_top_fraction`` (at least one) of the industry's buyable stocks minus the
      industry's U(m) mean. Conglomerates and unclassified stocks are left out of both industry tables.
    """
    panel = _check_panel(panel)
    ic = pearson(panel["factor"], panel["fwd_return"])
    rank_ic = spearman(panel["factor"], panel["fwd_return"])

    top_codes = top_group(panel, cfg.n_groups)
    long_return = _mean(panel.loc[panel["ts_code"].astype(str).isin(top_codes), "fwd_return"])
    benchmark = _mean(panel["fwd_return"])

    industry_ic, industry_excess = _industry_tables(panel, cfg)
    return MonthEvaluation(
        month=month,
        ic=ic,
        rank_ic=rank_ic,
        n_stocks=pair_count(panel["factor"], panel["fwd_return"]),
        long_return=long_return,
        benchmark_return=benchmark,
        excess_return=long_return - benchmark,
        turnover=group_turnover(top_codes, prev_top_codes),
        n_long=len(top_codes),
        top_codes=top_codes,
        industry_ic=industry_ic,
        industry_long_excess=industry_excess,
    )


def icir(ic) -> float:
    """mean(IC) / std(IC, ddof = 1), not annualised."""
    values = months_with_returns(ic)
    if len(values) < 2:
        return math.nan
    return ratio_or_nan(float(values.mean()), float(values.std(ddof=1)))


def _sorted_by_month(frame: pd.DataFrame) -> pd.DataFrame:
    if "month" not in frame.columns:
        raise ValueError("summary tables need a 'month' column")
    return frame.sort_values("month", kind="mergesort").reset_index(drop=True)


def _complete_mask(frame: pd.DataFrame) -> pd.Series:
    if "complete" not in frame.columns:
        return pd.Series(True, index=frame.index)
    return frame["complete"].astype("boolean").fillna(False).astype(bool)


def one_year_window(months: pd.Series, latest: str, n: int = ONE_YEAR_MONTHS) -> pd.Series:
    """Months within the ``n`` calendar months ending at ``latest`` (inclusive)."""
    first = (pd.Period(latest, freq="M") - (n - 1)).strftime("%Y-%m")
    return (months >= first) & (months <= latest)


def _top(values: pd.Series, n: int = TOP_INDUSTRIES) -> list[tuple[str, float]]:
    """The ``n`` largest values as (industry, value), ties broken by industry name."""
    frame = values.dropna().rename("value").rename_axis("industry").reset_index()
    frame = frame.sort_values(["value", "industry"], ascending=[False, True], kind="mergesort")
    return [(str(k), float(v)) for k, v in frame.head(n).itertuples(index=False)]


def _industry_tops(table: pd.DataFrame, column: str, latest: str | None) -> tuple[list, list]:
    if latest is None or table is None or len(table) == 0:
        return [], []
    table = table[table["industry"] != EXCLUDED_FROM_ATTRIBUTION]
    months = table["month"].astype(str)
    latest_values = table[months == latest].set_index("industry")[column]
    year = table[one_year_window(months, latest)].groupby("industry")[column].mean()  # NaN months skipped
    return _top(latest_values), _top(year)


def _as_of_text(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def summarize(
    ic: pd.DataFrame,
    portfolio: pd.DataFrame,
    industry_ic: pd.DataFrame,
    industry_excess: pd.DataFrame,
    oracle: pd.DataFrame | None = None,
    costs: EvaluationConfig | None = None,
    *,
    include_partial_ic: bool = True,
) -> dict:
    """The seed report's figures from the eval tables.

    ``ic``: month, ic, rank_ic, n_stocks, as_of[, complete]; ``portfolio``: month, long_return,
    benchmark_return, excess_return, turnover[, complete] (``ic`` may add truth_corr, the synthetic market's
    truth correlation, summarised as its mean and standard error); ``industry_ic``: month, industry, ic;
    ``industry_excess``: month, industry, excess_return; ``oracle``: month, oracle_ic. ``complete``
    is False for a month whose R stops before d(m+1) (the as-of month); without the column every
    month counts as complete.

    Partial months:
    - IC family (ic_mean, rank_ic_mean, icir, one_year_ic, latest_ic, industry tables): included,
      as in the seed, whose latest IC and one-year IC contain the partial month. Set
      ``include_partial_ic=False`` to keep them out of the means (the latest IC is still reported).
    - Return statistics (annual return and volatility, IR, drawdown, excess, net of cost): complete
      months only, because annualising counts each month as a full month's holding.
    - Turnover: every month with a turnover (it is fixed at the rebalance, before any return).

    Windows: "one year" is the 12 calendar months ending at the latest month; NaN values (months
    whose IC is undefined) are skipped in every mean. ``max_drawdown`` is a positive fraction.
    Net of cost: r_p(m) less the month's A-share trading cost under ``costs`` (evaluation/costs.py; the
    defaults when None); the first month, whose turnover is NaN, buys the portfolio from cash.
    """
    ic = _sorted_by_month(ic.copy())
    ic["month"] = ic["month"].astype(str)
    portfolio = _sorted_by_month(portfolio.copy())
    portfolio["month"] = portfolio["month"].astype(str)

    ic_complete = _complete_mask(ic)
    latest = ic.iloc[-1] if len(ic) else None
    latest_month = str(latest["month"]) if latest is not None else None
    ic_used = ic if include_partial_ic else ic[ic_complete]
    ic_values = ic_used["ic"].astype("float64")
    months = ic_used["month"]

    summary: dict = {
        "n_months": int(ic_values.notna().sum()),
        "first_month": str(ic["month"].iloc[0]) if len(ic) else None,
        "last_month": latest_month,
        "ic_mean": _mean(ic_values),
        "rank_ic_mean": _mean(ic_used["rank_ic"].astype("float64")),
        "ic_std": float(ic_values.std(ddof=1)) if ic_values.notna().sum() >= 2 else math.nan,
        "icir": icir(ic_values),
        "rank_icir": icir(ic_used["rank_ic"].astype("float64")),
        "one_year_ic": _mean(ic_values[one_year_window(months, latest_month)]) if latest_month else math.nan,
        "latest_month": latest_month,
        "latest_ic": float(latest["ic"]) if latest is not None else math.nan,
        "latest_rank_ic": float(latest["rank_ic"]) if latest is not None else math.nan,
        "latest_as_of": _as_of_text(latest.get("as_of")) if latest is not None else None,
        "latest_complete": bool(ic_complete.iloc[-1]) if latest is not None else None,
        "ic_positive_share": float((ic_values.dropna() > 0).mean()) if ic_values.notna().any() else math.nan,
        "partial_in_ic": bool(include_partial_ic),
    }

    if "turnover" not in portfolio.columns:
        portfolio["turnover"] = math.nan
    summary["turnover"] = _mean(portfolio["turnover"].astype("float64"))

    done = portfolio[_complete_mask(portfolio)]
    long = done.set_index("month")["long_return"].astype("float64")
    excess = done.set_index("month")["excess_return"].astype("float64")
    bench = done.set_index("month")["benchmark_return"].astype("float64")
    annual = annualised_return(long)
    vol = annualised_volatility(long)
    net = net_long_returns(portfolio, costs or EvaluationConfig()).reindex(long.index)
    summary.update(
        {
            "n_return_months": int(long.notna().sum()),
            "return_first_month": str(long.dropna().index[0]) if long.notna().any() else None,
            "return_last_month": str(long.dropna().index[-1]) if long.notna().any() else None,
            "annual_return": annual,
            "annual_volatility": vol,
            "ir": ratio_or_nan(annual, vol),
            "max_drawdown": max_drawdown(long),
            "annual_excess_return": annualised_return(excess),
            "excess_ir": arithmetic_ir(excess),
            "excess_max_drawdown": max_drawdown(excess),
            "benchmark_annual_return": annualised_return(bench),
            "costs": {"commission": (costs or EvaluationConfig()).commission, "slippage": (costs or EvaluationConfig()).slippage},
            "net_annual_return": annualised_return(net),
        }
    )

    ic_latest, ic_year = _industry_tops(industry_ic, "ic", latest_month)
    ex_latest, ex_year = _industry_tops(industry_excess, "excess_return", latest_month)
    summary.update(
        {
            "industry_ic_latest": ic_latest,
            "industry_ic_1y": ic_year,
            "industry_excess_latest": ex_latest,
            "industry_excess_1y": ex_year,
        }
    )

    # The synthetic market's truth: judged first (docs/metrics.md); None with input files, which have no truth.
    has_truth = "truth_corr" in ic_used.columns and ic_used["truth_corr"].notna().any()
    summary["truth_corr"] = mean_and_se(ic_used["truth_corr"]) if has_truth else None
    summary["truth_corr_by_month"] = (
        ic_used.set_index("month")["truth_corr"].astype("float64").dropna().to_dict() if has_truth else None
    )

    summary["oracle_ic_mean"] = None
    summary["efficiency"] = None
    if oracle is not None and len(oracle):
        joined = ic_used[["month", "ic"]].merge(
            oracle[["month", "oracle_ic"]].astype({"month": str}), on="month", how="inner"
        ).dropna()
        # Efficiency compares like with like: both means over the months that have both ICs.
        oracle_mean = _mean(joined["oracle_ic"])
        summary["oracle_ic_mean"] = oracle_mean
        summary["efficiency"] = ratio_or_nan(_mean(joined["ic"]), oracle_mean)
    return summary


def net_long_returns(portfolio: pd.DataFrame, costs: EvaluationConfig) -> pd.Series:
    """The top group's monthly return less its trading cost (evaluation/costs.py), indexed by month; the first
    month, whose turnover is NaN, buys the group from cash."""
    frame = portfolio.sort_values("month", kind="mergesort")
    months = frame["month"].astype(str)
    frame = pd.DataFrame(
        {
            "mean_return": frame["long_return"].to_numpy(dtype="float64"),
            "turnover": frame["turnover"].to_numpy(dtype="float64"),
            "rebalance_date": [session_calendar.rebalance_date(m) for m in months],
        },
        index=months.to_numpy(),
    )
    return net_returns(frame, costs)

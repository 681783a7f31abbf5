"""evaluation.py against independent implementations on generated data.

References and how their conventions are reconciled with docs/metrics.md:

* alphalens-reloaded 0.5.1 (runs under pandas 3.1.1):
  - ``factor_information_coefficient`` is Spearman only (``scipy.stats.spearmanr``, average ranks),
    so it checks RankIC; Pearson IC is checked with ``scipy.stats.pearsonr``. alphalens drops rows
    with a NaN forward return before computing (``get_clean_factor``); the tests build its
    factor_data from the same pairs.
  - ``by_group=True`` gives Spearman IC per industry; our industry IC is Pearson. The test feeds
    our function within-industry ranks (distinct integers), on which Pearson equals Spearman.
    ``group_adjust=True`` demeans returns within the industry, which leaves a within-industry
    correlation unchanged; the test uses it to show that.
  - ``quantize_factor`` uses ``pd.qcut`` on factor values: its top bin of N distinct values holds
    ceil((N - 1) / G) stocks, our rule. With ties qcut's edges collide (it raises or merges bins);
    the test then hands alphalens our ordinal positions (factor desc, ts_code asc) as the factor.
    Groups are formed on B(m) before looking at R, so the tests quantize first and only then let
    ``mean_return_by_quantile`` average R (its groupby mean skips a NaN R, as r_p does).
  - ``quantile_turnover`` is new names / names now; equal to 0.5 * sum|dw| when the top group keeps
    its size, which the test arranges; unequal sizes are checked by hand.
  - Industry long excess (top 20%) vs ``quantize_factor(quantiles=5, by_group=True)``: qcut's top
    fifth is ceil((n - 1) / 5), ours max(1, floor(0.2 n)); they agree when n is a multiple of 5,
    which the test uses; other sizes are hand-checked.
* empyrical-reloaded 0.7.1: ``annual_return(period='monthly')`` is the same geometric
  prod(1+r)^(12/n) - 1 and ``annual_volatility`` the same std(ddof=1)*sqrt(12). ``max_drawdown`` is
  negative (we report a positive fraction) and anchors the running peak at the start value, as our
  NAV(0) = 1 does. empyrical treats a NaN return as 0 but still counts it in n; we drop NaN months,
  so the tests pass empyrical the returns without NaN.
"""

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
from alphalens import performance as al_perf
from alphalens import utils as al_utils
from scipy import stats

from factor_pipeline.config import FactorConfig
from factor_pipeline.evaluation.metrics import MonthEvaluation, evaluate_month, oracle_ic, summarize
from factor_pipeline.evaluation.portfolio import group_turnover, top_group_size

CFG = FactorConfig()
INDUSTRIES = ["Banks", "Steel", "Media", "Coal", "Retail"]


def make_panel(n=300, seed=0, signal=0.3, industries=INDUSTRIES, nan_r=0.02, not_buyable=0.05):
    rng = np.random.default_rng(seed)
    codes = [f"{600000 + i}.SH" for i in range(n)]
    factor = rng.normal(size=n)
    fwd = signal * 0.05 * factor + rng.normal(0, 0.08, n)
    fwd[rng.random(n) < nan_r] = np.nan  # no close at all after d(m)
    return pd.DataFrame(
        {
            "ts_code": codes,
            "industry": rng.choice(industries, n),
            "factor": factor,
            "buyable": rng.random(n) >= not_buyable,
            "fwd_return": fwd,
        }
    )


def month_end(month):
    return pd.Period(month, freq="M").to_timestamp(how="end").normalize()


def al_frame(panels: dict, column="factor"):
    """alphalens factor_data (date, asset) with forward return column '1D' and 'group'."""
    frames = []
    for month, p in panels.items():
        idx = pd.MultiIndex.from_arrays([[month_end(month)] * len(p), p["ts_code"].to_numpy()], names=["date", "asset"])
        frames.append(
            pd.DataFrame(
                {"1D": p["fwd_return"].to_numpy(), "factor": p[column].to_numpy(), "group": p["industry"].to_numpy()},
                index=idx,
            )
        )
    return pd.concat(frames)


def test_factor_equal_to_return_has_ic_one_and_reversed_minus_one():
    panel = make_panel(seed=1)
    panel["factor"] = panel["fwd_return"].fillna(0.0)
    panel.loc[panel["fwd_return"].isna(), "factor"] = np.nan
    result = evaluate_month("2024-01", panel, None, CFG)
    assert result.ic == pytest.approx(1.0) and result.rank_ic == pytest.approx(1.0)
    panel["factor"] = -panel["factor"]
    result = evaluate_month("2024-01", panel, None, CFG)
    assert result.ic == pytest.approx(-1.0) and result.rank_ic == pytest.approx(-1.0)


def test_ic_and_rank_ic_against_scipy_and_alphalens():
    panels = {f"2024-{m:02d}": make_panel(seed=m) for m in range(1, 7)}
    for p in panels.values():
        p.loc[p.index[:4], "factor"] = np.nan  # a stock without a factor is not a pair either
    ours = {m: evaluate_month(m, p, None, CFG) for m, p in panels.items()}

    data = al_frame(panels).dropna(subset=["1D", "factor"])  # alphalens' clean factor_data
    al_ic = al_perf.factor_information_coefficient(data)["1D"]
    for month, p in panels.items():
        pairs = p.dropna(subset=["factor", "fwd_return"])
        assert ours[month].n_stocks == len(pairs)
        assert ours[month].ic == pytest.approx(stats.pearsonr(pairs.factor, pairs.fwd_return)[0], abs=1e-12)
        assert ours[month].rank_ic == pytest.approx(al_ic.loc[month_end(month)], abs=1e-12)


def test_rank_ic_with_ties_uses_average_ranks():
    panel = make_panel(n=200, seed=7)
    panel["factor"] = np.round(panel["factor"], 0)  # a handful of distinct values: many ties
    panel["fwd_return"] = np.round(panel["fwd_return"], 2)
    result = evaluate_month("2024-02", panel, None, CFG)
    pairs = panel.dropna(subset=["factor", "fwd_return"])
    assert result.rank_ic == pytest.approx(stats.spearmanr(pairs.factor, pairs.fwd_return)[0], abs=1e-12)
    al = al_perf.factor_information_coefficient(al_frame({"2024-02": pairs}))["1D"].iloc[0]
    assert result.rank_ic == pytest.approx(al, abs=1e-12)


def test_undefined_correlations_are_nan():
    panel = make_panel(n=5, seed=3)
    panel["factor"] = 1.0  # no spread
    result = evaluate_month("2024-03", panel, None, CFG)
    assert math.isnan(result.ic) and math.isnan(result.rank_ic)
    panel = make_panel(n=3, seed=3, nan_r=0.0)
    panel.loc[1:, "fwd_return"] = np.nan  # a single pair
    result = evaluate_month("2024-03", panel, None, CFG)
    assert math.isnan(result.ic) and result.n_stocks == 1


def test_oracle_ic_aligns_on_ts_code_and_uses_pairs():
    panel = make_panel(seed=5)
    expected = pd.Series(panel["factor"].to_numpy() * 0.01, index=panel["ts_code"]).iloc[::-1]
    expected.iloc[:3] = np.nan
    fwd = pd.Series(panel["fwd_return"].to_numpy(), index=panel["ts_code"])
    joined = pd.concat([expected.rename("e"), fwd.rename("r")], axis=1).dropna()
    assert oracle_ic(expected, fwd) == pytest.approx(stats.pearsonr(joined.e, joined.r)[0], abs=1e-12)


@pytest.mark.parametrize("n_buyable", [7, 10, 11, 37, 100, 101, 105, 299])
def test_top_group_matches_alphalens_quantiles(n_buyable):
    panel = make_panel(n=n_buyable + 20, seed=n_buyable, not_buyable=0.0, nan_r=0.1)
    panel.loc[panel.index[n_buyable:], "buyable"] = False
    result = evaluate_month("2024-04", panel, None, CFG)

    buyable = panel[panel["buyable"]]
    data = al_frame({"2024-04": buyable})
    # Quantize on the factor alone (B(m), NaN R included), then average R; see the module docstring.
    data["factor_quantile"] = al_utils.quantize_factor(data, quantiles=CFG.n_groups)
    top = data[data["factor_quantile"] == CFG.n_groups].index.get_level_values("asset")
    assert sorted(result.top_codes) == sorted(top)
    assert result.n_long == len(top) == top_group_size(n_buyable, CFG.n_groups)
    mean_ret, _ = al_perf.mean_return_by_quantile(data, by_date=True, demeaned=False)
    assert result.long_return == pytest.approx(mean_ret["1D"].loc[(CFG.n_groups, month_end("2024-04"))], abs=1e-14, nan_ok=True)
    # Benchmark: every stock of U(m) with an R, buyable or not.
    assert result.benchmark_return == pytest.approx(np.nanmean(panel["fwd_return"]), abs=1e-14)
    assert result.excess_return == pytest.approx(result.long_return - result.benchmark_return, nan_ok=True)


def test_fewer_buyable_stocks_than_groups_and_none():
    panel = make_panel(n=30, seed=9, nan_r=0.0)
    panel["buyable"] = False
    best = panel.iloc[[2, 5, 8, 11, 14, 17, 20]]
    panel.loc[best.index, "buyable"] = True
    result = evaluate_month("2024-05", panel, None, CFG)
    winner = best.sort_values("factor", ascending=False).iloc[0]
    assert result.top_codes == [winner.ts_code] and result.n_long == 1
    assert result.long_return == pytest.approx(winner.fwd_return)

    panel["buyable"] = False
    result = evaluate_month("2024-05", panel, ["600000.SH"], CFG)
    assert result.top_codes == [] and result.n_long == 0
    assert math.isnan(result.long_return) and math.isnan(result.excess_return)
    assert result.benchmark_return == pytest.approx(panel["fwd_return"].mean())
    assert result.turnover == pytest.approx(0.5)  # sold everything into cash: 0.5 * sum |0 - w|


def test_ties_are_broken_by_ts_code_whatever_the_row_order():
    panel = make_panel(n=40, seed=11, not_buyable=0.0, nan_r=0.0)
    panel["factor"] = np.where(panel.index < 25, 1.0, 0.0)  # 25 stocks tie at the top
    expected = sorted(panel["ts_code"][:25])[: top_group_size(40, CFG.n_groups)]
    for seed in range(3):
        shuffled = panel.sample(frac=1, random_state=seed)
        assert evaluate_month("2024-06", shuffled, None, CFG).top_codes == expected

    # alphalens cannot bin the tied values (qcut's edges collide); fed our ordinal positions it agrees.
    order = panel.sort_values(["factor", "ts_code"], ascending=[False, True]).reset_index(drop=True)
    order["factor"] = -np.arange(len(order), dtype=float)
    data = al_frame({"2024-06": order})
    with pytest.raises(ValueError):
        al_utils.quantize_factor(al_frame({"2024-06": panel}), quantiles=CFG.n_groups)
    q = al_utils.quantize_factor(data, quantiles=CFG.n_groups)
    assert sorted(q[q == CFG.n_groups].index.get_level_values("asset")) == expected


def test_not_buyable_stock_is_in_universe_and_benchmark_but_never_long():
    panel = make_panel(n=50, seed=12, not_buyable=0.0, nan_r=0.0)
    star = panel["factor"].idxmax()
    panel.loc[star, "buyable"] = False  # suspended or limit-up at d(m)
    panel.loc[star, "fwd_return"] = 0.5
    result = evaluate_month("2024-07", panel, None, CFG)
    assert panel.loc[star, "ts_code"] not in result.top_codes
    assert result.n_stocks == 50
    assert result.benchmark_return == pytest.approx(panel["fwd_return"].mean())
    panel.loc[star, "fwd_return"] = -0.5
    moved = evaluate_month("2024-07", panel, None, CFG)
    assert moved.benchmark_return == pytest.approx(result.benchmark_return - 1.0 / 50)
    assert moved.long_return == result.long_return and moved.top_codes == result.top_codes


def test_delisted_stock_without_return_is_excluded_consistently():
    panel = make_panel(n=100, seed=13, not_buyable=0.0, nan_r=0.0)
    result = evaluate_month("2024-08", panel, None, CFG)
    gone = result.top_codes[0]
    panel.loc[panel.ts_code == gone, "fwd_return"] = np.nan  # delisted with no close after d(m)
    after = evaluate_month("2024-08", panel, None, CFG)
    # Still held (the choice was made at d(m)), not replaced; its missing R counts nowhere.
    assert after.top_codes == result.top_codes and after.n_long == result.n_long
    kept = panel[panel.ts_code.isin(result.top_codes) & (panel.ts_code != gone)]
    assert after.long_return == pytest.approx(kept.fwd_return.mean())
    assert after.benchmark_return == pytest.approx(panel.fwd_return.dropna().mean())
    assert after.n_stocks == 99
    ind = panel.loc[panel.ts_code == gone, "industry"].iloc[0]
    row = after.industry_ic.set_index("industry").loc[ind]
    assert row.n_stocks == (panel[panel.industry == ind].fwd_return.notna()).sum()
    # A delisted stock whose last close is known simply has that R: nothing special.
    panel.loc[panel.ts_code == gone, "fwd_return"] = -0.3
    assert evaluate_month("2024-08", panel, None, CFG).long_return == pytest.approx(
        panel[panel.ts_code.isin(result.top_codes)].fwd_return.mean()
    )


def test_turnover_against_alphalens_and_by_hand():
    rng = np.random.default_rng(14)
    base = make_panel(n=100, seed=14, not_buyable=0.0, nan_r=0.0)
    panels, results, prev = {}, [], None
    for i, month in enumerate(["2024-01", "2024-02", "2024-03", "2024-04"]):
        p = base.copy()
        p["factor"] = base["factor"] + rng.normal(0, 0.7, len(p))  # a persistent factor
        panels[month] = p
        results.append(evaluate_month(month, p, prev, CFG))
        prev = results[-1].top_codes
    assert math.isnan(results[0].turnover)
    data = al_frame(panels)
    data["factor_quantile"] = al_utils.quantize_factor(data, quantiles=CFG.n_groups)
    al_turn = al_perf.quantile_turnover(data["factor_quantile"], CFG.n_groups).dropna()
    np.testing.assert_allclose([r.turnover for r in results[1:]], al_turn.to_numpy())
    assert 0 < al_turn.mean() < 1

    # Unequal sizes: 4 names at 1/4 -> 5 names at 1/5 sharing 3.
    prev4, cur5 = ["a", "b", "c", "d"], ["a", "b", "c", "e", "f"]
    expected = 0.5 * (3 * (0.25 - 0.2) + 0.25 + 2 * 0.2)
    assert group_turnover(cur5, prev4) == pytest.approx(expected)
    assert group_turnover(cur5, cur5) == 0.0 and group_turnover(["x"], ["y"]) == 1.0
    assert math.isnan(group_turnover(cur5, None))


def test_industry_ic_against_scipy_and_alphalens_by_group():
    sizes = {"Banks": 40, "Steel": 25, "Media": 10, "Coal": 9, "Conglomerates": 30}
    industries = [k for k, n in sizes.items() for _ in range(n)]
    rng = np.random.default_rng(15)
    panel = make_panel(n=len(industries), seed=15, nan_r=0.0)
    panel["industry"] = rng.permutation(industries)
    result = evaluate_month("2024-09", panel, None, CFG)
    table = result.industry_ic.set_index("industry")

    assert "Conglomerates" not in table.index
    assert math.isnan(table.loc["Coal", "ic"]) and table.loc["Coal", "n_stocks"] == 9  # below 10 pairs
    assert np.isfinite(table.loc["Media", "ic"])  # exactly 10 pairs
    for k in ("Banks", "Steel", "Media"):
        sub = panel[panel.industry == k]
        assert table.loc[k, "ic"] == pytest.approx(stats.pearsonr(sub.factor, sub.fwd_return)[0], abs=1e-12)

    # alphalens by_group is Spearman: give both sides within-industry ranks, where Pearson = Spearman.
    ranked = panel.copy()
    ranked["factor"] = ranked.groupby("industry")["factor"].rank()
    ranked["fwd_return"] = ranked.groupby("industry")["fwd_return"].rank()
    ours = evaluate_month("2024-09", ranked, None, CFG).industry_ic.set_index("industry")["ic"]
    for adjust in (False, True):  # demeaning within the industry does not change the correlation
        al = al_perf.factor_information_coefficient(al_frame({"2024-09": panel}), group_adjust=adjust, by_group=True)
        al = al["1D"].droplevel("date")
        for k in ("Banks", "Steel", "Media"):
            assert ours[k] == pytest.approx(al[k], abs=1e-12)


def test_industry_long_excess_against_alphalens_and_by_hand():
    sizes = {"Banks": 40, "Steel": 25, "Media": 10, "Conglomerates": 20}
    industries = [k for k, n in sizes.items() for _ in range(n)]
    panel = make_panel(n=len(industries), seed=16, nan_r=0.0, not_buyable=0.0)
    panel["industry"] = np.random.default_rng(16).permutation(industries)
    result = evaluate_month("2024-10", panel, None, CFG)
    table = result.industry_long_excess.set_index("industry")
    assert "Conglomerates" not in table.index

    data = al_frame({"2024-10": panel})
    data["factor_quantile"] = al_utils.quantize_factor(data, quantiles=5, by_group=True)
    mean_ret, _ = al_perf.mean_return_by_quantile(data, by_date=True, by_group=True, group_adjust=True)
    for k, n in sizes.items():
        if k == "Conglomerates":
            continue
        assert table.loc[k, "n_long"] == n // 5
        assert table.loc[k, "excess_return"] == pytest.approx(mean_ret["1D"].loc[(5, month_end("2024-10"), k)], abs=1e-14)

    # By hand: 12 stocks, 3 of them not buyable (among them the best); top 20% of 9 buyable = 1.
    hand = pd.DataFrame(
        {
            "ts_code": [f"{i:06d}.SZ" for i in range(12)],
            "industry": "Steel",
            "factor": np.arange(12, 0, -1, dtype=float),
            "buyable": [False, True, True, False] + [True] * 7 + [False],
            "fwd_return": np.linspace(0.10, -0.01, 12),
        }
    )
    hand.loc[5, "fwd_return"] = np.nan
    row = evaluate_month("2024-10", hand, None, CFG).industry_long_excess.set_index("industry").loc["Steel"]
    assert row.n_long == 1
    assert row.excess_return == pytest.approx(hand.fwd_return[1] - hand.fwd_return.mean())


def test_month_evaluation_records():
    result = evaluate_month("2024-11", make_panel(seed=17), None, CFG)
    assert isinstance(result, MonthEvaluation)
    assert result.ic_record() == {"ic": result.ic, "rank_ic": result.rank_ic, "n_stocks": result.n_stocks}
    assert list(result.portfolio_record()) == ["long_return", "benchmark_return", "excess_return", "turnover"]
    with pytest.raises(ValueError, match="twice"):
        evaluate_month("2024-11", pd.concat([make_panel(n=3), make_panel(n=3)]), None, CFG)
    with pytest.raises(ValueError, match="buyable"):
        evaluate_month("2024-11", make_panel(n=3).drop(columns="buyable"), None, CFG)


def _tables(n_months=15, seed=19):
    rng = np.random.default_rng(seed)
    months = [str(p) for p in pd.period_range("2024-01", periods=n_months, freq="M")]
    ic = pd.DataFrame(
        {
            "month": months,
            "ic": rng.normal(0.08, 0.1, n_months),
            "rank_ic": rng.normal(0.09, 0.1, n_months),
            "n_stocks": 300,
            "as_of": [month_end(str(pd.Period(m, freq="M") + 1)) for m in months],
            "complete": [True] * (n_months - 1) + [False],
        }
    )
    ic.loc[n_months - 1, "as_of"] = pd.Timestamp("2025-04-25")
    long = rng.normal(0.025, 0.07, n_months)
    bench = rng.normal(0.01, 0.06, n_months)
    portfolio = pd.DataFrame(
        {
            "month": months,
            "long_return": long,
            "benchmark_return": bench,
            "excess_return": long - bench,
            "turnover": np.r_[np.nan, rng.uniform(0.6, 0.9, n_months - 1)],
            "complete": ic["complete"],
        }
    )
    rows = []
    for m in months:
        for k in INDUSTRIES + ["Conglomerates"]:
            rows.append({"month": m, "industry": k, "ic": rng.normal(0.05, 0.1), "excess_return": rng.normal(0.0, 0.02)})
    industry = pd.DataFrame(rows)
    industry.loc[(industry.month == months[-1]) & (industry.industry == "Conglomerates"), ["ic", "excess_return"]] = 9.0
    industry.loc[(industry.month == months[-1]) & (industry.industry == "Coal"), "ic"] = np.nan  # too few stocks
    return ic, portfolio, industry


def test_summary_against_empyrical_and_definitions():
    ic, portfolio, industry = _tables()
    # Shuffled rows: the summary orders by month itself.
    s = summarize(ic.sample(frac=1, random_state=0), portfolio.sample(frac=1, random_state=1),
                  industry[["month", "industry", "ic"]], industry[["month", "industry", "excess_return"]])
    done = portfolio[portfolio.complete]

    assert s["ic_mean"] == pytest.approx(ic.ic.mean())  # the partial month is in the IC family
    assert s["rank_ic_mean"] == pytest.approx(ic.rank_ic.mean())
    assert s["icir"] == pytest.approx(ic.ic.mean() / ic.ic.std(ddof=1))
    assert s["one_year_ic"] == pytest.approx(ic.ic.iloc[-12:].mean())
    assert s["latest_ic"] == pytest.approx(ic.ic.iloc[-1])
    assert (s["latest_month"], s["latest_as_of"], s["latest_complete"]) == ("2025-03", "2025-04-25", False)
    assert s["n_months"] == 15 and s["n_return_months"] == 14
    assert s["turnover"] == pytest.approx(portfolio.turnover.mean())

    assert s["annual_return"] == pytest.approx(empyrical.annual_return(done.long_return, period="monthly"))
    assert s["annual_volatility"] == pytest.approx(empyrical.annual_volatility(done.long_return, period="monthly"))
    assert s["ir"] == pytest.approx(s["annual_return"] / s["annual_volatility"])
    assert s["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(done.long_return))
    assert s["annual_excess_return"] == pytest.approx(empyrical.annual_return(done.excess_return, period="monthly"))
    e = done.excess_return
    assert s["excess_ir"] == pytest.approx(e.mean() * 12 / (e.std(ddof=1) * math.sqrt(12)))
    # A-share costs (docs/market.md), by hand: buys and sells of tau each at commission + slippage, sells also
    # paying the 5 bp stamp duty of these months; the first month buys the whole group from cash.
    side = 0.00025 + 0.0005
    tau = done.turnover.to_numpy()
    cost = np.where(np.isnan(tau), side, tau * side + tau * (side + 0.0005))
    net = done.long_return - cost
    assert s["net_annual_return"] == pytest.approx(empyrical.annual_return(net, period="monthly"))
    assert s["oracle_ic_mean"] is None and s["efficiency"] is None

    # Top 5 industries: Conglomerates never, a NaN (too few stocks) never, ties by value then name.
    last = industry[(industry.month == "2025-03") & (industry.industry != "Conglomerates")].dropna(subset=["ic"])
    expected = last.sort_values("ic", ascending=False)[["industry", "ic"]].head(5)
    assert s["industry_ic_latest"] == [tuple(r) for r in expected.itertuples(index=False)]
    assert len(s["industry_ic_latest"]) == 4  # Coal is NaN and Conglomerates excluded
    year = industry[(industry.month >= "2024-04") & (industry.industry != "Conglomerates")]
    year_mean = year.groupby("industry")["excess_return"].mean().sort_values(ascending=False).head(5)
    assert [k for k, _ in s["industry_excess_1y"]] == list(year_mean.index)
    assert [v for _, v in s["industry_excess_1y"]] == pytest.approx(year_mean.to_list())
    assert [k for k, _ in s["industry_excess_latest"]][0] != "Conglomerates"


def test_summary_partial_ic_switch_and_oracle_efficiency():
    ic, portfolio, industry = _tables(seed=20)
    oracle = pd.DataFrame({"month": ic.month, "oracle_ic": ic.ic * 0 + 0.2})
    oracle.loc[0, "oracle_ic"] = np.nan  # a month without oracle: both means skip it
    s = summarize(ic, portfolio, industry[["month", "industry", "ic"]], industry[["month", "industry", "excess_return"]],
                  oracle=oracle)
    assert s["oracle_ic_mean"] == pytest.approx(0.2)
    assert s["efficiency"] == pytest.approx(ic.ic.iloc[1:].mean() / 0.2)

    s = summarize(ic, portfolio, industry, industry, include_partial_ic=False)
    assert s["ic_mean"] == pytest.approx(ic.ic.iloc[:-1].mean())
    assert s["latest_ic"] == pytest.approx(ic.ic.iloc[-1])  # still reported
    # Without a complete column every month counts.
    s = summarize(ic.drop(columns="complete"), portfolio.drop(columns="complete"), industry, industry)
    assert s["n_return_months"] == 15 and s["latest_complete"] is True


def test_summary_from_evaluate_month_end_to_end():
    rows_ic, rows_pf, ind_ic, ind_ex, prev = [], [], [], [], None
    months = [str(p) for p in pd.period_range("2023-01", periods=14, freq="M")]
    for i, m in enumerate(months):
        r = evaluate_month(m, make_panel(seed=100 + i, industries=INDUSTRIES + ["Conglomerates"]), prev, CFG)
        prev = r.top_codes
        rows_ic.append({"month": m, **r.ic_record(), "as_of": month_end(m), "complete": True})
        rows_pf.append({"month": m, **r.portfolio_record(), "complete": True})
        ind_ic.append(r.industry_ic.assign(month=m))
        ind_ex.append(r.industry_long_excess.assign(month=m))
    s = summarize(pd.DataFrame(rows_ic), pd.DataFrame(rows_pf), pd.concat(ind_ic), pd.concat(ind_ex))
    assert s["n_months"] == 14 and s["ic_mean"] > 0
    assert 0 < s["turnover"] <= 1
    assert len(s["industry_ic_latest"]) == 5 and all(k != "Conglomerates" for k, _ in s["industry_ic_1y"])


def test_top_industries_tie_break_by_name_and_short_history():
    ic = pd.DataFrame({"month": ["2024-01", "2024-02"], "ic": [0.1, 0.2], "rank_ic": [0.1, 0.2], "n_stocks": 50,
                       "as_of": [month_end("2024-02"), month_end("2024-03")]})
    pf = pd.DataFrame({"month": ic.month, "long_return": [0.01, 0.02], "benchmark_return": 0.0,
                       "excess_return": [0.01, 0.02], "turnover": [np.nan, 0.4]})
    ind = pd.DataFrame({"month": ["2024-02"] * 3 + ["2024-01"], "industry": ["Steel", "Banks", "Media", "Media"],
                        "ic": [0.3, 0.3, 0.1, 0.5]})
    s = summarize(ic, pf, ind, ind.rename(columns={"ic": "excess_return"}))
    assert s["industry_ic_latest"] == [("Banks", 0.3), ("Steel", 0.3), ("Media", 0.1)]
    assert s["industry_ic_1y"] == [("Banks", 0.3), ("Media", 0.3), ("Steel", 0.3)]  # fewer than 12 months: what there is
    assert s["one_year_ic"] == pytest.approx(0.15)
    assert math.isnan(s["excess_ir"]) is False and s["n_return_months"] == 2


def test_summary_of_empty_tables_is_nan_not_an_error():
    ic = pd.DataFrame(columns=["month", "ic", "rank_ic", "n_stocks", "as_of"])
    pf = pd.DataFrame(columns=["month", "long_return", "benchmark_return", "excess_return", "turnover"])
    ind = pd.DataFrame(columns=["month", "industry", "ic", "excess_return"])
    s = summarize(ic, pf, ind, ind)
    assert math.isnan(s["ic_mean"]) and math.isnan(s["annual_return"]) and s["latest_month"] is None
    assert s["industry_ic_latest"] == []


def test_truth_corr_is_pearson_with_the_truth_over_stocks_with_both():
    from factor_pipeline.evaluation.metrics import truth_corr

    rng = np.random.default_rng(11)
    codes = [f"{i:06d}.SZ" for i in range(60)]
    expected = pd.Series(rng.normal(size=60) * 0.02, index=codes)
    factor = pd.Series(expected.to_numpy() + rng.normal(size=60) * 0.03, index=codes).iloc[::-1].copy()
    factor.iloc[:5] = np.nan
    expected.iloc[10:13] = np.nan
    joined = pd.concat([factor.rename("f"), expected.rename("e")], axis=1).dropna()
    assert len(joined) == 52
    assert truth_corr(factor, expected) == pytest.approx(stats.pearsonr(joined.f, joined.e)[0], abs=1e-12)
    assert math.isnan(truth_corr(factor, expected * 0 + 0.01))  # a constant truth has no correlation


def test_paired_difference_and_mean_se_follow_metrics_md():
    from factor_pipeline.evaluation.metrics import mean_and_se, paired_difference

    a = pd.Series([0.10, 0.05, np.nan, 0.08, 0.02], index=list("abcde"))
    b = pd.Series([0.06, 0.07, 0.01, 0.03, np.nan], index=list("abcde"))
    diff = np.array([0.04, -0.02, 0.05])
    got = paired_difference(a, b)
    assert got["months"] == 3
    assert got["mean"] == pytest.approx(diff.mean())
    assert got["se"] == pytest.approx(diff.std(ddof=1) / np.sqrt(3))
    # Paired: a shared monthly swing cancels, so the paired SE is below the SE of either mean.
    common = np.linspace(-0.1, 0.1, 12)
    x, y = pd.Series(common + 0.01), pd.Series(common + np.r_[0.0, 0.002] .repeat(6))
    assert paired_difference(x, y)["se"] < mean_and_se(x)["se"]
    one = mean_and_se([0.2, np.nan, 0.4])
    assert one["months"] == 2 and one["mean"] == pytest.approx(0.3) and one["se"] == pytest.approx(np.std([0.2, 0.4], ddof=1) / np.sqrt(2))

import pandas as pd
import pytest

from factor_pipeline.market import session_calendar
from factor_pipeline.evaluation.store import holding_period
from factor_pipeline.storage import StorageError


def _bars(*dates):
    return pd.DataFrame({"trade_date": pd.to_datetime(list(dates))})


def test_a_complete_month_runs_to_the_next_rebalance_date():
    start, end, complete = holding_period(_bars("2024-05-31", "2024-06-28"), "2024-05")
    assert (start, end, complete) == (session_calendar.rebalance_date("2024-05"), pd.Timestamp("2024-06-28"), True)


def test_the_newest_month_is_evaluated_as_of_the_newest_bar():
    # The seed's "latest IC": the next month is not over, returns run to the newest close.
    start, end, complete = holding_period(_bars("2024-05-31", "2024-06-03", "2024-06-14"), "2024-05")
    assert end == pd.Timestamp("2024-06-14") and not complete


def test_no_bar_after_the_rebalance_date_is_a_clear_error():
    with pytest.raises(StorageError, match="raw_bars for 2024-06"):
        holding_period(_bars("2024-05-30", "2024-05-31"), "2024-05")


def test_the_last_month_of_the_calendar_has_no_next_rebalance_and_stays_partial():
    start, end, complete = holding_period(_bars("2026-12-31", "2027-01-04"), "2026-12")
    assert start == pd.Timestamp("2026-12-31") and not complete


def test_eval_tables_hold_truth_corr_for_pret_and_every_baseline(tmp_path):
    import numpy as np
    from scipy import stats

    from factor_pipeline.config import profile_config
    from factor_pipeline.evaluation.store import evaluate_and_store
    from factor_pipeline.storage import Layout, read_parquet, write_parquet

    layout = Layout(tmp_path)
    rng = np.random.default_rng(3)
    n = 40
    codes = [f"{i:06d}.SZ" for i in range(n)]
    start, end = session_calendar.rebalance_date("2024-03"), session_calendar.rebalance_date("2024-04")
    expected = rng.normal(size=n) * 0.02
    table = pd.DataFrame(
        {
            "ts_code": codes,
            "industry": ["Banks", "Media"] * (n // 2),
            "buyable": True,
            "pret": expected + rng.normal(size=n) * 0.02,
            "reversal_20d": rng.normal(size=n),
            "pret_gan_off": -expected + rng.normal(size=n) * 0.01,
            "log_float_mcap": rng.normal(22, 1, size=n),
        }
    )
    table.loc[3, "reversal_20d"] = np.nan
    write_parquet(table, layout.partition("factor", "2024-03"))
    samples = pd.DataFrame({"trade_date": start, "ts_code": codes, "market_beta": rng.normal(1, 0.2, size=n)})
    write_parquet(samples, layout.partition("samples", "2024-03"))
    closes = 10 * np.exp(expected + rng.normal(size=n) * 0.05)
    bars = pd.DataFrame(
        {
            "ts_code": codes * 2,
            "trade_date": [start] * n + [end] * n,
            "close": np.r_[np.full(n, 10.0), closes],
            "adj_factor": 1.0,
            "volume": 1000.0,
            "float_shares": 1e8,
        }
    )
    write_parquet(bars[bars.trade_date == start], layout.partition("raw_bars/daily", "2024-03"))
    write_parquet(bars[bars.trade_date == end], layout.partition("raw_bars/daily", "2024-04"))
    truth = pd.DataFrame({"month": "2024-03", "ts_code": codes[:-4], "expected_return": expected[:-4]})  # 4 names lack it
    write_parquet(truth, layout.partition("raw_bars/truth", "2024-03"))

    evaluate_and_store(layout, "2024-03", profile_config("smoke"), log=lambda _: None)
    ic = read_parquet(layout.partition("eval/ic", "2024-03"))
    baselines = read_parquet(layout.partition("eval/baselines", "2024-03")).set_index("factor")

    def independent(column):
        joined = pd.DataFrame({"f": table[column], "e": table["ts_code"].map(truth.set_index("ts_code")["expected_return"])}).dropna()
        return stats.pearsonr(joined.f, joined.e)[0]

    assert ic["truth_corr"].iloc[0] == pytest.approx(independent("pret"), abs=1e-12)
    assert ic["truth_corr"].iloc[0] > 0.3
    for column in ("reversal_20d", "pret_gan_off"):
        assert baselines.loc[column, "truth_corr"] == pytest.approx(independent(column), abs=1e-12)
        assert ic[f"truth_corr_{column}"].iloc[0] == pytest.approx(independent(column), abs=1e-12)
    assert baselines.loc["pret_gan_off", "truth_corr"] < -0.5

    # Index pools: by the float-cap rule (40 names: the top 2, next 4, next 8), then from published weights.
    pools = read_parquet(layout.partition("eval/index_pools", "2024-03")).query("factor == 'pret'").set_index("index_code")
    assert pools["n_stocks"].to_dict() == {"000300.SH": 2, "000905.SH": 4, "000852.SH": 8}
    published = pd.DataFrame({"index_code": "000300.SH", "con_code": codes[:3], "trade_date": start, "weight": [1.0, 2.0, 1.0]})
    write_parquet(published, layout.partition("raw_bars/index_weight", "2024-03"))
    evaluate_and_store(layout, "2024-03", profile_config("smoke"), log=lambda _: None)
    pools = read_parquet(layout.partition("eval/index_pools", "2024-03")).query("factor == 'pret'").set_index("index_code")
    r = closes[:3] / 10.0 - 1
    assert pools.loc["000300.SH", "n_stocks"] == 3 and pools.loc["000905.SH", "n_stocks"] == 0
    assert pools.loc["000300.SH", "index_return"] == pytest.approx((r[0] + 2 * r[1] + r[2]) / 4, abs=1e-12)


def test_the_report_summary_compares_truth_corr_with_each_baseline_on_paired_months():
    import numpy as np

    from factor_pipeline.config import profile_config
    from factor_pipeline.evaluation.store import summaries

    rng = np.random.default_rng(8)
    months = [str(p) for p in pd.period_range("2024-01", periods=10, freq="M")]
    mine, theirs = rng.normal(0.5, 0.05, 10), rng.normal(0.45, 0.05, 10)
    theirs[2] = np.nan  # a month without the baseline's value drops out of the pair
    ic = pd.DataFrame({"month": months, "ic": rng.normal(0.08, 0.1, 10), "rank_ic": 0.1, "n_stocks": 300,
                       "as_of": pd.Timestamp("2025-01-31"), "complete": True, "oracle_ic": 0.15, "truth_corr": mine})
    portfolio = pd.DataFrame({"month": months, "long_return": 0.01, "benchmark_return": 0.0, "excess_return": 0.01,
                              "turnover": 0.8, "complete": True})
    baselines = portfolio.merge(ic[["month", "ic", "rank_ic", "n_stocks", "as_of"]], on="month").assign(
        factor="reversal_20d", truth_corr=theirs)
    tables = {"ic": ic, "portfolio": portfolio, "baselines": baselines,
              "industry_ic": pd.DataFrame(columns=["month", "industry", "ic", "n_stocks"]),
              "industry_long_excess": pd.DataFrame(columns=["month", "industry", "excess_return", "n_long"])}
    summary, by_baseline = summaries(tables, profile_config("smoke"))
    assert summary["truth_corr"]["mean"] == pytest.approx(mine.mean())
    assert summary["truth_corr"]["se"] == pytest.approx(mine.std(ddof=1) / np.sqrt(10))
    gap = (mine - theirs)[~np.isnan(theirs)]
    reversal = by_baseline["20-day reversal"]
    assert reversal["truth_corr"]["mean"] == pytest.approx(np.nanmean(theirs))
    assert reversal["truth_corr_gap"]["months"] == 9
    assert reversal["truth_corr_gap"]["mean"] == pytest.approx(gap.mean())
    assert reversal["truth_corr_gap"]["se"] == pytest.approx(gap.std(ddof=1) / 3.0)
    # Input files have no truth: no truth figures, and no gap.
    tables["ic"] = ic.assign(truth_corr=np.nan)
    tables["baselines"] = baselines.assign(truth_corr=np.nan)
    summary, by_baseline = summaries(tables, profile_config("smoke"))
    assert summary["truth_corr"] is None and "truth_corr_gap" not in by_baseline["20-day reversal"]

"""The distribution of the monthly IC and the per-year table (docs/metrics.md, "IC statistics")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from factor_pipeline.evaluation.metrics import icir
from factor_pipeline.evaluation.portfolio import months_with_returns

YEAR_COLUMNS = ["year", "ic", "rank_ic", "long_excess", "win_rate", "months"]


def ic_statistics(ic, rank_ic) -> dict:
    """Mean, std (ddof 1), t-statistic and two-sided p-value of mean = 0 (Student's t, n - 1 degrees of freedom),
    skew and excess kurtosis (scipy's biased estimators, as alphalens' information table), share of positive
    months, ICIR and Rank ICIR of the monthly values (NaN months skipped)."""
    values = months_with_returns(ic).to_numpy()
    n = len(values)
    out = {
        "months": n,
        "mean": float(values.mean()) if n else math.nan,
        "std": float(values.std(ddof=1)) if n > 1 else math.nan,
        "t_stat": math.nan,
        "p_value": math.nan,
        "skew": math.nan,
        "kurtosis": math.nan,
        "positive_share": float((values > 0).mean()) if n else math.nan,
        "icir": icir(values),
        "rank_icir": icir(rank_ic),
    }
    if n > 2 and np.ptp(values) > 0:
        test = scipy_stats.ttest_1samp(values, 0.0)
        out.update(
            t_stat=float(test.statistic),
            p_value=float(test.pvalue),
            skew=float(scipy_stats.skew(values)),
            kurtosis=float(scipy_stats.kurtosis(values)),
        )
    return out


def yearly_table(ic: pd.DataFrame, portfolio: pd.DataFrame) -> pd.DataFrame:
    """Per calendar year: mean IC and Rank IC, the long excess compounded over its complete months, and the
    win rate (share of those months whose excess is positive)."""
    ic = ic.assign(year=ic["month"].astype(str).str[:4])
    done = portfolio[portfolio["complete"].astype("boolean").fillna(False).astype(bool)] if "complete" in portfolio else portfolio
    done = done.assign(year=done["month"].astype(str).str[:4])
    means = ic.groupby("year")[["ic", "rank_ic"]].mean()
    excess = done.groupby("year")["excess_return"]
    table = means.join(
        pd.DataFrame(
            {
                "long_excess": excess.apply(lambda e: float(np.prod(1.0 + e.dropna())) - 1.0),
                "win_rate": excess.apply(lambda e: float((e.dropna() > 0).mean()) if e.notna().any() else math.nan),
                "months": excess.count(),
            }
        ),
        how="outer",
    )
    table["months"] = table["months"].fillna(0).astype("int64")
    return table.reset_index()[YEAR_COLUMNS]

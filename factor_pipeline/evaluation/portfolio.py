"""The long portfolio (docs/metrics.md): which stocks the top group holds, its turnover, and the statistics of
its monthly returns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MONTHS_PER_YEAR = 12


def ranked_codes(codes: pd.Series, factor: pd.Series) -> pd.Index:
    """Positions ordered by (factor descending, ts_code ascending); NaN factors are dropped."""
    frame = pd.DataFrame({"ts_code": codes.to_numpy(), "factor": factor.to_numpy()}, index=codes.index)
    frame = frame[frame["factor"].notna()]
    return frame.sort_values(["factor", "ts_code"], ascending=[False, True], kind="mergesort").index



def top_group_size(n: int, n_groups: int) -> int:
    """Size of the top of ``n_groups`` near-equal groups of ``n`` ordered stocks (see module doc)."""
    if n <= 0:
        return 0
    # ceil((n - 1) / G) in integers: qcut puts position q in the top bin when q / (n - 1) > 1 - 1/G.
    return max(1, (n - 1 + n_groups - 1) // n_groups)



def top_fraction_size(n: int, fraction: float) -> int:
    """``max(1, floor(fraction * n))`` for n > 0. The epsilon keeps 0.29 * 100 from flooring to 28."""
    if n <= 0:
        return 0
    return max(1, int(math.floor(fraction * n + 1e-9)))



def group_turnover(current: list[str], previous: list[str] | None) -> float:
    """One-sided turnover 0.5 * sum_i |w(i,m) - w(i,m-1)| between two equal-weight holdings.

    NaN without a previous month. An empty holding has all weights 0 (cash), so moving from cash into
    a portfolio counts 0.5, as the formula gives.
    """
    if previous is None:
        return math.nan
    cur = set(current)
    prev = set(previous)
    w_cur = 1.0 / len(cur) if cur else 0.0
    w_prev = 1.0 / len(prev) if prev else 0.0
    total = 0.0
    for code in cur | prev:
        total += abs((w_cur if code in cur else 0.0) - (w_prev if code in prev else 0.0))
    return 0.5 * total



def top_group(panel: pd.DataFrame, n_groups: int) -> list[str]:
    """Codes of the long portfolio: the top of ``n_groups`` groups of the buyable stocks by factor."""
    buyable = panel[panel["buyable"].astype(bool)]
    order = ranked_codes(buyable["ts_code"], buyable["factor"])
    return buyable.loc[order[: top_group_size(len(order), n_groups)], "ts_code"].astype(str).tolist()



def months_with_returns(returns) -> pd.Series:
    """The return statistics (docs/metrics.md: Long portfolio) each drop NaN months first."""
    return pd.Series(returns, dtype="float64").dropna()



def nav(returns) -> pd.Series:
    """NAV(t) = prod_{s<=t} (1 + r_s), NAV(0) = 1 implied (not part of the Series)."""
    return (1.0 + months_with_returns(returns)).cumprod()



def max_drawdown(returns) -> float:
    """max_t 1 - NAV(t) / max_{s<=t} NAV(s), with NAV(0) = 1 among the peaks; a positive fraction.

    Including NAV(0) matters when the first month loses: a -10% start is a 10% drawdown.
    """
    values = nav(returns).to_numpy()
    if len(values) == 0:
        return math.nan
    peaks = np.maximum.accumulate(np.concatenate([[1.0], values]))[1:]
    return float(np.max(1.0 - values / peaks))



def annualised_return(returns, periods_per_year: int = MONTHS_PER_YEAR) -> float:
    """Geometric: prod(1 + r)^(12 / n) - 1, n the number of (non-NaN) months."""
    r = months_with_returns(returns)
    if len(r) == 0:
        return math.nan
    growth = float(np.prod(1.0 + r.to_numpy()))
    if growth <= 0:
        return -1.0  # the strategy lost everything; a fractional power of a non-positive number is undefined
    return growth ** (periods_per_year / len(r)) - 1.0



def annualised_volatility(returns, periods_per_year: int = MONTHS_PER_YEAR) -> float:
    """std(r, ddof = 1) * sqrt(12); NaN below two months."""
    r = months_with_returns(returns)
    if len(r) < 2:
        return math.nan
    return float(r.std(ddof=1)) * math.sqrt(periods_per_year)



def ratio_or_nan(a: float, b: float) -> float:
    if not (np.isfinite(a) and np.isfinite(b)) or b == 0:
        return math.nan
    return a / b



def arithmetic_ir(returns, periods_per_year: int = MONTHS_PER_YEAR) -> float:
    """mean(r) * 12 / (std(r, ddof = 1) * sqrt(12)), docs/metrics.md's excess IR."""
    r = months_with_returns(returns)
    if len(r) < 2:
        return math.nan
    return ratio_or_nan(float(r.mean()) * periods_per_year, float(r.std(ddof=1)) * math.sqrt(periods_per_year))

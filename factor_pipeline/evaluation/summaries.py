"""The report's figures beyond the seed's table, from the stored eval tables: every group, the long-short spread,
IC statistics, decay, style exposure, costs, index benchmarks and holdings (docs/metrics.md).

Pure functions of frames; return statistics use complete months only, as ``metrics.summarize`` does.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from factor_pipeline.config import EvaluationConfig
from factor_pipeline.evaluation import benchmarks, costs, groups, ic_stats
from factor_pipeline.evaluation.portfolio import annualised_return, arithmetic_ir, max_drawdown

FACTOR_LABELS = {"pret": "pRet", "reversal_20d": "20-day reversal", "pret_gan_off": "GRU, GAN off"}


def _complete(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty or "complete" not in frame:
        return frame
    return frame[frame["complete"].astype("boolean").fillna(False).astype(bool)]


def factors_present(tables: dict[str, pd.DataFrame]) -> list[str]:
    present = set(tables["group_returns"]["factor"]) if not tables["group_returns"].empty else {"pret"}
    return [f for f in FACTOR_LABELS if f in present]


def group_summary(group_returns: pd.DataFrame, factor: str, cfg: EvaluationConfig) -> dict:
    """Per group: mean monthly return, annualised return gross and net of costs, mean turnover; the monotonicity;
    and each group's monthly gross and net returns (for the value curves)."""
    rows = _complete(group_returns[group_returns["factor"] == factor]).sort_values(["group", "month"], kind="mergesort")
    if rows.empty:
        return {"table": pd.DataFrame(), "monotonicity": math.nan, "gross": pd.DataFrame(), "net": pd.DataFrame()}
    rows = rows.assign(net_return=0.0)
    for _, index in rows.groupby("group").groups.items():
        rows.loc[index, "net_return"] = costs.net_returns(rows.loc[index], cfg).to_numpy()
    gross = rows.pivot(index="month", columns="group", values="mean_return")
    net = rows.pivot(index="month", columns="group", values="net_return")
    all_turnover = group_returns[group_returns["factor"] == factor].groupby("group")["turnover"].mean()
    table = pd.DataFrame(
        {
            "mean_return": gross.mean(),
            "annual_return": gross.apply(annualised_return),
            "net_annual_return": net.apply(annualised_return),
            "turnover": all_turnover.reindex(gross.columns),
            "n": rows.groupby("group")["n"].mean(),
        }
    )
    return {"table": table, "monotonicity": groups.monotonicity(table["mean_return"]), "gross": gross, "net": net}


def long_short_summary(long_short: pd.DataFrame, factor: str) -> dict:
    spread = _complete(long_short[long_short["factor"] == factor]).sort_values("month", kind="mergesort")
    return {**groups.spread_statistics(spread["spread"]), "months": int(spread["spread"].notna().sum())}


def ic_frame(tables: dict[str, pd.DataFrame], factor: str) -> pd.DataFrame:
    """month, ic, rank_ic, excess_return, complete of one factor (pRet from eval.ic/portfolio, else eval.baselines)."""
    if factor == "pret":
        ic = tables["ic"][["month", "ic", "rank_ic", "complete"]]
        portfolio = tables["portfolio"][["month", "excess_return"]]
        return ic.merge(portfolio, on="month", how="left").sort_values("month", kind="mergesort")
    rows = tables["baselines"]
    rows = rows[rows["factor"] == factor]
    return rows[["month", "ic", "rank_ic", "excess_return", "complete"]].sort_values("month", kind="mergesort")


def ic_summary(tables: dict[str, pd.DataFrame], factor: str) -> dict:
    frame = ic_frame(tables, factor)
    return ic_stats.ic_statistics(frame["ic"], frame["rank_ic"])


def decay_summary(ic_decay: pd.DataFrame, factor: str) -> pd.DataFrame:
    """Mean IC and Rank IC per horizon (lag 0) and per lag, with the months behind each mean."""
    rows = ic_decay[ic_decay["factor"] == factor]
    if rows.empty:
        return pd.DataFrame(columns=["horizon_sessions", "lag_months", "ic", "rank_ic", "months"])
    key = rows["horizon_sessions"].astype("Float64").fillna(-1).astype("int64").rename("h")
    out = rows.groupby([key, rows["lag_months"]]).agg(ic=("ic", "mean"), rank_ic=("rank_ic", "mean"), months=("ic", "count"))
    out = out.reset_index().rename(columns={"h": "horizon_sessions"})
    out["horizon_sessions"] = out["horizon_sessions"].where(out["horizon_sessions"] >= 0)
    return out.sort_values(["lag_months", "horizon_sessions"], kind="mergesort").reset_index(drop=True)


def style_summary(style_exposure: pd.DataFrame, factor_profile: pd.DataFrame) -> dict:
    """Mean style correlation per (factor, style), and the mean raw and neutral ICs and rank autocorrelation."""
    exposure = style_exposure.pivot_table(index="style", columns="factor", values="correlation", aggfunc="mean", sort=False)
    profile = factor_profile.groupby("factor")[["rank_autocorr", "ic", "ic_industry_size_neutral", "ic_style_neutral"]].mean()
    return {"exposure": exposure, "profile": profile}


def index_summary(index_pools: pd.DataFrame, factor: str) -> pd.DataFrame:
    """Per index: its annualised return, the long group's annualised excess and excess IR over it (complete
    months), and the mean IC and long excess inside its pool."""
    rows = index_pools[index_pools["factor"] == factor]
    if rows.empty:
        return pd.DataFrame()
    done = _complete(rows)
    out = []
    for code, sub in rows.groupby("index_code", sort=False):
        finished = done[done["index_code"] == code].sort_values("month", kind="mergesort")
        out.append(
            {
                "index_name": benchmarks.index_name(code),
                "index_code": code,
                "pool_size": float(sub["n_stocks"].mean()),
                "index_annual_return": annualised_return(finished["index_return"]),
                "long_annual_excess": annualised_return(finished["long_excess"]),
                "long_excess_ir": arithmetic_ir(finished["long_excess"]),
                "long_excess_max_drawdown": max_drawdown(finished["long_excess"]),
                "pool_ic": float(sub["ic"].mean()),
                "pool_rank_ic": float(sub["rank_ic"].mean()),
                "pool_long_annual_excess": annualised_return(finished["pool_long_excess"]),
            }
        )
    return pd.DataFrame(out)


def holdings_summary(holdings: pd.DataFrame, factor_table: pd.DataFrame, names: pd.Series, month: str) -> dict:
    """The top group of ``month``: code, name, industry, size, pRet and whether it is new since the previous
    evaluated month; the entries and exits."""
    pret = holdings[holdings["factor"] == "pret"]
    months = sorted(pret["month"].astype(str).unique())
    current = pret[pret["month"].astype(str) == month]["ts_code"].astype(str)
    earlier = [m for m in months if m < month]
    previous = set(pret[pret["month"].astype(str) == earlier[-1]]["ts_code"].astype(str)) if earlier else None
    info = factor_table.set_index("ts_code")
    table = pd.DataFrame(
        {
            "ts_code": current.to_numpy(),
            "name": current.map(names).to_numpy(),
            "industry": current.map(info["industry"]).to_numpy(),
            "float_mcap": np.exp(current.map(info["log_float_mcap"]).to_numpy(dtype="float64")),
            "pret": current.map(info["pret"]).to_numpy(dtype="float64"),
            "new": [previous is not None and code not in previous for code in current],
        }
    ).sort_values(["pret", "ts_code"], ascending=[False, True], kind="mergesort")
    exits = sorted(previous - set(current)) if previous is not None else []
    return {"month": month, "table": table.reset_index(drop=True), "exits": exits, "previous_month": earlier[-1] if earlier else None}

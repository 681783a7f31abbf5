"""Blocking data-quality checks, one per monthly table: a failure stops the month's downstream steps."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from factor_pipeline.market import session_calendar
from factor_pipeline.market.trading_rules import high_low_violations
from factor_pipeline.pipeline import dagster_internals
from factor_pipeline.pipeline.partitions import month_just_ended
from factor_pipeline.pipeline.resources import PipelineResource
from factor_pipeline.stats import is_constant

RAW_BARS_CHECK = dg.AssetCheckSpec("bars_quality", asset="raw_bars", blocking=True,
                                   description="Prices positive, OHLC consistent, no duplicates, sessions only, every code in the stock table.")
FEATURES_CHECK = dg.AssetCheckSpec("features_quality", asset="features", blocking=True,
                                   description="Rows present and no feature column entirely missing.")
SAMPLES_CHECK = dg.AssetCheckSpec("samples_quality", asset="samples", blocking=True,
                                  description="Sequences finite, one per eligible row, a non-empty universe on the rebalance date.")
PRET_CHECK = dg.AssetCheckSpec("pret_quality", asset="pret_factor", blocking=True,
                               description="pRet finite for every eligible stock and not constant across stocks.")


def _result(check: dg.AssetCheckSpec, problems: list[str], **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check.name,
        asset_key=check.asset_key,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": "; ".join(problems) or "none", **metadata},
    )


def bar_problems(daily: pd.DataFrame, stocks: pd.DataFrame, month: str) -> list[str]:
    """Human-readable violations of the raw-bar rules (empty when the month is clean)."""
    problems = []
    if daily.empty:
        return [f"no bars in {month}"]
    prices = daily[["open", "high", "low", "close", "pre_close"]]
    if (prices <= 0).any().any() or prices.isna().any().any():
        problems.append(f"{int(((prices <= 0) | prices.isna()).any(axis=1).sum())} rows with a missing or non-positive price")
    bad_high, bad_low = high_low_violations(daily["open"], daily["high"], daily["low"], daily["close"])
    if (bad_high | bad_low).any():
        problems.append(f"{int((bad_high | bad_low).sum())} rows with high/low inconsistent with open/close")
    if (daily["volume"] < 0).any():
        problems.append(f"{int((daily['volume'] < 0).sum())} rows with negative volume")
    if daily.duplicated(["ts_code", "trade_date"]).any():
        problems.append(f"{int(daily.duplicated(['ts_code', 'trade_date']).sum())} duplicate (ts_code, trade_date) rows")
    sessions = session_calendar.month_sessions(month)
    off_calendar = ~daily["trade_date"].isin(sessions)
    if off_calendar.any():
        problems.append(f"{int(off_calendar.sum())} rows dated outside the month's XSHG sessions")
    unknown = ~daily["ts_code"].isin(stocks["ts_code"])
    if unknown.any():
        problems.append(f"{int(daily.loc[unknown, 'ts_code'].nunique())} codes missing from the stock table")
    return problems


def check_raw_bars(daily: pd.DataFrame, stocks: pd.DataFrame, month: str) -> dg.AssetCheckResult:
    return _result(RAW_BARS_CHECK, bar_problems(daily, stocks, month), rows=len(daily))


def check_features(table: pd.DataFrame, feature_names, month: str) -> dg.AssetCheckResult:
    problems = [] if len(table) else [f"no feature rows in {month}"]
    all_missing = [name for name in feature_names if table[name].isna().all()]
    if len(table) and all_missing:
        problems.append(f"feature columns entirely missing: {all_missing}")
    return _result(FEATURES_CHECK, problems, rows=len(table))


def check_samples(X: np.ndarray, table: pd.DataFrame, month: str) -> dg.AssetCheckResult:
    problems = []
    if not np.isfinite(X).all():
        problems.append("non-finite values in the sequences")
    if int(table["eligible"].sum()) != len(X):
        problems.append(f"{int(table['eligible'].sum())} eligible rows but {len(X)} sequences")
    rebalance = session_calendar.rebalance_date(month)
    if not table.loc[table["trade_date"] == rebalance, "eligible"].any():
        problems.append(f"empty universe on the rebalance date {rebalance.date()}")
    return _result(SAMPLES_CHECK, problems, sequences=len(X))


def check_pret(table: pd.DataFrame, month: str) -> dg.AssetCheckResult:
    problems = []
    values = table["pret"].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        problems.append(f"{int((~np.isfinite(values)).sum())} non-finite pRet values")
    finite = values[np.isfinite(values)]
    if len(finite) > 1 and is_constant(finite):
        problems.append("pRet is constant across stocks")
    return _result(PRET_CHECK, problems, stocks=len(table))


@dg.asset_check(
    asset="pret_factor",
    name="factor_on_time",
    blocking=False,
    description="The month just ended has its factor (from this source and configuration) by 08:00 Shanghai on the 2nd.",
)
def factor_on_time(pipeline: PipelineResource) -> dg.AssetCheckResult:
    month = month_just_ended(dagster_internals.now())
    present = pipeline.layout.matches("factor", month)
    return dg.AssetCheckResult(
        passed=present,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"month": month, "problems": "none" if present else f"the factor of {month} is missing: materialise pret_factor for {month}"},
    )

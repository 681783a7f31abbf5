"""``generate_market``: plan, simulate, and assemble the canonical frames (daily bars, stocks, truth)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from factor_pipeline.config import MarketConfig
from factor_pipeline.market import session_calendar, trading_rules
from factor_pipeline.market.synthetic.plan import MarketPlan, make_plan, plan_sessions_for
from factor_pipeline.market.synthetic.simulate import simulate
from factor_pipeline.market.synthetic.state import Recording


@dataclass(frozen=True)
class SyntheticMarket:
    daily: pd.DataFrame  # canonical daily bars, sorted by (trade_date, ts_code); no row on suspended days
    stocks: pd.DataFrame  # canonical stocks table, delisted names included
    truth: pd.DataFrame  # month, ts_code, expected_return
    # trade_date, ts_code, expected_return over the next session_truth_horizon sessions: a bench diagnostic only
    session_truth: pd.DataFrame | None = None


def generate_market(
    cfg: MarketConfig,
    sessions: pd.DatetimeIndex | None = None,
    calendar: session_calendar.SessionCalendar | None = None,
    session_truth_horizon: int = 0,
) -> SyntheticMarket:
    """Simulate the market over ``sessions`` (default: the calendar's sessions from cfg.start to cfg.end, or to
    its last day). ``calendar`` defaults to the embedded market's own (exchange-calendars + the synthetic
    calendar). Deterministic. ``session_truth_horizon`` > 0 adds ``session_truth``, the expected return over
    that many sessions at every session: for the bench's learnable-ceiling diagnostic, never the pipeline."""
    calendar = calendar or session_calendar.synthetic_calendar()
    if sessions is None:
        end = pd.Timestamp(cfg.end) if cfg.end else calendar.known_until
        calendar.check_known(end)
        sessions = calendar.sessions[(calendar.sessions >= pd.Timestamp(cfg.start)) & (calendar.sessions <= end)]
    sessions = pd.DatetimeIndex(sessions).normalize()
    if len(sessions) == 0:
        raise ValueError(f"synthetic market: no sessions between {cfg.start} and {cfg.end}")
    # Child 0 draws the plan, children 1..10 the day loop's components (simulate.RandomStreams).
    seeds = np.random.SeedSequence(int(cfg.seed)).spawn(11)
    plan = make_plan(cfg, plan_sessions_for(sessions), seeds[0])
    recording = simulate(plan, sessions, seeds[1:], calendar, cfg, session_truth_horizon)
    return assemble(plan, sessions, recording)


def assemble(plan: MarketPlan, sessions: pd.DatetimeIndex, recording: Recording) -> SyntheticMarket:
    codes = pd.array(plan.codes.astype(str), dtype="str")
    daily = _daily_bars(codes, sessions, recording)
    stocks = _stocks(plan, sessions, recording.delisting_session)
    truth = _truth(codes, recording.truth)
    session_truth = _session_truth(codes, sessions, recording.session_truth) if recording.session_truth else None
    return SyntheticMarket(daily=daily, stocks=stocks, truth=truth, session_truth=session_truth)


def _daily_bars(codes, sessions: pd.DatetimeIndex, recording: Recording) -> pd.DataFrame:
    pieces_of = recording.columns

    # One column at a time, freeing the per-session pieces as we go (peak memory).
    def column(key):
        pieces = pieces_of.pop(key)
        return np.concatenate(pieces) if pieces else np.zeros(0)

    idx = column("idx").astype(np.int64)
    rows_per_session = np.array(recording.rows_per_session, dtype=np.int64)
    columns = {
        "ts_code": codes.take(idx),
        "trade_date": pd.DatetimeIndex(
            np.repeat(sessions.to_numpy().astype("datetime64[ns]"), rows_per_session)
        ).as_unit("ns"),
    }
    del idx
    for key in ("open", "high", "low", "close", "pre_close"):
        columns[key] = column(key).astype(np.float64) / 100.0  # integer cents -> CNY, exactly as round_half_up
    columns["volume"] = column("volume")
    columns["amount"] = column("amount")
    columns["adj_factor"] = column("adj")
    columns["float_shares"] = column("float")
    columns["is_st"] = column("st").astype(bool)
    return pd.DataFrame(columns, copy=False)


def _stocks(plan: MarketPlan, sessions: pd.DatetimeIndex, delisting_session: np.ndarray) -> pd.DataFrame:
    """The names listed by the last session; a delist date only when it falls within the simulation."""
    last = len(sessions) - 1
    known = plan.listing_session <= last
    delist_date = np.full(plan.n_total, np.datetime64("NaT"), dtype="datetime64[ns]")
    happened = delisting_session <= last
    delist_date[happened] = sessions.to_numpy().astype("datetime64[ns]")[delisting_session[happened]]
    numbers = np.arange(1, plan.n_total + 1)
    industry_names = np.array(trading_rules.INDUSTRY_NAMES, dtype=object)
    return pd.DataFrame(
        {
            "ts_code": pd.array(plan.codes.astype(str)[known], dtype="str"),
            "name": pd.array([f"Synthetic {k:04d}" for k in numbers[known]], dtype="str"),
            "industry": pd.array(industry_names[plan.industry[known]], dtype="str"),
            "list_date": pd.DatetimeIndex(plan.list_date[known]).as_unit("ns"),
            "delist_date": pd.DatetimeIndex(delist_date[known]).as_unit("ns"),
        }
    )


def _truth(codes, parts: list[tuple[str, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    if parts:
        months = np.concatenate([np.full(len(rows), month, dtype=object) for month, rows, _ in parts])
        rows = np.concatenate([rows for _, rows, _ in parts])
        values = np.concatenate([expected for _, _, expected in parts])
    else:
        months, rows, values = np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64), np.zeros(0)
    return pd.DataFrame(
        {
            "month": pd.array(months, dtype="str"),
            "ts_code": codes.take(rows),
            "expected_return": values.astype(float),
        }
    )


def _session_truth(codes, sessions: pd.DatetimeIndex, parts: list[tuple[int, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    dates = np.concatenate([np.full(len(rows), t, dtype=np.int64) for t, rows, _ in parts])
    return pd.DataFrame(
        {
            "trade_date": sessions.take(dates).as_unit("ns"),
            "ts_code": codes.take(np.concatenate([rows for _, rows, _ in parts])),
            "expected_return": np.concatenate([expected for _, _, expected in parts]).astype(float),
        }
    )

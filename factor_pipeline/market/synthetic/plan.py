"""The market plan: everything laid out before the first session.

The plan holds each name's static attributes (code, board, industry, size, factor loadings, base volatility
and turnover) and the schedule of listings, ST periods, delistings and dividends. It is drawn from one
random stream, over the plan's sessions (exchange-calendars' horizon, whatever the simulated end), so that a
shorter run is an exact prefix of a longer one. The draws happen in the order of the helpers below: a
change of that order changes the market.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from factor_pipeline.config import MarketConfig
from factor_pipeline.market import session_calendar, trading_rules
from factor_pipeline.market.synthetic.parameters import (
    BOARDS,
    BONUS_RATIOS,
    BSE,
    DELIST_RATE,
    DIVIDEND_PROB,
    DIVIDEND_YIELD_MEDIAN,
    DIVIDEND_YIELD_SD,
    IDIO_SIZE_SLOPE,
    IDIO_VOL,
    INDUSTRY_BETA,
    INDUSTRY_SIZE,
    INDUSTRY_VOL,
    LISTED_SHARE_PER_YEAR,
    MIN_LISTED_SHARE,
    ST_BEFORE_DELIST,
    ST_RECOVER_LENGTH,
    ST_RECOVER_RATE,
    TRADING_DAYS,
    TURNOVER_MEDIAN,
    TURNOVER_SIZE_SLOPE,
)


@dataclass
class MarketPlan:
    """Per-name arrays are in code order, so that each session's rows come out sorted by ts_code."""

    n_total: int  # every name the plan lists, delisted ones included
    codes: np.ndarray  # object, sorted
    board: np.ndarray  # index into BOARDS
    industry: np.ndarray  # index into trading_rules.INDUSTRY_NAMES
    listing_session: np.ndarray  # session index of the first trading day (<= -1: listed before the start)
    list_date: np.ndarray  # datetime64[ns]
    initial_close: np.ndarray  # IPO: the issue price; pre-listed: the close before the first session
    float_shares: np.ndarray  # at the start (IPO: at listing)
    initial_adj_factor: np.ndarray
    size_z: np.ndarray  # z-score of log float cap
    market_beta: np.ndarray
    industry_loading: np.ndarray
    size_loading: np.ndarray
    idio_vol: np.ndarray  # base idiosyncratic daily volatility
    log_turnover_base: np.ndarray
    delisting_sessions: np.ndarray  # session of each planned delisting (the stock is chosen at its ST start)
    delisting_st_start: np.ndarray  # session the ST period before each of those delistings starts
    recoverable_st_start: np.ndarray  # sessions of the ST periods that end without a delisting
    recoverable_st_end: np.ndarray
    ex_date_session: np.ndarray  # [n_total, plan years] session of the year's dividend ex-date, or -1
    dividend_yield: np.ndarray  # [n_total, plan years]
    bonus_u: np.ndarray  # [n_total, plan years] uniform draw that decides a bonus issue
    bonus_ratio: np.ndarray  # [n_total, plan years] bonus shares per share, when there is a bonus issue
    industry_vol: np.ndarray  # per industry


def plan_sessions_for(sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The sessions the plan is laid out over: exchange-calendars' sessions from the first simulated one when the
    simulated sessions follow them (a run past their horizon then continues the same market without planned
    events after it), else the simulated sessions themselves (a custom calendar)."""
    library = session_calendar.exchange_calendar().sessions
    library = library[library >= sessions[0]]
    shared = min(len(library), len(sessions))
    if shared and np.array_equal(library[:shared].to_numpy(), sessions[:shared].to_numpy()):
        return library
    return sessions


def make_plan(cfg: MarketConfig, plan_sessions: pd.DatetimeIndex, seed: np.random.SeedSequence) -> MarketPlan:
    rng = np.random.default_rng(seed)
    n_end = int(cfg.n_stocks)
    n_plan = len(plan_sessions)
    years = n_plan / TRADING_DAYS
    share_listed_at_start = max(MIN_LISTED_SHARE, 1.0 - LISTED_SHARE_PER_YEAR * years)
    n_delist = int(round(n_end * DELIST_RATE * years))
    n_total = n_end + n_delist
    # Names delisted within the plan were mostly listed at its start.
    n_pre = min(int(round(n_end * share_listed_at_start)) + int(round(n_delist * 0.6)), n_total)
    pre = np.arange(n_total) < n_pre

    listing_session, list_date = _listing_schedule(plan_sessions, n_pre, n_total, rng)
    codes = _assign_codes(_board_prefixes(list_date, pre, rng), list_date, rng)
    board = np.array([BOARDS.index(trading_rules.board_of(c)) for c in codes], dtype=np.int8)
    industry, industry_vol = _industries(n_total, rng)
    size_z, initial_close, float_shares, initial_adj_factor = _sizes_and_prices(board, industry, pre, rng)
    market_beta, industry_loading, size_loading, idio_vol, log_turnover_base = _loadings(board, industry, size_z, rng)
    delisting_sessions, delisting_st_start, recoverable_st_start, recoverable_st_end = _st_schedule(
        n_end, n_delist, n_plan, years, rng
    )
    ex_date_session, dividend_yield, bonus_u, bonus_ratio = _dividend_schedule(plan_sessions, n_total, rng)

    order = np.argsort(codes.astype(str), kind="stable")
    return MarketPlan(
        n_total=n_total,
        codes=codes[order],
        board=board[order],
        industry=industry[order],
        listing_session=listing_session[order],
        list_date=list_date[order],
        initial_close=initial_close[order],
        float_shares=float_shares[order],
        initial_adj_factor=initial_adj_factor[order],
        size_z=size_z[order],
        market_beta=market_beta[order],
        industry_loading=industry_loading[order],
        size_loading=size_loading[order],
        idio_vol=idio_vol[order],
        log_turnover_base=log_turnover_base[order],
        delisting_sessions=delisting_sessions,
        delisting_st_start=delisting_st_start,
        recoverable_st_start=recoverable_st_start,
        recoverable_st_end=recoverable_st_end,
        ex_date_session=ex_date_session[order],
        dividend_yield=dividend_yield[order],
        bonus_u=bonus_u[order],
        bonus_ratio=bonus_ratio[order],
        industry_vol=industry_vol,
    )


def _listing_schedule(plan_sessions: pd.DatetimeIndex, n_pre: int, n_total: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Pre-listed names get a date before the start; IPOs uniformly drawn sessions of the plan."""
    n_plan = len(plan_sessions)
    ipo_sessions = np.sort(rng.integers(1, max(2, n_plan - 5), size=n_total - n_pre))
    listing_session = np.concatenate([np.full(n_pre, -1), ipo_sessions]).astype(np.int64)
    sessions_listed_before_start = np.exp(rng.uniform(np.log(70), np.log(6500), size=n_pre)).astype(np.int64)
    list_date = np.empty(n_total, dtype="datetime64[ns]")
    list_date[:n_pre] = _business_days_before(plan_sessions[0], sessions_listed_before_start)
    list_date[n_pre:] = plan_sessions.to_numpy()[ipo_sessions]
    return listing_session, list_date


def _business_days_before(start: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    start_day = np.datetime64(start.date(), "D")
    return np.busday_offset(start_day, -days.astype(np.int64), roll="backward").astype("datetime64[ns]")


def _board_prefixes(list_date: np.ndarray, pre: np.ndarray, rng) -> np.ndarray:
    """The code prefix of each name, drawn from the boards open on its listing date."""
    n_total = len(list_date)
    star_open = np.datetime64(trading_rules.STAR_OPENED, "ns")
    bse_open = np.datetime64(trading_rules.BSE_30PCT_FROM, "ns")
    u = rng.uniform(size=n_total)
    prefix = np.empty(n_total, dtype=object)

    def choose(mask, table):
        cum = np.cumsum([p for _, p in table])
        cum = cum / cum[-1]
        picks = np.searchsorted(cum, u[mask], side="right")
        prefix[mask] = np.array([name for name, _ in table], dtype=object)[np.minimum(picks, len(table) - 1)]

    early = list_date < star_open
    mid = (list_date >= star_open) & (list_date < bse_open)
    late = list_date >= bse_open
    choose(early & pre, [("600", 0.27), ("601", 0.08), ("603", 0.07), ("000", 0.2), ("002", 0.24), ("300", 0.14)])
    choose(early & ~pre, [("603", 0.45), ("601", 0.05), ("002", 0.22), ("300", 0.28)])
    choose(mid, [("688", 0.3), ("603", 0.12), ("605", 0.08), ("002", 0.12), ("003", 0.04), ("300", 0.2),
                 ("301", 0.14)])
    choose(late, [("688", 0.24), ("603", 0.07), ("605", 0.06), ("001", 0.1), ("002", 0.05), ("003", 0.02),
                  ("301", 0.3), ("830", 0.08), ("430", 0.05), ("870", 0.03)])
    return prefix


_PREFIX_CHAINS = (
    ("600", "601", "603", "605"),
    ("000", "001", "002", "003"),
    ("300", "301"),
    ("688", "689"),
    ("830", "831", "832", "833", "834", "835", "836", "837", "838", "839", "870", "871", "872", "873", "430"),
)


def _assign_codes(board_prefix: np.ndarray, list_date: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unique codes: each prefix holds 999 numbers, given in listing order; a full prefix overflows into the
    next one of its board (600 -> 601 -> 603 -> 605, ...)."""
    chain_of = {prefix: chain for chain in _PREFIX_CHAINS for prefix in chain}
    prefix = board_prefix.copy()
    for chain in _PREFIX_CHAINS:
        for k, p in enumerate(chain):
            members = np.flatnonzero(prefix == p)
            if len(members) <= 999:
                continue
            if k + 1 == len(chain):
                raise ValueError("synthetic market: too many stocks for the code space of one board")
            members = members[np.argsort(list_date[members], kind="stable")]
            prefix[members[999:]] = chain[k + 1]
    codes = np.empty(len(prefix), dtype=object)
    for p in sorted(set(prefix)):
        assert p in chain_of
        members = np.flatnonzero(prefix == p)
        members = members[np.argsort(list_date[members], kind="stable")]
        numbers = np.sort(rng.choice(999, size=len(members), replace=False) + 1)
        suffix = ".BJ" if p[0] in "48" else (".SH" if p[0] == "6" else ".SZ")
        for pos, number in zip(members, numbers):
            codes[pos] = f"{p}{number:03d}{suffix}"
    return codes


def _industries(n_total: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Each name's industry, with the real market's uneven sizes, and each industry's factor volatility."""
    names = trading_rules.INDUSTRY_NAMES
    weights = np.array([INDUSTRY_SIZE[name] for name in names], dtype=float)
    industry = rng.choice(len(names), size=n_total, p=weights / weights.sum())
    industry_vol = INDUSTRY_VOL * np.exp(rng.normal(0.0, 0.2, size=len(names)))
    return industry, industry_vol


def _sizes_and_prices(board: np.ndarray, industry: np.ndarray, pre: np.ndarray, rng):
    """(size_z, initial close, float shares, initial adj_factor). Financials and resources are larger, BJ names
    smaller; IPO names float 20-35% of their shares until the lock-up expires."""
    n_total = len(board)
    names = trading_rules.INDUSTRY_NAMES
    log_cap = rng.normal(np.log(4.5e9), 0.95, size=n_total)
    log_cap[np.array([names[k] in ("Banks", "Non-bank Financials", "Oil & Petrochemicals", "Coal")
                      for k in industry])] += 1.2
    log_cap[board == BSE] -= 1.0
    size_z = (log_cap - np.log(4.5e9)) / 0.95
    price_before_start = np.exp(rng.normal(np.log(11.0), 0.65, size=n_total))
    issue_price = np.exp(rng.normal(np.log(17.0), 0.5, size=n_total))
    issue_price[board == BSE] *= 0.6
    initial_close = np.where(pre, price_before_start, issue_price)
    initial_close = trading_rules.round_half_up(np.maximum(initial_close, 1.5))
    float_fraction = np.where(pre, 1.0, rng.uniform(0.2, 0.35, size=n_total))
    float_shares = np.round(np.exp(log_cap) / initial_close * float_fraction / 100.0) * 100.0
    initial_adj_factor = np.where(pre, np.exp(rng.uniform(0.0, 1.6, size=n_total)), 1.0)
    return size_z, initial_close, float_shares, initial_adj_factor


def _loadings(board: np.ndarray, industry: np.ndarray, size_z: np.ndarray, rng):
    """(market beta, industry loading, size loading, base idiosyncratic volatility, log base turnover)."""
    n_total = len(board)
    beta_of_industry = np.array([INDUSTRY_BETA.get(name, 1.0) for name in trading_rules.INDUSTRY_NAMES])
    market_beta = beta_of_industry[industry] * np.exp(rng.normal(0.0, 0.15, size=n_total)) * (1.0 - 0.03 * size_z)
    industry_loading = np.exp(rng.normal(0.0, 0.2, size=n_total))
    size_loading = -0.8 * size_z + rng.normal(0.0, 0.25, size=n_total)
    board_vol = np.array([1.0, 1.2, 1.25, 1.3])[board]
    idio_vol = IDIO_VOL * np.exp(IDIO_SIZE_SLOPE * size_z) * board_vol * np.exp(rng.normal(0.0, 0.15, size=n_total))
    board_turnover = np.array([0.0, 0.35, 0.3, -0.2])[board]
    log_turnover_base = (np.log(TURNOVER_MEDIAN) + TURNOVER_SIZE_SLOPE * size_z + board_turnover
                         + rng.normal(0.0, 0.3, size=n_total))
    return market_beta, industry_loading, size_loading, idio_vol, log_turnover_base


def _st_schedule(n_end: int, n_delist: int, n_plan: int, years: float, rng):
    """(delisting sessions, their ST starts, recoverable ST starts, their ends). The stocks are not chosen
    here: the simulation picks them among the cheapest names when the ST period starts."""
    delisting_sessions = np.sort(rng.integers(20, max(21, n_plan - 1), size=n_delist))
    st_length = rng.integers(*ST_BEFORE_DELIST, size=n_delist)
    delisting_st_start = np.maximum(0, delisting_sessions - st_length)
    n_recover = int(round(n_end * ST_RECOVER_RATE * years))
    recover_start = rng.integers(-200, max(1, n_plan - 20), size=n_recover)
    recover_end = recover_start + rng.integers(*ST_RECOVER_LENGTH, size=n_recover)
    # A period that began before the start and has ended by then never shows.
    keep = recover_end > 0
    return delisting_sessions, delisting_st_start, np.maximum(0, recover_start[keep]), recover_end[keep]


def _dividend_schedule(plan_sessions: pd.DatetimeIndex, n_total: int, rng):
    """(ex-date session or -1, yield, bonus draw, bonus ratio), each [n_total, plan years]: one ex-date a year
    for about 65% of names, mostly from mid-May to July."""
    years_range = np.arange(plan_sessions[0].year, plan_sessions[-1].year + 1)
    n_years = len(years_range)
    pay = rng.uniform(size=(n_total, n_years)) < DIVIDEND_PROB
    season_u = rng.uniform(size=(n_total, n_years))
    off_season = rng.uniform(size=(n_total, n_years)) < 0.1
    yields = DIVIDEND_YIELD_MEDIAN * np.exp(rng.normal(0.0, DIVIDEND_YIELD_SD, size=(n_total, n_years)))
    bonus_u = rng.uniform(size=(n_total, n_years))
    bonus_ratio = BONUS_RATIOS[rng.integers(0, len(BONUS_RATIOS), size=(n_total, n_years))]
    ex_date_session = np.full((n_total, n_years), -1, dtype=np.int64)
    plan_np = plan_sessions.to_numpy()
    for y, year in enumerate(years_range):
        season = np.flatnonzero((plan_np >= np.datetime64(f"{year}-05-15")) & (plan_np <= np.datetime64(f"{year}-07-31")))
        whole = np.flatnonzero((plan_np >= np.datetime64(f"{year}-01-01")) & (plan_np <= np.datetime64(f"{year}-12-31")))
        if len(whole) == 0:
            continue
        window = np.where(off_season[:, y] | (len(season) == 0), len(whole), len(season))
        pos = np.minimum((season_u[:, y] * window).astype(np.int64), window - 1)
        days = np.where(off_season[:, y] | (len(season) == 0), whole[pos],
                        season[np.minimum(pos, max(len(season) - 1, 0))] if len(season) else whole[pos])
        ex_date_session[:, y] = np.where(pay[:, y], days, -1)
    return ex_date_session, yields, bonus_u, bonus_ratio


@dataclass(frozen=True)
class EventSchedule:
    """The plan's events indexed by session, for the day loop."""

    delisting_st_starts: dict[int, list[int]]  # session -> indices into plan.delisting_sessions
    recoverable_st_starts: dict[int, list[int]]  # session -> indices into plan.recoverable_st_start
    ex_dates: dict[int, tuple[np.ndarray, np.ndarray]]  # session -> (stocks, plan years), in stock-major order

    @classmethod
    def of(cls, plan: MarketPlan) -> EventSchedule:
        delisting_st_starts: dict[int, list[int]] = {}
        for k, session in enumerate(plan.delisting_st_start):
            delisting_st_starts.setdefault(int(session), []).append(k)
        recoverable_st_starts: dict[int, list[int]] = {}
        for k, session in enumerate(plan.recoverable_st_start):
            recoverable_st_starts.setdefault(int(session), []).append(k)
        ex_dates: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        n_years = plan.ex_date_session.shape[1]
        flat = np.flatnonzero(plan.ex_date_session.ravel() >= 0)
        if len(flat):
            sessions = plan.ex_date_session.ravel()[flat]
            order = np.argsort(sessions, kind="stable")
            flat, sessions = flat[order], sessions[order]
            bounds = np.flatnonzero(np.diff(sessions)) + 1
            for chunk, chunk_sessions in zip(np.split(flat, bounds), np.split(sessions, bounds)):
                ex_dates[int(chunk_sessions[0])] = (chunk // n_years, chunk % n_years)
        return cls(delisting_st_starts, recoverable_st_starts, ex_dates)


def month_end_holding(sessions: pd.DatetimeIndex, calendar: session_calendar.SessionCalendar) -> dict[int, int]:
    """{index of a month-end session in ``sessions``: its holding days (the next month's sessions)}: the dates
    the truth is published for."""
    periods = sessions.to_period("M")
    holding = {}
    known = calendar.sessions
    for t in range(len(sessions)):
        if t + 1 < len(sessions):
            is_end = periods[t] != periods[t + 1]
        else:
            later = known[known > sessions[t]]
            if len(later):
                is_end = later[0].to_period("M") != periods[t]
            elif sessions[t] in known:
                is_end = True  # the calendar's last session closes its month
            else:
                is_end = (sessions[t] + pd.offsets.BDay(1)).month != sessions[t].month
        if not is_end:
            continue
        nxt = periods[t] + 1
        in_sessions = int((periods == nxt).sum())
        if t + in_sessions + 1 < len(sessions):
            holding[t] = in_sessions
        elif calendar.known_until >= nxt.end_time.normalize():
            holding[t] = int((known.to_period("M") == nxt).sum()) or 21
        else:
            holding[t] = 21  # the next month is past the calendar: a typical month's sessions
    return holding

"""The day loop (``simulate``): one function per step of a session, on the state of ``state.py``.

Each component draws from its own random stream (``RandomStreams``) with the same array shapes every
session, whoever trades, so that a component's draws never shift another's and a run to an earlier end is
an exact prefix of a longer one. Within a stream the order of the draws is the market: the steps below must
keep it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.config import MarketConfig
from factor_pipeline.market import session_calendar, trading_rules
from factor_pipeline.market.synthetic.parameters import (
    ATTENTION,
    ATTENTION_DECAY,
    ATTENTION_SHOCK_SD,
    BOARDS,
    BONUS_MIN_PRICE,
    BONUS_PROB,
    BSE,
    EPISODE_CALM,
    EPISODE_DAYS,
    EPISODE_DRIFT,
    EPISODE_DRIFT_DAYS,
    EPISODE_QUIET,
    EPISODE_RAMP,
    EPISODE_RATE,
    IDIO_GARCH,
    IDIO_MARKET_ELASTICITY,
    IDIO_MAX_VOL_MULT,
    IDIO_T_DF,
    INDUSTRY_T_DF,
    IPO_POP_LOG_MEAN,
    IPO_POP_LOG_SD,
    IPO_VOL_MULT,
    JUMP_PROB,
    JUMP_SIZE,
    KERNEL_DAYS,
    LIMIT_CARRY,
    LOW_VOL_PREMIUM,
    MARKET_DRIFT,
    MARKET_GARCH,
    MARKET_JUMP_DOWN_SHARE,
    MARKET_JUMP_PROB,
    MARKET_JUMP_SIZE,
    MARKET_T_CAP,
    MARKET_T_DF,
    MARKET_TURNOVER_PHI,
    MARKET_TURNOVER_SD,
    MARKET_VOL,
    MAX_GAP,
    ONE_PRICE_EXCESS,
    REGIME_PHI,
    REGIME_SD,
    REVERSAL,
    SIZE_VOL,
    SUSPEND_LOG_MEAN,
    SUSPEND_LOG_SD,
    SUSPEND_MAX,
    SUSPEND_NEWS_SD,
    SUSPEND_PROB,
    TURNOVER_ABS_RETURN,
    TURNOVER_AR_PHI,
    TURNOVER_AR_SD,
    TURNOVER_NOISE_SD,
    TURNOVER_REVERSAL_SCALE,
    TURNOVER_VOL_ELASTICITY,
)
from factor_pipeline.market.synthetic.plan import EventSchedule, MarketPlan, month_end_holding
from factor_pipeline.market.synthetic.state import (
    Bars,
    EpisodeClock,
    LatentReturns,
    LifeCycle,
    MarketFactors,
    MarketState,
    PlantedEvents,
    Quotes,
    RandomStreams,
    Recording,
    SimulationState,
    StockProcesses,
    Trades,
)

# The limit ratio of every (board, ST) pair: board index + 4 x is_st.
_RULE_BOARD = np.array(BOARDS * 2, dtype=object)
_RULE_ST = np.array([False] * 4 + [True] * 4)

SEASONED_SESSIONS = 5  # a name's own events (reversal, attention, suspensions) start after its IPO sessions
EPISODE_LIFE = EPISODE_DAYS + EPISODE_DRIFT_DAYS  # sessions from an episode's start to the end of its drift


def _event_kernel() -> np.ndarray:
    """Weights of an event's drift over the next KERNEL_DAYS sessions (lag 1..K), linearly declining, sum 1."""
    w = np.arange(KERNEL_DAYS, 0, -1, dtype=float)
    return w / w.sum()


def _episode_weights() -> np.ndarray:
    """Drift weight on episode day k (k = 0 the first episode day): 0 during the episode, 1/20 for 20 days after."""
    w = np.zeros(EPISODE_LIFE)
    w[EPISODE_DAYS:] = 1.0 / EPISODE_DRIFT_DAYS
    return w


EVENT_KERNEL = _event_kernel()
EPISODE_WEIGHTS = _episode_weights()
EVENT_KERNEL.setflags(write=False)
EPISODE_WEIGHTS.setflags(write=False)


def remaining_kernel(weights: np.ndarray, horizon: int) -> np.ndarray:
    """rem[a] = sum_{h=1..H} w[a+h] for an event a sessions old (a = 0..len-1); w[l] is the weight at lag l."""
    size = len(weights)  # weights[0] is lag 1
    padded = np.concatenate([[0.0], weights, np.zeros(horizon + 1)])
    csum = np.cumsum(padded)
    ages = np.arange(size)
    return csum[np.minimum(ages + horizon, len(padded) - 1)] - csum[ages]


def low_vol_drift(plan: MarketPlan, strength: float) -> np.ndarray:
    """Per-session drift of each name from the low-volatility level effect: -strength x z(log base vol)."""
    log_sigma = np.log(plan.idio_vol)
    return -strength * LOW_VOL_PREMIUM * (log_sigma - log_sigma.mean()) / log_sigma.std()


def _std_t(rng: np.random.Generator, df: float, size) -> np.ndarray:
    return rng.standard_t(df, size=size) * np.sqrt((df - 2.0) / df)


def simulate(
    plan: MarketPlan,
    sessions: pd.DatetimeIndex,
    seeds,
    calendar: session_calendar.SessionCalendar,
    effects: MarketConfig,
    session_truth_horizon: int = 0,
) -> Recording:
    """The day loop. ``session_truth_horizon`` > 0 also records, at every session, each trading name's expected
    return over that many sessions (a diagnostic of what a model could learn; the pipeline never reads it)."""
    streams = RandomStreams.of(seeds)
    state = SimulationState.at_start(plan, streams.volume)
    schedule = EventSchedule.of(plan)
    holding_days = month_end_holding(sessions, calendar)
    level_drift = low_vol_drift(plan, effects.low_vol_premium) if effects.low_vol_premium else None
    recording = Recording()
    life, quotes, events = state.life, state.quotes, state.events

    for t, date in enumerate(sessions):
        factors = draw_market_factors(state.market, plan.industry_vol, streams.market)
        list_new_names(life, plan, t)
        start_delisting_st(life, plan, schedule, t, quotes.close)
        start_recoverable_st(life, plan, schedule, t, quotes.close, streams.st_choice)
        end_recovered_st(life, t)
        listed = life.listed(t)
        suspended = start_suspensions(life, quotes, listed, streams.suspensions)
        trading = listed & ~suspended
        episodes = start_episodes(events, life, trading, t, effects.episodes, streams.episodes)
        drift = expected_drift(events, t, episodes, level_drift)
        returns = draw_latent_returns(plan, life, state.processes, factors, episodes, drift, streams)
        hold_move_while_suspended(quotes, returns, suspended)
        pre_close = pay_dividends(quotes, life, plan, schedule, trading, t)
        bars = form_prices(quotes, plan, life, pre_close, returns, trading, date, streams.intraday)
        trades = trade_volume(state, plan, bars, returns, episodes, factors, trading, effects, streams.volume)
        expire_lockups(quotes, life, streams.lockup)
        reversal_events = reversal_events_of(returns, listed, life, plan, bars, trades, factors, effects)
        events.reversal[t % KERNEL_DAYS] = reversal_events
        events.attention[t % KERNEL_DAYS] = trades.attention_events
        recording.add_session(bars, trades, quotes, life)
        if t in holding_days:
            expected = expected_return_to_next_month_end(
                t, holding_days[t], bars.rows, events, episodes, quotes, plan, level_drift
            )
            recording.truth.append((date.strftime("%Y-%m"), bars.rows, expected))
        if session_truth_horizon:
            expected = expected_return_to_next_month_end(
                t, session_truth_horizon, bars.rows, events, episodes, quotes, plan, level_drift
            )
            recording.session_truth.append((t, bars.rows, expected))
        life.suspension_left[suspended] -= 1
        life.days_listed[listed] += 1

    recording.delisting_session = life.delisting_session
    return recording


def draw_market_factors(state: MarketState, industry_vol: np.ndarray, rng: np.random.Generator) -> MarketFactors:
    """Market factor: GJR-GARCH with t innovations, a slow volatility regime and rare jump days; industry and size
    factors and the market's turnover, all at the market's volatility level."""
    alpha, gamma, beta = MARKET_GARCH
    omega = MARKET_VOL ** 2 * (1.0 - alpha - beta - 0.5 * gamma)
    state.log_vol_regime = REGIME_PHI * state.log_vol_regime + np.sqrt(1 - REGIME_PHI ** 2) * REGIME_SD * rng.normal()
    regime_mult = np.exp(state.log_vol_regime - REGIME_SD ** 2)
    z = float(np.clip(_std_t(rng, MARKET_T_DF, None), -MARKET_T_CAP, MARKET_T_CAP))
    vol = np.sqrt(state.variance) * regime_mult
    u_jump, z_jump = rng.uniform(), rng.normal()
    jump = 0.0
    if u_jump < MARKET_JUMP_PROB:  # a market-wide jump day (crash or policy rally)
        sign = -1.0 if u_jump < MARKET_JUMP_PROB * MARKET_JUMP_DOWN_SHARE else 1.0
        jump = sign * MARKET_JUMP_SIZE * np.exp(0.25 * z_jump) * regime_mult
    shock = vol * z + jump
    market = MARKET_DRIFT + shock
    # Robust GARCH (as for stocks): half of a jump feeds the variance, the shock is capped at 4 sd and the
    # variance at 3x its long-run level.
    innovation = np.sqrt(state.variance) * np.clip(z, -4.0, 4.0) + 0.5 * jump / regime_mult
    variance = omega + (alpha + gamma * (innovation < 0)) * innovation ** 2 + beta * state.variance
    state.variance = min(variance, (3.0 * MARKET_VOL) ** 2)
    vol_level = np.sqrt(state.variance / MARKET_VOL ** 2) * regime_mult
    industry = industry_vol * vol_level * _std_t(rng, INDUSTRY_T_DF, len(industry_vol))
    size = SIZE_VOL * vol_level * rng.normal()
    state.log_turnover_level = (MARKET_TURNOVER_PHI * state.log_turnover_level
                                + np.sqrt(1 - MARKET_TURNOVER_PHI ** 2) * MARKET_TURNOVER_SD * rng.normal())
    return MarketFactors(market=market, industry=industry, size=size, vol_level=vol_level,
                         log_turnover_level=state.log_turnover_level)


def list_new_names(life: LifeCycle, plan: MarketPlan, t: int) -> None:
    new = plan.listing_session == t
    if new.any():
        life.days_listed[new] = 0


def start_delisting_st(life: LifeCycle, plan: MarketPlan, schedule: EventSchedule, t: int, close: np.ndarray) -> None:
    """A planned delisting hits the cheapest listed non-ST name (as the face-value rule would), preferably one
    listed for a year: ST now, delisted at the planned session."""
    for k in schedule.delisting_st_starts.get(t, ()):
        listed = life.listed(t)
        candidates = listed & ~life.is_st & ~life.pending_delisting & (life.days_listed >= 250)
        if not candidates.any():
            candidates = listed & ~life.is_st & ~life.pending_delisting
        if not candidates.any():
            continue
        pick = np.flatnonzero(candidates)[np.argmin(close[candidates])]
        life.is_st[pick] = True
        life.pending_delisting[pick] = True
        life.delisting_session[pick] = int(plan.delisting_sessions[k])


def start_recoverable_st(
    life: LifeCycle, plan: MarketPlan, schedule: EventSchedule, t: int, close: np.ndarray, rng: np.random.Generator
) -> None:
    """A recoverable ST period hits a name drawn among the cheapest sixth of the listed non-ST names."""
    for k in schedule.recoverable_st_starts.get(t, ()):
        listed = life.listed(t)
        candidates = np.flatnonzero(listed & ~life.is_st & ~life.pending_delisting & (life.days_listed >= 250))
        if len(candidates) == 0:
            continue
        cheap = candidates[np.argsort(close[candidates], kind="stable")[: max(1, len(candidates) // 6)]]
        pick = cheap[rng.integers(0, len(cheap))]
        life.is_st[pick] = True
        life.st_until[pick] = int(plan.recoverable_st_end[k])


def end_recovered_st(life: LifeCycle, t: int) -> None:
    ending = life.is_st & ~life.pending_delisting & (life.st_until < t)
    if ending.any():
        life.is_st[ending] = False


def start_suspensions(life: LifeCycle, quotes: Quotes, listed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Starts today's suspensions (ST names twice as often); a halt of 5+ sessions comes with news, priced in on
    resumption. Returns the names suspended today."""
    n = len(listed)
    u = rng.uniform(size=n)
    length = np.minimum(
        SUSPEND_MAX, np.ceil(np.exp(rng.normal(SUSPEND_LOG_MEAN, SUSPEND_LOG_SD, size=n)))
    ).astype(np.int64)
    news = rng.normal(0.0, SUSPEND_NEWS_SD, size=n)
    start = (listed & (life.suspension_left == 0) & (life.days_listed >= SEASONED_SESSIONS)
             & (u < SUSPEND_PROB * (1 + life.is_st)))
    life.suspension_left[start] = length[start]
    long_halt = start & (length >= 5)
    quotes.gap[long_halt] += news[long_halt]
    return listed & (life.suspension_left > 0)


def start_episodes(
    events: PlantedEvents, life: LifeCycle, trading: np.ndarray, t: int, strength: float, rng: np.random.Generator
) -> EpisodeClock:
    """Hidden accumulation episodes start on non-ST names listed for 60 sessions, one at a time per name."""
    n = len(trading)
    u = rng.uniform(size=n)
    drift = rng.uniform(*EPISODE_DRIFT, size=n)
    ramp = rng.uniform(*EPISODE_RAMP, size=n)
    age = t - events.episode_start
    start = trading & ~life.is_st & (life.days_listed >= 60) & (age >= EPISODE_LIFE) & (u < EPISODE_RATE)
    events.episode_start[start] = t
    events.episode_drift[start] = drift[start] if strength == 1.0 else drift[start] * strength
    events.episode_ramp[start] = ramp[start]
    age = t - events.episode_start
    return EpisodeClock(age=age, accumulating=age < EPISODE_DAYS, live=age < EPISODE_LIFE)


def expected_drift(
    events: PlantedEvents, t: int, episodes: EpisodeClock, level_drift: np.ndarray | None
) -> np.ndarray:
    """mu_i(t): today's drift from the known events of the planted effects (and the level effect, when on)."""
    lag_rows = (t - np.arange(1, KERNEL_DAYS + 1)) % KERNEL_DAYS  # buffer row of the event at lag 1..K
    weights = np.zeros(KERNEL_DAYS)
    weights[lag_rows] = EVENT_KERNEL
    drift = weights @ events.reversal + weights @ events.attention
    live = episodes.live
    drift[live] += events.episode_drift[live] * EPISODE_WEIGHTS[episodes.age[live]]
    if level_drift is not None:
        drift += level_drift
    return drift


def draw_latent_returns(
    plan: MarketPlan,
    life: LifeCycle,
    processes: StockProcesses,
    factors: MarketFactors,
    episodes: EpisodeClock,
    drift: np.ndarray,
    streams: RandomStreams,
) -> LatentReturns:
    """r = mu + beta f_mkt + gamma f_ind + s f_size + sigma eps + jump, before limits; on the IPO day the pop."""
    n = plan.n_total
    days_listed = life.days_listed
    no_limit = (days_listed >= 0) & (days_listed < trading_rules.NO_LIMIT_SESSIONS)
    quiet = np.where(episodes.accumulating, EPISODE_QUIET, 1.0)
    vol_mult = np.where(no_limit, IPO_VOL_MULT, 1.0)
    eps = _std_t(streams.idiosyncratic, IDIO_T_DF, n)
    base_sd = np.sqrt(processes.idio_variance)
    vol = base_sd * factors.vol_level ** IDIO_MARKET_ELASTICITY
    idiosyncratic = vol * quiet * eps
    # A robust GARCH: the shock that feeds the variance is capped at 4 sd and the variance at 3x the base
    # volatility, so that one extreme t draw cannot set off an explosive path.
    omega = plan.idio_vol ** 2 * (1.0 - IDIO_GARCH[0] - IDIO_GARCH[1])
    variance = (omega + IDIO_GARCH[0] * (base_sd * np.minimum(np.abs(eps), 4.0)) ** 2
                + IDIO_GARCH[1] * processes.idio_variance)
    processes.idio_variance = np.minimum(variance, IDIO_MAX_VOL_MULT ** 2 * plan.idio_vol ** 2)
    jump = _news_jumps(streams.jumps, n)
    latent = (drift + plan.market_beta * factors.market + plan.industry_loading * factors.industry[plan.industry]
              + plan.size_loading * factors.size + idiosyncratic * vol_mult + jump)
    log_move = np.log1p(np.maximum(latent, -0.9))
    pop = _ipo_pops(streams.ipo_pop, plan.board)
    ipo_day = days_listed == 0
    log_move[ipo_day] = np.log1p(pop[ipo_day]) + idiosyncratic[ipo_day]
    return LatentReturns(idiosyncratic=idiosyncratic, log_move=log_move, vol=vol, vol_mult=vol_mult, no_limit=no_limit)


def _news_jumps(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.uniform(size=n)
    size = JUMP_SIZE * np.exp(rng.normal(0.0, 0.5, size=n))
    sign = np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0)
    return np.where(u < JUMP_PROB, size * sign, 0.0)


def _ipo_pops(rng: np.random.Generator, board: np.ndarray) -> np.ndarray:
    """First-day return of an IPO on each name (smaller on the BJ exchange)."""
    pop = np.exp(rng.normal(IPO_POP_LOG_MEAN, IPO_POP_LOG_SD, size=len(board))) - 1.0
    return np.where(board == BSE, pop * 0.6, pop)


def hold_move_while_suspended(quotes: Quotes, returns: LatentReturns, suspended: np.ndarray) -> None:
    quotes.gap[suspended] = np.clip(quotes.gap[suspended] + returns.log_move[suspended], -MAX_GAP, MAX_GAP)


def pay_dividends(
    quotes: Quotes, life: LifeCycle, plan: MarketPlan, schedule: EventSchedule, trading: np.ndarray, t: int
) -> np.ndarray:
    """Dividends and bonus shares on today's ex-dates. Returns pre_close: the exchange's ex-right reference price
    where a name goes ex today, else yesterday's close; adj_factor *= close / pre_close."""
    pre_close = quotes.close.copy()
    ex_today = schedule.ex_dates.get(t)
    if ex_today is None:
        return pre_close
    ids, year = ex_today
    close = quotes.close
    cash = np.round(plan.dividend_yield[ids, year] * close[ids], 3)
    bonus = np.where(
        (close[ids] > BONUS_MIN_PRICE) & (plan.bonus_u[ids, year] < BONUS_PROB), plan.bonus_ratio[ids, year], 0.0,
    )
    reference = trading_rules.round_half_up(np.maximum((close[ids] - cash) / (1.0 + bonus), 0.01))
    # Paid by names listed for 120 sessions and trading that day, when the reference price moves a tick.
    paid = trading[ids] & (life.days_listed[ids] >= 120) & (reference < close[ids])
    ids, reference, bonus = ids[paid], reference[paid], bonus[paid]
    if len(ids):
        quotes.adj_factor[ids] = quotes.adj_factor[ids] * close[ids] / reference
        pre_close[ids] = reference
        quotes.float_shares[ids] = np.round(quotes.float_shares[ids] * (1.0 + bonus) / 100.0) * 100.0
    return pre_close


def form_prices(
    quotes: Quotes,
    plan: MarketPlan,
    life: LifeCycle,
    pre_close: np.ndarray,
    returns: LatentReturns,
    trading: np.ndarray,
    date: pd.Timestamp,
    rng: np.random.Generator,
) -> Bars:
    """Open, high, low, close and VWAP on the tick and within the limits; updates the close and the held-back move."""
    n = plan.n_total
    rows = np.flatnonzero(trading)
    pc = pre_close[rows]
    ratios = trading_rules.limit_ratio(_RULE_BOARD, np.full(8, date.to_datetime64()), _RULE_ST)
    up, dn = trading_rules.limit_prices(pc, ratios[plan.board[rows] + 4 * life.is_st[rows]])
    no_limit = returns.no_limit[rows]
    up = np.where(no_limit, np.inf, up)
    dn = np.maximum(np.where(no_limit, 0.01, dn), 0.01)
    gap = quotes.gap[rows]
    x = returns.log_move[rows]
    target = gap + x
    vol = returns.vol[rows] * returns.vol_mult[rows]
    z_open = rng.normal(size=n)[rows]
    z_high = np.abs(rng.normal(size=n))[rows]
    z_low = np.abs(rng.normal(size=n))[rows]
    z_vwap = rng.normal(size=n)[rows]
    one_price_u = rng.uniform(size=n)[rows]
    open_log = gap + 0.4 * x + 0.35 * vol * z_open
    close_raw = pc * np.exp(target)
    open_raw = pc * np.exp(open_log)
    close = np.clip(trading_rules.round_half_up(close_raw), dn, up)
    open_ = np.clip(trading_rules.round_half_up(open_raw), dn, up)
    log_up = np.log(up / pc)
    log_dn = np.log(dn / pc)
    # A latent move far beyond the limit, on top of a move already held back, leaves no trade but at the limit.
    one_up = (target > log_up + ONE_PRICE_EXCESS) & (gap > 0) & ~no_limit
    one_dn = (target < log_dn - ONE_PRICE_EXCESS) & (gap < 0) & ~no_limit
    one_price = one_up | one_dn
    open_ = np.where(one_up, up, np.where(one_dn, dn, open_))
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high_raw = np.maximum(open_raw, close_raw) * np.exp(0.55 * vol * z_high)
    low_raw = np.minimum(open_raw, close_raw) * np.exp(-0.55 * vol * z_low)
    high = np.minimum(np.maximum(trading_rules.round_half_up(high_raw), top), np.maximum(up, top))
    low = np.maximum(np.minimum(trading_rules.round_half_up(low_raw), bottom), dn)
    high = np.where(one_price, top, high)
    low = np.where(one_price, bottom, low)
    vwap = (open_ + close + high + low) / 4.0 * np.exp(0.1 * vol * z_vwap)
    vwap = np.clip(vwap, low, high)
    # The unfilled part of a move beyond the limit carries to the next session, partly (some of the
    # excess demand fades overnight); a move within the limits leaves only the tick-rounding residual.
    quotes.gap[rows] = np.clip(LIMIT_CARRY * np.log(close_raw / close), -MAX_GAP, MAX_GAP)
    quotes.close[rows] = close
    return Bars(rows=rows, pre_close=pc, open=open_, high=high, low=low, close=close, vwap=vwap, limit_up=up,
                limit_down=dn, no_limit=no_limit, target=target, log_limit_up=log_up, log_limit_down=log_dn,
                one_price=one_price, vol=vol, one_price_u=one_price_u)


def trade_volume(
    state: SimulationState,
    plan: MarketPlan,
    bars: Bars,
    returns: LatentReturns,
    episodes: EpisodeClock,
    factors: MarketFactors,
    trading: np.ndarray,
    effects: MarketConfig,
    rng: np.random.Generator,
) -> Trades:
    """Volume and amount: log turnover = base + market level + stock AR(1) + response to |r| and volatility +
    attention spike + episode ramp + IPO excess + noise, damped on limit days. Also draws the day's attention
    shocks, the events of the attention effect."""
    n = plan.n_total
    rows = bars.rows
    processes = state.processes
    days_listed = state.life.days_listed
    processes.turnover_ar = (TURNOVER_AR_PHI * processes.turnover_ar
                             + np.sqrt(1 - TURNOVER_AR_PHI ** 2) * TURNOVER_AR_SD * rng.normal(size=n))
    noise = rng.normal(0.0, TURNOVER_NOISE_SD, size=n)
    ipo_level = np.exp(rng.normal(np.log(0.6), 0.2, size=n))
    attention_shock = rng.normal(0.0, ATTENTION_SHOCK_SD, size=n)
    abs_std = np.abs(bars.close / bars.pre_close - 1.0) / plan.idio_vol[rows]
    calm = np.where(episodes.accumulating, EPISODE_CALM, 1.0)  # volume rises smoothly during an episode
    attention_shock = attention_shock * calm
    seasoned_trading = trading & (days_listed >= SEASONED_SESSIONS)
    processes.attention_spike = (ATTENTION_DECAY * processes.attention_spike
                                 + np.where(seasoned_trading, attention_shock, 0.0))
    attention_events = np.where(seasoned_trading, -ATTENTION * effects.attention * attention_shock, 0.0)
    # Nobody trades at a one-price limit: no response to the move.
    abs_response = np.where(bars.one_price, 0.8, np.minimum(abs_std, 8.0))
    log_turnover_base = (plan.log_turnover_base[rows] + factors.log_turnover_level + processes.turnover_ar[rows]
                         + TURNOVER_ABS_RETURN * (abs_response - 0.8)
                         + TURNOVER_VOL_ELASTICITY * np.log(returns.vol[rows] / plan.idio_vol[rows]))
    age = episodes.age[rows]
    episode_ramp = np.where(age < EPISODE_DAYS, state.events.episode_ramp[rows] * (age + 1) / EPISODE_DAYS, 0.0)
    ipo_excess = _ipo_turnover_excess(processes, plan, days_listed, rows, ipo_level)
    log_turnover = (log_turnover_base + processes.attention_spike[rows] + episode_ramp + ipo_excess
                    + noise[rows] * calm[rows])
    turnover = np.minimum(np.exp(log_turnover) * _limit_day_damping(bars), 0.85)
    volume = np.maximum(100.0, np.round(turnover * state.quotes.float_shares[rows] / 100.0) * 100.0)
    return Trades(log_turnover=log_turnover, volume=volume, amount=volume * bars.vwap,
                  attention_events=attention_events)


def _ipo_turnover_excess(
    processes: StockProcesses, plan: MarketPlan, days_listed: np.ndarray, rows: np.ndarray, ipo_level: np.ndarray
) -> np.ndarray:
    """An IPO's first-day turnover (around 60%) over the name's base, fading by 0.55 a session for 60 sessions."""
    ipo_day = days_listed[rows] == 0
    first_day_excess = np.log(ipo_level[rows]) - plan.log_turnover_base[rows]
    processes.ipo_turnover_excess[rows] = np.where(ipo_day, first_day_excess, processes.ipo_turnover_excess[rows])
    age = np.maximum(days_listed[rows], 0)
    return np.where(age < 60, processes.ipo_turnover_excess[rows] * 0.55 ** age, 0.0)


def _limit_day_damping(bars: Bars) -> np.ndarray:
    """Multiplier of turnover: a close at the limit trades less the further the latent move goes beyond it, and a
    one-price day trades 1-6% of the usual volume."""
    at_up = (bars.close >= bars.limit_up) & ~bars.no_limit
    at_dn = (bars.close <= bars.limit_down) & ~bars.no_limit
    excess = np.where(at_up, bars.target - bars.log_limit_up,
                      np.where(at_dn, bars.log_limit_down - bars.target, 0.0))
    damping = np.where(at_up | at_dn, np.exp(-np.maximum(excess, 0.0) / 0.015), 1.0)
    return np.where(bars.one_price, 0.01 + 0.05 * bars.one_price_u, np.maximum(damping, 0.03))


def expire_lockups(quotes: Quotes, life: LifeCycle, rng: np.random.Generator) -> None:
    """The IPO's locked-up shares start to trade one year after listing: the float grows."""
    expiring = life.days_listed == 250
    if expiring.any():
        growth = rng.uniform(1.4, 2.6)
        quotes.float_shares[expiring] = np.round(quotes.float_shares[expiring] * growth / 100.0) * 100.0


def reversal_events_of(
    returns: LatentReturns,
    listed: np.ndarray,
    life: LifeCycle,
    plan: MarketPlan,
    bars: Bars,
    trades: Trades,
    factors: MarketFactors,
    effects: MarketConfig,
) -> np.ndarray:
    """Each seasoned name's idiosyncratic shock, times minus its share that reverses over the next sessions."""
    seasoned = listed & (life.days_listed >= SEASONED_SESSIONS)
    shock = returns.idiosyncratic
    events = np.where(seasoned, -REVERSAL * effects.reversal * shock, 0.0)
    if effects.turnover_reversal:
        # The interaction: a shock on a day of heavy trading (relative to the name's usual level and
        # the market's) reverses more, on a quiet day less; on average about as much as without it.
        excess = np.zeros(plan.n_total)
        excess[bars.rows] = trades.log_turnover - plan.log_turnover_base[bars.rows] - factors.log_turnover_level
        events = events + (
            -REVERSAL * effects.turnover_reversal * np.tanh(excess / TURNOVER_REVERSAL_SCALE) * shock
        ) * seasoned
    return events


def expected_return_to_next_month_end(
    t: int,
    holding_days: int,
    rows: np.ndarray,
    events: PlantedEvents,
    episodes: EpisodeClock,
    quotes: Quotes,
    plan: MarketPlan,
    level_drift: np.ndarray | None,
) -> np.ndarray:
    """The truth for the trading names: the held-back move, the known events' drift over the holding days, and
    the equity premium (and the level effect, when on)."""
    ages = (t - np.arange(KERNEL_DAYS)) % KERNEL_DAYS  # buffer row of the event that is a sessions old
    remaining = np.zeros(KERNEL_DAYS)
    remaining[ages] = remaining_kernel(EVENT_KERNEL, holding_days)
    drift = remaining @ events.reversal[:, rows] + remaining @ events.attention[:, rows]
    age = episodes.age[rows]
    episode_drift = np.zeros(len(rows))
    live = age < EPISODE_LIFE
    if live.any():
        csum = np.concatenate([[0.0], np.cumsum(EPISODE_WEIGHTS)])
        first = np.minimum(age[live] + 1, EPISODE_LIFE)
        last = np.minimum(age[live] + holding_days, EPISODE_LIFE - 1) + 1
        episode_drift[live] = events.episode_drift[rows][live] * (csum[last] - csum[first])
    expected = (np.expm1(quotes.gap[rows]) + drift + episode_drift
                + plan.market_beta[rows] * MARKET_DRIFT * holding_days)
    if level_drift is not None:
        expected = expected + level_drift[rows] * holding_days
    return expected

"""A deterministic, seeded A-share-like market: the pipeline's default data source.

``generate_market(cfg, sessions=None) -> SyntheticMarket(daily, stocks, truth)``

- ``daily``: canonical daily bars (docs/INTERFACES.md), sorted by (trade_date, ts_code), no row on a
  suspended day; ``stocks``: the canonical stocks table of every name listed by the last session
  (delisted names included; a delist date only when it falls within the run); ``truth``: for every month
  end d(m) and every stock trading on it, E[R(i,m) | the generator's state at the close of d(m)].
- Same config (seed included) -> bit-identical frames. Each component draws from its own child stream
  (``SeedSequence(seed).spawn``) with the same array shapes every session, and the plan of listings,
  delistings and dividends is laid out to exchange-calendars' horizon whatever ``cfg.end`` is: a run to an
  earlier end is an exact prefix of a longer run (no look-ahead in the source). Past that horizon the
  market runs on (synthetic calendar, or a calendar file) without new listings, delistings, ST periods
  or dividends, so extending the calendar never changes a month before it.
- Full profile (5,000 names, 2017-2026, ~9.8M rows): ~10 s and ~1.8 GB peak RSS (bench/bench_market.py).

Universe. ``cfg.n_stocks`` names are listed at the plan's end (the calendar's horizon); at the start
n_stocks x (1 - 0.04 x years to the horizon) are listed (52% from 2015), the rest IPO at uniformly spread
sessions. Codes follow the boards of MARKET.md (600/601/603/605 and 000/001/002/003 main board, 300/301
ChiNext, 688/689 STAR from 2019-07-22, 83x/87x/430 BJ from 2021-11-15), numbered in listing order; names
"Synthetic 0001"...; 31 SW level-1 industries with real-like uneven sizes (Conglomerates ~0.3%).
Delistings: 0.7% of names a year; the stock is chosen at the start of its 240-480-session ST period (the
cheapest listed non-ST name, as with the face-value rule), trades at the ST limit and then disappears.
Recoverable ST periods (120-300 sessions) hit 1.2% of names a year (chosen among the cheapest sixth).

Returns. Daily simple return of stock i (latent, before limits):
    r = mu_i(t) + beta_i f_mkt + gamma_i f_ind(k_i) + s_i f_size + sigma_i(t) eps_i + jump
- market f_mkt: drift 0.0004, GJR-GARCH(1,1) (0.08, 0.05, 0.86), unconditional vol 1.48%/day, t(4)
  innovations truncated at 7 sd, times a slow log-vol regime (AR(1) phi 0.996, sd 0.25), and market jump
  days (p 0.005, median 5%, 60% down); industries t(5.5), vol ~0.65%; size factor vol 0.4%, loading
  -0.8 x z(log float cap). All factor volatilities share the market's volatility level.
- idiosyncratic: robust GARCH(1,1) (0.11, 0.87; shock capped at 4 sd, vol at 3x base), t(5) innovations,
  base vol 2.5%/day x exp(-0.17 z(size)) x board (ChiNext 1.2, STAR 1.25, BJ 1.3), times the market
  volatility level ^ 0.8; news jumps (p 0.0015 per day, median 9%).
Trading rules (market_rules): limit prices from pre_close by board, date and ST, rounded half-up; every
price on the 0.01 tick and within the limits; a move beyond the limit carries (60% of it) to the next
session, which gives runs of limit days, one-price (open = high = low = close) limit days on 1-6% of the
usual volume when the carried move exceeds the limit by 3%. IPOs: first-day return lognormal (median
+73%), no limit and 2.5x volatility for 5 sessions. Suspensions: 0.28% of stock-days start one, lengths
ceil(lognormal(0.7, 1.4)) capped at 250 (median 2, tail to months), a news move (sd 8%) for halts of 5+
sessions; the latent move builds up and is released on resumption (through limits). Dividends: 65% of
names a year, mostly May-July, yield lognormal (median 1.1%), bonus shares (0.2-1.0) for some names above
20 CNY; pre_close is the exchange's ex-right reference price and adj_factor *= close / pre_close, so
close x adj_factor is a continuous total-return price.
Volume: log turnover = base (median 2.2%, -0.42 per sd of log size, ChiNext/STAR higher, BJ lower)
+ market turnover factor (AR 0.995) + stock AR(1) (0.96, sd 0.32) + 0.36 x |r|/sigma + 0.8 x log(vol
level) + attention spike + episode ramp + IPO excess + noise, damped on limit days; volume in lots of 100
shares (>= 100), amount = volume x a VWAP inside [low, high]; float shares grow at bonus issues and at
the lock-up expiry one year after an IPO.

Planted effects. mu_i(t) is the sum of known past events' drifts:
1. Short-term reversal: each idiosyncratic shock e_i(s) adds -0.20 x e_i(s) spread over the next 20
   sessions (weights 20, 19, ..., 1, normalised). Alone: oracle IC ~0.10, reversal rank IC ~-0.06.
2. Attention: each i.i.d. attention shock a_i(s) ~ N(0, 0.35) to log turnover (a spike fading by half a
   day) adds -0.006 x a_i(s) over the next 20 sessions (same kernel). Alone: oracle IC ~0.05.
3. Accumulation episodes (order-dependent): at rate 1/300 per stock-day (non-ST, listed 60+ sessions), a
   hidden 10-session episode: log turnover rises linearly by 0.8-1.4 with its noise damped to 40% and
   idiosyncratic volatility at 55% (a quiet price), then volume drops back and a drift of 3-7% accrues
   evenly over the next 20 sessions. The same volumes in another order, or an episode that ended 20+
   sessions ago, predict nothing. An episode still in progress at d(m) is part of the state: its coming
   drift is in the truth. Alone: oracle IC ~0.10.
4. Limit carry: the part of a move still held back by the limit (or by a suspension) is released later.
Switchable (``MarketConfig``; the embedded market has 1, 1, 1, 0, 0): effects 1-3 scale by ``reversal``,
``attention`` and ``episodes`` (0 switches one off), and two effects the embedded market lacks exist for
judging a model on markets it was not tuned on:
5. Low-volatility premium (a level effect, ``low_vol_premium``): every session each name drifts by
   -0.0005 x strength x z(log base idiosyncratic volatility), so quieter names earn more (~1%/month per sd).
   A per-window z-score of the inputs cannot see it.
6. Turnover-dependent reversal (an interaction, ``turnover_reversal``): each idiosyncratic shock's
   reversal gains -0.20 x strength x tanh(excess log turnover / 0.5) x e, the excess being the day's log
   turnover over the name's base and the market's level: heavy-volume moves reverse more.
With the switches at their embedded values the frames are bit-identical to the market without them.
Truth: expected_return = expm1(carried gap) + sum over known events of their drift over the holding
days d(m)+1..d(m+1) + beta_i x 0.0004 x holding days. It is exact for the generator's drift but ignores
second-order effects: events after d(m) (their drifts have mean zero, except new episodes, whose mean is
the same for every eligible stock), compounding, limits and suspensions within the holding period. The
monthly oracle IC (Pearson, truth vs realised R) averages ~0.16 (0.13-0.20 by year); regressing R on
truth gives a slope ~1.

See docs/synthetic_market.md for the measured stylized facts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from factor_pipeline.market import trading_rules
from factor_pipeline.market import session_calendar
from factor_pipeline.config import MarketConfig

# --------------------------------------------------------------------------------------------------
# Parameters (documented in the module docstring and in docs/synthetic_market.md)

TRADING_DAYS = 244

# Universe
LISTED_SHARE_PER_YEAR = 0.04  # listed names at the start = n_stocks x (1 - 0.04 x years to the plan horizon)
MIN_LISTED_SHARE = 0.35
DELIST_RATE = 0.007  # delistings per listed name and year
ST_RECOVER_RATE = 0.012  # ST periods that end without a delisting, per name and year
ST_BEFORE_DELIST = (240, 480)  # sessions of ST before the delisting
ST_RECOVER_LENGTH = (120, 300)

# Factor model (daily simple returns)
MARKET_DRIFT = 0.0004  # equity premium per session (about 10% a year)
MARKET_VOL = 0.0148  # unconditional daily volatility of the market factor
MARKET_GARCH = (0.08, 0.05, 0.86)  # alpha, gamma (extra weight on down days), beta
MARKET_T_DF = 4.0
MARKET_T_CAP = 7.0  # market innovations truncated at 7 sd (a finite-sample kurtosis that settles)
REGIME_PHI, REGIME_SD = 0.996, 0.25  # slow log-volatility regime shared by all components
MARKET_JUMP_PROB = 0.005  # market-wide jump days per session
MARKET_JUMP_SIZE = 0.05  # their median size
MARKET_JUMP_DOWN_SHARE = 0.6
INDUSTRY_VOL = 0.0065
INDUSTRY_T_DF = 5.5
SIZE_VOL = 0.0040
IDIO_VOL = 0.025  # typical idiosyncratic daily volatility (mid-cap, main board)
IDIO_SIZE_SLOPE = -0.17  # log idiosyncratic volatility per standard deviation of log float cap
IDIO_GARCH = (0.11, 0.87)  # alpha, beta
IDIO_T_DF = 5.0
IDIO_MAX_VOL_MULT = 3.0
IDIO_MARKET_ELASTICITY = 0.8  # idiosyncratic volatility moves with market volatility ^ 0.8
JUMP_PROB = 0.0015  # news jumps per stock-day
JUMP_SIZE = 0.09  # median absolute jump

# Planted effects
KERNEL_DAYS = 20
REVERSAL = 0.20  # fraction of each idiosyncratic return that reverses over the next 20 sessions
ATTENTION = 0.006  # expected return over the next 20 sessions per unit of attention shock (negative)
EPISODE_RATE = 1.0 / 300.0  # accumulation episodes per eligible stock-day
EPISODE_DAYS = 10  # length of the accumulation (volume ramp, quiet price)
EPISODE_DRIFT_DAYS = 20  # the drift after the episode
EPISODE_DRIFT = (0.03, 0.07)  # total drift after an episode, uniform
EPISODE_RAMP = (0.8, 1.4)  # log-turnover increase at the episode's last day, uniform
EPISODE_QUIET = 0.55  # idiosyncratic volatility multiplier during the episode
EPISODE_CALM = 0.4  # multiplier of the day-to-day turnover noise during the episode
# Effects absent from the embedded market (MarketConfig switches them on, scaled by their multiplier):
LOW_VOL_PREMIUM = 0.0005  # drift per session per sd of a name's log base volatility, lower vol earning more
TURNOVER_REVERSAL_SCALE = 0.5  # excess log turnover (over the name's base and the market's) per unit of tanh

# Trading
SUSPEND_PROB = 0.0028
SUSPEND_LOG_MEAN, SUSPEND_LOG_SD, SUSPEND_MAX = 0.7, 1.4, 250
SUSPEND_NEWS_SD = 0.08  # news priced in while halted, released on resumption
IPO_POP_LOG_MEAN, IPO_POP_LOG_SD = 0.55, 0.45  # log(1 + first-day return)
IPO_VOL_MULT = 2.5  # idiosyncratic volatility multiplier on days 2 to 5
LIMIT_CARRY = 0.6  # share of a move beyond the limit that carries to the next session
MAX_GAP = 0.8  # the latent move still to be released (limits, suspensions) is kept within +-0.8 in log
ONE_PRICE_EXCESS = 0.03  # a latent move this far beyond the limit makes a one-price (一字) limit day

# Volume
TURNOVER_MEDIAN = 0.022
TURNOVER_SIZE_SLOPE = -0.42
TURNOVER_AR_PHI, TURNOVER_AR_SD = 0.96, 0.32
MARKET_TURNOVER_PHI, MARKET_TURNOVER_SD = 0.995, 0.30
TURNOVER_ABS_RETURN = 0.36  # log turnover per unit of |r| / sigma
TURNOVER_VOL_ELASTICITY = 0.8  # log turnover per unit of log(current sigma / base sigma)
TURNOVER_NOISE_SD = 0.12
ATTENTION_SHOCK_SD = 0.35  # i.i.d. attention shocks to log turnover (the events of the attention effect)
ATTENTION_DECAY = 0.5  # an attention spike fades by half each session

# Corporate actions
DIVIDEND_PROB = 0.65
DIVIDEND_YIELD_MEDIAN, DIVIDEND_YIELD_SD = 0.011, 0.6
BONUS_PROB = 0.15  # bonus shares (送转) with the dividend, for stocks above BONUS_MIN_PRICE
BONUS_MIN_PRICE = 20.0
BONUS_RATIOS = np.array([0.2, 0.3, 0.4, 0.5, 0.8, 1.0])

BOARDS = ("main", "chinext", "star", "bse")

# SW level-1 industries (order of trading_rules.INDUSTRY_NAMES): relative sizes and betas.
_INDUSTRY_SIZE = {
    "Agriculture": 100, "Basic Chemicals": 400, "Steel": 45, "Non-ferrous Metals": 135, "Electronics": 460,
    "Automobiles": 270, "Household Appliances": 95, "Food & Beverage": 125, "Textiles & Apparel": 110,
    "Light Manufacturing": 160, "Pharmaceuticals & Biotech": 480, "Utilities": 130, "Transportation": 125,
    "Real Estate": 110, "Retail": 100, "Consumer Services": 75, "Banks": 42, "Non-bank Financials": 90,
    "Conglomerates": 15, "Building Materials": 75, "Construction": 160, "Power Equipment": 350,
    "Machinery": 520, "Defense": 110, "Computers": 330, "Media": 140, "Communications": 130, "Coal": 38,
    "Oil & Petrochemicals": 48, "Environmental Protection": 130, "Beauty & Personal Care": 30,
}
_INDUSTRY_BETA = {
    "Banks": 0.65, "Utilities": 0.8, "Transportation": 0.85, "Food & Beverage": 0.9, "Coal": 0.9,
    "Oil & Petrochemicals": 0.85, "Real Estate": 0.95, "Non-bank Financials": 1.1, "Electronics": 1.15,
    "Computers": 1.2, "Media": 1.15, "Communications": 1.15, "Defense": 1.15, "Power Equipment": 1.1,
}


@dataclass(frozen=True)
class SyntheticMarket:
    daily: pd.DataFrame  # canonical daily bars, sorted by (trade_date, ts_code); no row on suspended days
    stocks: pd.DataFrame  # canonical stocks table, delisted names included
    truth: pd.DataFrame  # month, ts_code, expected_return


# --------------------------------------------------------------------------------------------------
# Kernels of the planted effects


def _kernel() -> np.ndarray:
    """Weights of an event's drift over the next KERNEL_DAYS sessions (lag 1..K), linearly declining, sum 1."""
    w = np.arange(KERNEL_DAYS, 0, -1, dtype=float)
    return w / w.sum()


def _remaining(weights: np.ndarray, horizon: int) -> np.ndarray:
    """rem[a] = sum_{h=1..H} w[a+h] for an event a sessions old (a = 0..len-1); w[l] is the weight at lag l."""
    size = len(weights)  # weights[0] is lag 1
    padded = np.concatenate([[0.0], weights, np.zeros(horizon + 1)])
    csum = np.cumsum(padded)
    ages = np.arange(size)
    return csum[np.minimum(ages + horizon, len(padded) - 1)] - csum[ages]


def _episode_weights() -> np.ndarray:
    """Drift weight on episode day k (k = 0 the first episode day): 0 during the episode, 1/20 for 20 days after."""
    w = np.zeros(EPISODE_DAYS + EPISODE_DRIFT_DAYS)
    w[EPISODE_DAYS:] = 1.0 / EPISODE_DRIFT_DAYS
    return w


# --------------------------------------------------------------------------------------------------
# The plan: static attributes and the listing schedule


@dataclass
class _Plan:
    n_total: int
    codes: np.ndarray  # object, sorted
    board: np.ndarray  # int index into BOARDS
    industry: np.ndarray  # int index into INDUSTRY_NAMES
    list_idx: np.ndarray  # session index of the first trading day (<= -1: listed before the start)
    list_date: np.ndarray  # datetime64[ns]
    issue_price: np.ndarray  # IPO: issue price; pre-listed: the close before the first session
    float_shares: np.ndarray
    adj0: np.ndarray
    size_z: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    size_load: np.ndarray
    sigma: np.ndarray
    turnover_base: np.ndarray  # log
    delist_days: np.ndarray  # session indices of the planned delistings (stock chosen at the ST start)
    delist_st_start: np.ndarray
    recover_start: np.ndarray  # session indices of the ST starts that recover
    recover_end: np.ndarray
    dividend_day: np.ndarray  # [n_total, n_years] session index of the ex-date or -1
    dividend_yield: np.ndarray
    dividend_bonus_u: np.ndarray
    dividend_bonus_ratio: np.ndarray
    industry_vol: np.ndarray


def _business_day_before(start: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    start_day = np.datetime64(start.date(), "D")
    return np.busday_offset(start_day, -days.astype(np.int64), roll="backward").astype("datetime64[ns]")


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


def _plan(cfg: MarketConfig, plan_sessions: pd.DatetimeIndex, seq) -> _Plan:
    rng = np.random.default_rng(seq)
    n_end = int(cfg.n_stocks)
    n_plan = len(plan_sessions)
    years = n_plan / TRADING_DAYS
    share0 = max(MIN_LISTED_SHARE, 1.0 - LISTED_SHARE_PER_YEAR * years)
    n_delist = int(round(n_end * DELIST_RATE * years))
    n_pre = int(round(n_end * share0)) + int(round(n_delist * 0.6))
    n_pre = min(n_pre, n_end + n_delist)
    n_total = n_end + n_delist
    n_ipo = n_total - n_pre

    # Listing days: pre-listed names get a date before the start; IPOs on uniformly drawn sessions of the plan.
    ipo_days = np.sort(rng.integers(1, max(2, n_plan - 5), size=n_ipo))
    list_idx = np.concatenate([np.full(n_pre, -1), ipo_days]).astype(np.int64)
    pre_age = np.exp(rng.uniform(np.log(70), np.log(6500), size=n_pre)).astype(np.int64)
    start = plan_sessions[0]
    list_date = np.empty(n_total, dtype="datetime64[ns]")
    list_date[:n_pre] = _business_day_before(start, pre_age)
    list_date[n_pre:] = plan_sessions.to_numpy()[ipo_days]

    # Boards by listing date.
    star_open = np.datetime64(trading_rules.STAR_OPENED, "ns")
    bse_open = np.datetime64(trading_rules.BSE_30PCT_FROM, "ns")
    u = rng.uniform(size=n_total)
    board_prefix = np.empty(n_total, dtype=object)
    early = list_date < star_open
    mid = (list_date >= star_open) & (list_date < bse_open)
    late = list_date >= bse_open
    pre = np.arange(n_total) < n_pre

    def choose(mask, table):
        cum = np.cumsum([p for _, p in table])
        cum = cum / cum[-1]
        picks = np.searchsorted(cum, u[mask], side="right")
        board_prefix[mask] = np.array([name for name, _ in table], dtype=object)[np.minimum(picks, len(table) - 1)]

    choose(early & pre, [("600", 0.27), ("601", 0.08), ("603", 0.07), ("000", 0.2), ("002", 0.24), ("300", 0.14)])
    choose(early & ~pre, [("603", 0.45), ("601", 0.05), ("002", 0.22), ("300", 0.28)])
    choose(mid, [("688", 0.3), ("603", 0.12), ("605", 0.08), ("002", 0.12), ("003", 0.04), ("300", 0.2),
                 ("301", 0.14)])
    choose(late, [("688", 0.24), ("603", 0.07), ("605", 0.06), ("001", 0.1), ("002", 0.05), ("003", 0.02),
                  ("301", 0.3), ("830", 0.08), ("430", 0.05), ("870", 0.03)])
    codes = _assign_codes(board_prefix, list_date, rng)
    board_name = np.array([trading_rules.board_of(c) for c in codes], dtype=object)
    board = np.array([BOARDS.index(b) for b in board_name], dtype=np.int8)

    # Industries with uneven sizes.
    names = trading_rules.INDUSTRY_NAMES
    weights = np.array([_INDUSTRY_SIZE[name] for name in names], dtype=float)
    industry = rng.choice(len(names), size=n_total, p=weights / weights.sum())
    industry_vol = INDUSTRY_VOL * np.exp(rng.normal(0.0, 0.2, size=len(names)))

    # Size, prices, shares.
    log_cap = rng.normal(np.log(4.5e9), 0.95, size=n_total)
    log_cap[np.array([names[k] in ("Banks", "Non-bank Financials", "Oil & Petrochemicals", "Coal")
                      for k in industry])] += 1.2
    log_cap[board == BOARDS.index("bse")] -= 1.0
    size_z = (log_cap - np.log(4.5e9)) / 0.95
    price0 = np.exp(rng.normal(np.log(11.0), 0.65, size=n_total))
    issue = np.exp(rng.normal(np.log(17.0), 0.5, size=n_total))
    issue[board == BOARDS.index("bse")] *= 0.6
    issue_price = np.where(pre, price0, issue)
    issue_price = trading_rules.round_half_up(np.maximum(issue_price, 1.5))
    float_fraction = np.where(pre, 1.0, rng.uniform(0.2, 0.35, size=n_total))
    float_shares = np.round(np.exp(log_cap) / issue_price * float_fraction / 100.0) * 100.0
    adj0 = np.where(pre, np.exp(rng.uniform(0.0, 1.6, size=n_total)), 1.0)

    beta_ind = np.array([_INDUSTRY_BETA.get(name, 1.0) for name in names])
    beta = beta_ind[industry] * np.exp(rng.normal(0.0, 0.15, size=n_total)) * (1.0 - 0.03 * size_z)
    gamma = np.exp(rng.normal(0.0, 0.2, size=n_total))
    size_load = -0.8 * size_z + rng.normal(0.0, 0.25, size=n_total)
    board_vol = np.array([1.0, 1.2, 1.25, 1.3])[board]
    sigma = IDIO_VOL * np.exp(IDIO_SIZE_SLOPE * size_z) * board_vol * np.exp(rng.normal(0.0, 0.15, size=n_total))
    board_turn = np.array([0.0, 0.35, 0.3, -0.2])[board]
    turnover_base = (np.log(TURNOVER_MEDIAN) + TURNOVER_SIZE_SLOPE * size_z + board_turn
                     + rng.normal(0.0, 0.3, size=n_total))

    # Delistings (stock chosen endogenously at its ST start) and recoverable ST periods.
    delist_days = np.sort(rng.integers(20, max(21, n_plan - 1), size=n_delist))
    st_len = rng.integers(*ST_BEFORE_DELIST, size=n_delist)
    delist_st_start = np.maximum(0, delist_days - st_len)
    n_recover = int(round(n_end * ST_RECOVER_RATE * years))
    recover_start = rng.integers(-200, max(1, n_plan - 20), size=n_recover)
    recover_end = recover_start + rng.integers(*ST_RECOVER_LENGTH, size=n_recover)
    keep = recover_end > 0
    recover_start, recover_end = np.maximum(0, recover_start[keep]), recover_end[keep]

    # Dividends: one ex-date a year for about 65% of names, mostly May to July.
    years_range = np.arange(plan_sessions[0].year, plan_sessions[-1].year + 1)
    n_years = len(years_range)
    pay = rng.uniform(size=(n_total, n_years)) < DIVIDEND_PROB
    season_u = rng.uniform(size=(n_total, n_years))
    off_season = rng.uniform(size=(n_total, n_years)) < 0.1
    yields = DIVIDEND_YIELD_MEDIAN * np.exp(rng.normal(0.0, DIVIDEND_YIELD_SD, size=(n_total, n_years)))
    bonus_u = rng.uniform(size=(n_total, n_years))
    bonus_ratio = BONUS_RATIOS[rng.integers(0, len(BONUS_RATIOS), size=(n_total, n_years))]
    dividend_day = np.full((n_total, n_years), -1, dtype=np.int64)
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
        dividend_day[:, y] = np.where(pay[:, y], days, -1)

    # Internal order: by code, so that each day's rows come out sorted by ts_code.
    order = np.argsort(codes.astype(str), kind="stable")

    def o(a):
        return a[order]

    return _Plan(
        n_total=n_total, codes=o(codes), board=o(board), industry=o(industry), list_idx=o(list_idx),
        list_date=o(list_date), issue_price=o(issue_price), float_shares=o(float_shares), adj0=o(adj0),
        size_z=o(size_z), beta=o(beta), gamma=o(gamma), size_load=o(size_load), sigma=o(sigma),
        turnover_base=o(turnover_base), delist_days=delist_days, delist_st_start=delist_st_start,
        recover_start=recover_start, recover_end=recover_end, dividend_day=o(dividend_day),
        dividend_yield=o(yields), dividend_bonus_u=o(bonus_u), dividend_bonus_ratio=o(bonus_ratio),
        industry_vol=industry_vol,
    )


def _cents(price: np.ndarray) -> np.ndarray:
    """Prices (multiples of 0.01) as int32 cents; /100.0 gives back the same float64."""
    return np.rint(price * 100.0).astype(np.int32)


def _std_t(rng: np.random.Generator, df: float, size) -> np.ndarray:
    return rng.standard_t(df, size=size) * np.sqrt((df - 2.0) / df)


# --------------------------------------------------------------------------------------------------
# The simulation


def _month_ends(sessions: pd.DatetimeIndex, calendar: session_calendar.SessionCalendar) -> tuple[np.ndarray, list[int]]:
    """Indices of the month-end sessions in ``sessions`` and each one's holding days (next month's sessions)."""
    periods = sessions.to_period("M")
    ends, holding = [], []
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
            h = in_sessions
        elif calendar.known_until >= nxt.end_time.normalize():
            h = int((known.to_period("M") == nxt).sum()) or 21
        else:
            h = 21  # the next month is past the calendar: a typical month's sessions
        ends.append(t)
        holding.append(h)
    return np.array(ends, dtype=np.int64), holding


def generate_market(
    cfg: MarketConfig,
    sessions: pd.DatetimeIndex | None = None,
    calendar: session_calendar.SessionCalendar | None = None,
) -> SyntheticMarket:
    """Simulate the market over ``sessions`` (default: the calendar's sessions from cfg.start to cfg.end, or to
    its last day). ``calendar`` defaults to the embedded market's own (exchange-calendars + the synthetic
    calendar). Deterministic."""
    calendar = calendar or session_calendar.resolve("synthetic")
    if sessions is None:
        end = pd.Timestamp(cfg.end) if cfg.end else calendar.known_until
        calendar.check_known(end)
        sessions = calendar.sessions[(calendar.sessions >= pd.Timestamp(cfg.start)) & (calendar.sessions <= end)]
    sessions = pd.DatetimeIndex(sessions).normalize()
    if len(sessions) == 0:
        raise ValueError(f"synthetic market: no sessions between {cfg.start} and {cfg.end}")
    # The plan (listings, delistings, dividends) is laid out to exchange-calendars' horizon, whatever the end,
    # so that a shorter run is an exact prefix of a longer one, and a run past the horizon (on the synthetic
    # calendar or a calendar file) continues the same market without planned events after it.
    library = session_calendar.exchange_calendar().sessions
    library = library[library >= sessions[0]]
    shared = min(len(library), len(sessions))
    if shared and np.array_equal(library[:shared].to_numpy(), sessions[:shared].to_numpy()):
        plan_sessions = library
    else:
        plan_sessions = sessions  # a custom calendar: plan over it
    seqs = np.random.SeedSequence(int(cfg.seed)).spawn(11)
    plan = _plan(cfg, plan_sessions, seqs[0])
    return _simulate(plan, sessions, seqs[1:], calendar, cfg)


def _level_drift(plan: _Plan, strength: float) -> np.ndarray:
    """Per-session drift of each name from the low-volatility level effect: -strength x z(log base vol)."""
    if strength == 0:
        return np.zeros(plan.n_total)
    log_sigma = np.log(plan.sigma)
    return -strength * LOW_VOL_PREMIUM * (log_sigma - log_sigma.mean()) / log_sigma.std()


def _simulate(
    plan: _Plan,
    sessions: pd.DatetimeIndex,
    seqs,
    calendar: session_calendar.SessionCalendar,
    effects: MarketConfig | None = None,
) -> SyntheticMarket:
    effects = effects if effects is not None else MarketConfig()
    # One independent stream per component: a component's draws never shift another's.
    (rng_mkt, rng_idio, rng_jump, rng_intra, rng_vol, rng_susp, rng_ep, rng_st, rng_ipo, rng_misc) = [
        np.random.default_rng(s) for s in seqs
    ]
    n = plan.n_total
    n_days = len(sessions)
    n_ind = len(trading_rules.INDUSTRY_NAMES)
    board, industry = plan.board, plan.industry

    # Limit ratios per (board, st) for each session, from trading_rules.
    rule_board = np.array(BOARDS * 2, dtype=object)
    rule_st = np.array([False] * 4 + [True] * 4)

    # State.
    listed_from = plan.list_idx
    delist_at = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    pre_listed = listed_from < 0
    close = plan.issue_price.copy()  # last traded close (pre-listed: the close before the first session)
    gap = np.zeros(n)  # latent log price minus log close
    adj = plan.adj0.copy()
    float_sh = plan.float_shares.copy()
    is_st = np.zeros(n, dtype=bool)
    st_until = np.full(n, -1, dtype=np.int64)  # recoverable ST: last ST day; delisting ST: until delisting
    pending_delist = np.zeros(n, dtype=bool)
    days_listed = np.where(pre_listed, 10_000, -1).astype(np.int64)
    h_idio = plan.sigma ** 2
    omega_idio = plan.sigma ** 2 * (1.0 - IDIO_GARCH[0] - IDIO_GARCH[1])
    v_turn = rng_vol.normal(0.0, TURNOVER_AR_SD, size=n)
    susp_left = np.zeros(n, dtype=np.int64)
    ep_start = np.full(n, -10_000, dtype=np.int64)
    ep_amp = np.zeros(n)
    ep_ramp = np.zeros(n)
    ipo_excess0 = np.zeros(n)
    spike = np.zeros(n)  # the decaying attention spike in log turnover
    kernel = _kernel()
    level_drift = _level_drift(plan, effects.low_vol_premium)
    ep_w = _episode_weights()
    ep_life = len(ep_w)
    rev_buf = np.zeros((KERNEL_DAYS, n))
    att_buf = np.zeros((KERNEL_DAYS, n))
    h_m = MARKET_VOL ** 2
    alpha_m, gamma_m, beta_m = MARKET_GARCH
    omega_m = MARKET_VOL ** 2 * (1.0 - alpha_m - beta_m - 0.5 * gamma_m)
    regime = 0.0
    m_turn = 0.0

    st_start_by_day: dict[int, list[int]] = {}
    for k, s_day in enumerate(plan.delist_st_start):
        st_start_by_day.setdefault(int(s_day), []).append(k)
    recover_by_day: dict[int, list[int]] = {}
    for k, s_day in enumerate(plan.recover_start):
        recover_by_day.setdefault(int(s_day), []).append(k)
    dividend_today: dict[int, np.ndarray] = {}
    flat = np.flatnonzero(plan.dividend_day.ravel() >= 0)
    if len(flat):
        days = plan.dividend_day.ravel()[flat]
        order = np.argsort(days, kind="stable")
        flat, days = flat[order], days[order]
        bounds = np.flatnonzero(np.diff(days)) + 1
        for chunk_flat, chunk_day in zip(np.split(flat, bounds), np.split(days, bounds)):
            dividend_today[int(chunk_day[0])] = chunk_flat

    month_end_idx, holding = _month_ends(sessions, calendar)
    month_end_pos = {int(t): k for k, t in enumerate(month_end_idx)}
    truth_parts = []
    out: dict[str, list] = {key: [] for key in (
        "idx", "open", "high", "low", "close", "pre_close", "volume", "amount", "adj", "float", "st")}
    day_counts = np.zeros(n_days, dtype=np.int64)

    for t in range(n_days):
        date = sessions[t]
        ratios = trading_rules.limit_ratio(rule_board, np.full(8, date.to_datetime64()), rule_st)

        # ---- market, industry and size factors
        regime = REGIME_PHI * regime + np.sqrt(1 - REGIME_PHI ** 2) * REGIME_SD * rng_mkt.normal()
        regime_mult = np.exp(regime - REGIME_SD ** 2)
        z_m = float(np.clip(_std_t(rng_mkt, MARKET_T_DF, None), -MARKET_T_CAP, MARKET_T_CAP))
        vol_m = np.sqrt(h_m) * regime_mult
        u_mj, z_mj = rng_mkt.uniform(), rng_mkt.normal()
        jump_m = 0.0
        if u_mj < MARKET_JUMP_PROB:  # a market-wide jump day (crash or policy rally)
            sign = -1.0 if u_mj < MARKET_JUMP_PROB * MARKET_JUMP_DOWN_SHARE else 1.0
            jump_m = sign * MARKET_JUMP_SIZE * np.exp(0.25 * z_mj) * regime_mult
        shock_m = vol_m * z_m + jump_m
        f_m = MARKET_DRIFT + shock_m
        # Robust GARCH (as for stocks): half of a jump feeds the variance, the shock is capped at 4 sd and the
        # variance at 3x its long-run level.
        innovation = np.sqrt(h_m) * np.clip(z_m, -4.0, 4.0) + 0.5 * jump_m / regime_mult
        h_m = omega_m + (alpha_m + gamma_m * (innovation < 0)) * innovation ** 2 + beta_m * h_m
        h_m = min(h_m, (3.0 * MARKET_VOL) ** 2)
        common = np.sqrt(h_m / MARKET_VOL ** 2) * regime_mult  # volatility level shared by all components
        f_ind = plan.industry_vol * common * _std_t(rng_mkt, INDUSTRY_T_DF, n_ind)
        f_size = SIZE_VOL * common * rng_mkt.normal()
        m_turn = MARKET_TURNOVER_PHI * m_turn + np.sqrt(1 - MARKET_TURNOVER_PHI ** 2) * MARKET_TURNOVER_SD * rng_mkt.normal()

        # ---- listings, ST, delistings
        new = listed_from == t
        if new.any():
            days_listed[new] = 0
        for k in st_start_by_day.get(t, ()):
            listed = (days_listed >= 0) & (delist_at > t)
            cand = listed & ~is_st & ~pending_delist & (days_listed >= 250)
            if not cand.any():
                cand = listed & ~is_st & ~pending_delist
            if not cand.any():
                continue
            pick = np.flatnonzero(cand)[np.argmin(close[cand])]
            is_st[pick] = True
            pending_delist[pick] = True
            delist_at[pick] = int(plan.delist_days[k])
        for k in recover_by_day.get(t, ()):
            listed = (days_listed >= 0) & (delist_at > t)
            cand = np.flatnonzero(listed & ~is_st & ~pending_delist & (days_listed >= 250))
            if len(cand) == 0:
                continue
            cheap = cand[np.argsort(close[cand], kind="stable")[: max(1, len(cand) // 6)]]
            pick = cheap[rng_st.integers(0, len(cheap))]
            is_st[pick] = True
            st_until[pick] = int(plan.recover_end[k])
        ending = is_st & ~pending_delist & (st_until < t)
        if ending.any():
            is_st[ending] = False
        listed = (days_listed >= 0) & (delist_at > t)

        # ---- suspensions
        u_susp = rng_susp.uniform(size=n)
        len_susp = np.minimum(
            SUSPEND_MAX, np.ceil(np.exp(rng_susp.normal(SUSPEND_LOG_MEAN, SUSPEND_LOG_SD, size=n)))
        ).astype(np.int64)
        news_susp = rng_susp.normal(0.0, SUSPEND_NEWS_SD, size=n)
        start_susp = listed & (susp_left == 0) & (days_listed >= 5) & (u_susp < SUSPEND_PROB * (1 + is_st))
        susp_left[start_susp] = len_susp[start_susp]
        long_susp = start_susp & (len_susp >= 5)
        gap[long_susp] += news_susp[long_susp]
        suspended = listed & (susp_left > 0)
        trading = listed & ~suspended

        # ---- accumulation episodes
        u_ep = rng_ep.uniform(size=n)
        amp = rng_ep.uniform(*EPISODE_DRIFT, size=n)
        ramp = rng_ep.uniform(*EPISODE_RAMP, size=n)
        ep_age = t - ep_start
        start_ep = (trading & ~is_st & (days_listed >= 60) & (ep_age >= ep_life) & (u_ep < EPISODE_RATE))
        ep_start[start_ep] = t
        ep_amp[start_ep] = amp[start_ep] if effects.episodes == 1.0 else amp[start_ep] * effects.episodes
        ep_ramp[start_ep] = ramp[start_ep]
        ep_age = t - ep_start
        in_episode = ep_age < EPISODE_DAYS
        in_life = ep_age < ep_life

        # ---- expected idiosyncratic drift from known events
        lag_index = (t - np.arange(1, KERNEL_DAYS + 1)) % KERNEL_DAYS
        wt = np.zeros(KERNEL_DAYS)
        wt[lag_index] = kernel
        mu = wt @ rev_buf + wt @ att_buf
        mu[in_life] += ep_amp[in_life] * ep_w[ep_age[in_life]]
        if effects.low_vol_premium:
            mu += level_drift

        # ---- idiosyncratic returns
        ipo_phase = (days_listed >= 0) & (days_listed < trading_rules.NO_LIMIT_SESSIONS)
        quiet = np.where(in_episode, EPISODE_QUIET, 1.0)
        ipo_mult = np.where(ipo_phase, IPO_VOL_MULT, 1.0)
        eps = _std_t(rng_idio, IDIO_T_DF, n)
        base_sd = np.sqrt(h_idio)
        sd_now = base_sd * common ** IDIO_MARKET_ELASTICITY
        e = sd_now * quiet * eps
        # A robust GARCH: the shock that feeds the variance is capped at 4 sd and the variance at 3x the base
        # volatility, so that one extreme t draw cannot set off an explosive path.
        h_idio = omega_idio + IDIO_GARCH[0] * (base_sd * np.minimum(np.abs(eps), 4.0)) ** 2 + IDIO_GARCH[1] * h_idio
        h_idio = np.minimum(h_idio, IDIO_MAX_VOL_MULT ** 2 * plan.sigma ** 2)
        u_jump = rng_jump.uniform(size=n)
        jump_size = JUMP_SIZE * np.exp(rng_jump.normal(0.0, 0.5, size=n))
        jump_sign = np.where(rng_jump.uniform(size=n) < 0.5, -1.0, 1.0)
        jump = np.where(u_jump < JUMP_PROB, jump_size * jump_sign, 0.0)
        r_latent = (mu + plan.beta * f_m + plan.gamma * f_ind[industry] + plan.size_load * f_size
                    + e * ipo_mult + jump)
        x = np.log1p(np.maximum(r_latent, -0.9))
        pop = np.exp(rng_ipo.normal(IPO_POP_LOG_MEAN, IPO_POP_LOG_SD, size=n)) - 1.0
        pop = np.where(board == 3, pop * 0.6, pop)
        ipo_day = days_listed == 0
        x[ipo_day] = np.log1p(pop[ipo_day]) + e[ipo_day]

        # Events of the planted effects (known at today's close).
        rev_event = np.where(listed & (days_listed >= 5), -REVERSAL * effects.reversal * e, 0.0)

        # ---- suspended: the latent move builds up
        gap[suspended] = np.clip(gap[suspended] + x[suspended], -MAX_GAP, MAX_GAP)

        # ---- dividends and bonus shares on the ex-date (trading, listed for 120 sessions)
        pre_close = close.copy()
        flat_ids = dividend_today.get(t)
        if flat_ids is not None:
            n_years_plan = plan.dividend_day.shape[1]
            ids, yr = flat_ids // n_years_plan, flat_ids % n_years_plan
            cash = np.round(plan.dividend_yield[ids, yr] * close[ids], 3)
            bonus = np.where(
                (close[ids] > BONUS_MIN_PRICE) & (plan.dividend_bonus_u[ids, yr] < BONUS_PROB),
                plan.dividend_bonus_ratio[ids, yr], 0.0,
            )
            ref = trading_rules.round_half_up(np.maximum((close[ids] - cash) / (1.0 + bonus), 0.01))
            # Paid by names listed for 120 sessions and trading that day, when the reference price moves a tick.
            ok = trading[ids] & (days_listed[ids] >= 120) & (ref < close[ids])
            ids, ref, bonus = ids[ok], ref[ok], bonus[ok]
            if len(ids):
                adj[ids] = adj[ids] * close[ids] / ref
                pre_close[ids] = ref
                float_sh[ids] = np.round(float_sh[ids] * (1.0 + bonus) / 100.0) * 100.0

        # ---- trading: prices within the limits
        tr = np.flatnonzero(trading)
        pc = pre_close[tr]
        ratio = ratios[board[tr] + 4 * is_st[tr]]
        up, dn = trading_rules.limit_prices(pc, ratio)
        free = ipo_phase[tr]
        up = np.where(free, np.inf, up)
        dn = np.maximum(np.where(free, 0.01, dn), 0.01)
        target = gap[tr] + x[tr]
        sd_tr = sd_now[tr] * ipo_mult[tr]
        z_open = rng_intra.normal(size=n)[tr]
        z_hi = np.abs(rng_intra.normal(size=n))[tr]
        z_lo = np.abs(rng_intra.normal(size=n))[tr]
        z_vw = rng_intra.normal(size=n)[tr]
        u_one = rng_intra.uniform(size=n)[tr]
        open_log = gap[tr] + 0.4 * x[tr] + 0.35 * sd_tr * z_open
        close_raw = pc * np.exp(target)
        open_raw = pc * np.exp(open_log)
        c_px = np.clip(trading_rules.round_half_up(close_raw), dn, up)
        o_px = np.clip(trading_rules.round_half_up(open_raw), dn, up)
        log_up = np.log(up / pc)
        log_dn = np.log(dn / pc)
        one_up = (target > log_up + ONE_PRICE_EXCESS) & (gap[tr] > 0) & ~free
        one_dn = (target < log_dn - ONE_PRICE_EXCESS) & (gap[tr] < 0) & ~free
        o_px = np.where(one_up, up, np.where(one_dn, dn, o_px))
        top = np.maximum(o_px, c_px)
        bottom = np.minimum(o_px, c_px)
        hi_raw = np.maximum(open_raw, close_raw) * np.exp(0.55 * sd_tr * z_hi)
        lo_raw = np.minimum(open_raw, close_raw) * np.exp(-0.55 * sd_tr * z_lo)
        h_px = np.minimum(np.maximum(trading_rules.round_half_up(hi_raw), top), np.maximum(up, top))
        l_px = np.maximum(np.minimum(trading_rules.round_half_up(lo_raw), bottom), dn)
        h_px = np.where(one_up | one_dn, top, h_px)
        l_px = np.where(one_up | one_dn, bottom, l_px)
        # The unfilled part of a move beyond the limit carries to the next session, partly (some of the
        # excess demand fades overnight); a move within the limits leaves only the tick-rounding residual.
        gap[tr] = np.clip(LIMIT_CARRY * np.log(close_raw / c_px), -MAX_GAP, MAX_GAP)
        close[tr] = c_px

        # ---- volume: lognormal, autocorrelated, higher for small caps, up with |r| and volatility
        v_turn = TURNOVER_AR_PHI * v_turn + np.sqrt(1 - TURNOVER_AR_PHI ** 2) * TURNOVER_AR_SD * rng_vol.normal(size=n)
        noise_turn = rng_vol.normal(0.0, TURNOVER_NOISE_SD, size=n)
        ipo_level = np.exp(rng_vol.normal(np.log(0.6), 0.2, size=n))
        attention_shock = rng_vol.normal(0.0, ATTENTION_SHOCK_SD, size=n)
        r_obs = c_px / pc - 1.0
        abs_std = np.abs(r_obs) / plan.sigma[tr]
        calm = np.where(in_episode, EPISODE_CALM, 1.0)  # volume rises smoothly during an episode
        attention_shock = attention_shock * calm
        spike = ATTENTION_DECAY * spike + np.where(trading & (days_listed >= 5), attention_shock, 0.0)
        one_price = one_up | one_dn  # nobody trades at a one-price limit: no response to the move
        log_turn_base = (plan.turnover_base[tr] + m_turn + v_turn[tr]
                         + TURNOVER_ABS_RETURN * (np.where(one_price, 0.8, np.minimum(abs_std, 8.0)) - 0.8)
                         + TURNOVER_VOL_ELASTICITY * np.log(sd_now[tr] / plan.sigma[tr]))
        att_event = np.where(trading & (days_listed >= 5), -ATTENTION * effects.attention * attention_shock, 0.0)
        age_tr = ep_age[tr]
        ramp_now = np.where(age_tr < EPISODE_DAYS, ep_ramp[tr] * (age_tr + 1) / EPISODE_DAYS, 0.0)
        ipo_day_tr = days_listed[tr] == 0
        new_excess = np.log(ipo_level[tr]) - plan.turnover_base[tr]
        ipo_excess0[tr] = np.where(ipo_day_tr, new_excess, ipo_excess0[tr])
        dl = np.maximum(days_listed[tr], 0)
        ipo_term = np.where(dl < 60, ipo_excess0[tr] * 0.55 ** dl, 0.0)
        log_turn = log_turn_base + spike[tr] + ramp_now + ipo_term + noise_turn[tr] * calm[tr]
        at_up = (c_px >= up) & ~free
        at_dn = (c_px <= dn) & ~free
        excess = np.where(at_up, target - log_up, np.where(at_dn, log_dn - target, 0.0))
        squeeze = np.where(at_up | at_dn, np.exp(-np.maximum(excess, 0.0) / 0.015), 1.0)
        squeeze = np.where(one_up | one_dn, 0.01 + 0.05 * u_one, np.maximum(squeeze, 0.03))
        turnover = np.minimum(np.exp(log_turn) * squeeze, 0.85)
        volume = np.maximum(100.0, np.round(turnover * float_sh[tr] / 100.0) * 100.0)
        vwap = (o_px + c_px + h_px + l_px) / 4.0 * np.exp(0.1 * sd_tr * z_vw)
        vwap = np.clip(vwap, l_px, h_px)
        amount = volume * vwap

        # ---- lock-up expiry of IPO shares: float grows after one year
        lock = days_listed == 250
        if lock.any():
            float_sh[lock] = np.round(float_sh[lock] * rng_misc.uniform(1.4, 2.6) / 100.0) * 100.0

        if effects.turnover_reversal:
            # The interaction: a shock on a day of heavy trading (relative to the name's usual level and
            # the market's) reverses more, on a quiet day less; on average about as much as without it.
            excess = np.zeros(n)
            excess[tr] = log_turn - plan.turnover_base[tr] - m_turn
            rev_event = rev_event + (
                -REVERSAL * effects.turnover_reversal * np.tanh(excess / TURNOVER_REVERSAL_SCALE) * e
            ) * (listed & (days_listed >= 5))

        # ---- events
        rev_buf[t % KERNEL_DAYS] = rev_event
        att_buf[t % KERNEL_DAYS] = att_event

        # ---- output rows
        out["idx"].append(tr.astype(np.int32))
        out["open"].append(_cents(o_px))
        out["high"].append(_cents(h_px))
        out["low"].append(_cents(l_px))
        out["close"].append(_cents(c_px))
        out["pre_close"].append(_cents(pc))
        out["volume"].append(volume)
        out["amount"].append(amount)
        out["adj"].append(adj[tr].copy())
        out["float"].append(float_sh[tr].copy())
        out["st"].append(is_st[tr].copy())
        day_counts[t] = len(tr)

        # ---- truth at the month end: expected return to the next month end from known events
        if t in month_end_pos:
            h = holding[month_end_pos[t]]
            ages = (t - np.arange(KERNEL_DAYS)) % KERNEL_DAYS  # buffer row of the event that is a sessions old
            rem = np.zeros(KERNEL_DAYS)
            rem[ages] = _remaining(kernel, h)
            drift = rem @ rev_buf[:, tr] + rem @ att_buf[:, tr]
            age = ep_age[tr]
            ep_rem = np.zeros(len(tr))
            live = age < ep_life
            if live.any():
                csum = np.concatenate([[0.0], np.cumsum(ep_w)])
                lo_k = np.minimum(age[live] + 1, ep_life)
                hi_k = np.minimum(age[live] + h, ep_life - 1) + 1
                ep_rem[live] = ep_amp[tr][live] * (csum[hi_k] - csum[lo_k])
            expected = np.expm1(gap[tr]) + drift + ep_rem + plan.beta[tr] * MARKET_DRIFT * h
            if effects.low_vol_premium:
                expected = expected + level_drift[tr] * h
            truth_parts.append((sessions[t].strftime("%Y-%m"), tr, expected))

        # ---- advance the clocks
        susp_left[suspended] -= 1
        days_listed[listed] += 1

    return _assemble(plan, sessions, out, day_counts, truth_parts, delist_at)


def _assemble(plan: _Plan, sessions: pd.DatetimeIndex, out, day_counts, truth_parts, delist_at) -> SyntheticMarket:
    n_days = len(sessions)
    # One column at a time, freeing the per-day pieces as we go (peak memory).
    def column(key):
        pieces = out.pop(key)
        return np.concatenate(pieces) if pieces else np.zeros(0)

    idx = column("idx").astype(np.int64)
    codes = plan.codes.astype(str)
    code_arr = pd.array(codes, dtype="str")
    columns = {
        "ts_code": code_arr.take(idx),
        "trade_date": pd.DatetimeIndex(
            np.repeat(sessions.to_numpy().astype("datetime64[ns]"), day_counts)
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
    daily = pd.DataFrame(columns, copy=False)
    del columns

    # Stocks listed by the last session; a delist date only when it falls within the simulation.
    last = n_days - 1
    known = plan.list_idx <= last
    delist_date = np.full(plan.n_total, np.datetime64("NaT"), dtype="datetime64[ns]")
    happened = delist_at <= last
    delist_date[happened] = sessions.to_numpy().astype("datetime64[ns]")[delist_at[happened]]
    numbers = np.arange(1, plan.n_total + 1)
    stocks = pd.DataFrame(
        {
            "ts_code": pd.array(codes[known], dtype="str"),
            "name": pd.array([f"Synthetic {k:04d}" for k in numbers[known]], dtype="str"),
            "industry": pd.array(np.array(trading_rules.INDUSTRY_NAMES, dtype=object)[plan.industry[known]], dtype="str"),
            "list_date": pd.DatetimeIndex(plan.list_date[known]).as_unit("ns"),
            "delist_date": pd.DatetimeIndex(delist_date[known]).as_unit("ns"),
        }
    )

    if truth_parts:
        months = np.concatenate([np.full(len(tr), m, dtype=object) for m, tr, _ in truth_parts])
        t_idx = np.concatenate([tr for _, tr, _ in truth_parts])
        values = np.concatenate([v for _, _, v in truth_parts])
    else:
        months, t_idx, values = np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64), np.zeros(0)
    truth = pd.DataFrame(
        {
            "month": pd.array(months, dtype="str"),
            "ts_code": code_arr.take(t_idx),
            "expected_return": values.astype(float),
        }
    )
    return SyntheticMarket(daily=daily, stocks=stocks, truth=truth)

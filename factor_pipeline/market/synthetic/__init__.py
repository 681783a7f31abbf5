"""A deterministic, seeded A-share-like market: the pipeline's default data source.

``generate_market(cfg, sessions=None, calendar=None) -> SyntheticMarket(daily, stocks, truth)``

The package: ``parameters`` (every number of the model below), ``plan`` (what is laid out before the first
session: the names, their attributes, and the schedule of listings, ST periods, delistings and dividends),
``simulate`` (the day loop, one function per step, on the state of ``state``) and ``assemble``
(``generate_market`` and the frames).

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
sessions. Codes follow the boards of docs/market.md (600/601/603/605 and 000/001/002/003 main board, 300/301
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
Trading rules (trading_rules): limit prices from pre_close by board, date and ST, rounded half-up; every
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

from factor_pipeline.market.synthetic.assemble import SyntheticMarket, generate_market

__all__ = ["SyntheticMarket", "generate_market"]

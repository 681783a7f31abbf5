"""What the day loop carries from one session to the next (``SimulationState``), what one step hands the
next within a session, and what the loop records for the assembly (``Recording``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from factor_pipeline.market.synthetic.parameters import KERNEL_DAYS, MARKET_VOL, TURNOVER_AR_SD
from factor_pipeline.market.synthetic.plan import MarketPlan

PRE_LISTED_AGE = 10_000  # days_listed of a name listed before the start: older than every age threshold


def _cents(price: np.ndarray) -> np.ndarray:
    """Prices (multiples of 0.01) as int32 cents; /100.0 gives back the same float64."""
    return np.rint(price * 100.0).astype(np.int32)


@dataclass(frozen=True)
class RandomStreams:
    """One independent stream per component, in the order of ``SeedSequence(seed).spawn``'s children 1..10."""

    market: np.random.Generator  # market, industry and size factors, market turnover
    idiosyncratic: np.random.Generator
    jumps: np.random.Generator  # news jumps
    intraday: np.random.Generator  # open, high, low, VWAP, one-price volume
    volume: np.random.Generator
    suspensions: np.random.Generator
    episodes: np.random.Generator
    st_choice: np.random.Generator  # which cheap name a recoverable ST period hits
    ipo_pop: np.random.Generator
    lockup: np.random.Generator  # float growth at lock-up expiries

    @classmethod
    def of(cls, seeds) -> RandomStreams:
        return cls(*[np.random.default_rng(s) for s in seeds])


@dataclass
class MarketState:
    variance: float = MARKET_VOL ** 2  # GARCH variance of the market factor
    log_vol_regime: float = 0.0
    log_turnover_level: float = 0.0  # the market's turnover factor


@dataclass
class LifeCycle:
    days_listed: np.ndarray  # sessions since the first trading day; -1 before it
    delisting_session: np.ndarray  # int64 max until the name is chosen for a planned delisting
    is_st: np.ndarray
    st_until: np.ndarray  # last ST session of a recoverable ST period
    pending_delisting: np.ndarray  # in the ST period before its delisting
    suspension_left: np.ndarray  # sessions of the current suspension still to come

    def listed(self, t: int) -> np.ndarray:
        return (self.days_listed >= 0) & (self.delisting_session > t)


@dataclass
class Quotes:
    close: np.ndarray  # last traded close (pre-listed: the close before the first session)
    gap: np.ndarray  # latent log price minus log close: the move held back by a limit or a suspension
    adj_factor: np.ndarray
    float_shares: np.ndarray


@dataclass
class StockProcesses:
    idio_variance: np.ndarray  # GARCH variance of the idiosyncratic return, before the market's level
    turnover_ar: np.ndarray  # the stock's AR(1) component of log turnover
    attention_spike: np.ndarray  # the decaying attention spike in log turnover
    ipo_turnover_excess: np.ndarray  # log turnover over the base on the IPO day, fading over 60 sessions


@dataclass
class PlantedEvents:
    """Events whose drifts are still to come. The ring buffers hold the last KERNEL_DAYS sessions' events,
    session s in row s % KERNEL_DAYS."""

    reversal: np.ndarray  # [KERNEL_DAYS, n]
    attention: np.ndarray  # [KERNEL_DAYS, n]
    episode_start: np.ndarray  # session of each name's last accumulation episode (-10,000: none yet)
    episode_drift: np.ndarray  # total drift after that episode
    episode_ramp: np.ndarray  # log-turnover increase at its last day


@dataclass
class SimulationState:
    market: MarketState
    life: LifeCycle
    quotes: Quotes
    processes: StockProcesses
    events: PlantedEvents

    @classmethod
    def at_start(cls, plan: MarketPlan, volume_rng: np.random.Generator) -> SimulationState:
        n = plan.n_total
        return cls(
            market=MarketState(),
            life=LifeCycle(
                days_listed=np.where(plan.listing_session < 0, PRE_LISTED_AGE, -1).astype(np.int64),
                delisting_session=np.full(n, np.iinfo(np.int64).max, dtype=np.int64),
                is_st=np.zeros(n, dtype=bool),
                st_until=np.full(n, -1, dtype=np.int64),
                pending_delisting=np.zeros(n, dtype=bool),
                suspension_left=np.zeros(n, dtype=np.int64),
            ),
            quotes=Quotes(
                close=plan.initial_close.copy(),
                gap=np.zeros(n),
                adj_factor=plan.initial_adj_factor.copy(),
                float_shares=plan.float_shares.copy(),
            ),
            processes=StockProcesses(
                idio_variance=plan.idio_vol ** 2,
                turnover_ar=volume_rng.normal(0.0, TURNOVER_AR_SD, size=n),
                attention_spike=np.zeros(n),
                ipo_turnover_excess=np.zeros(n),
            ),
            events=PlantedEvents(
                reversal=np.zeros((KERNEL_DAYS, n)),
                attention=np.zeros((KERNEL_DAYS, n)),
                episode_start=np.full(n, -10_000, dtype=np.int64),
                episode_drift=np.zeros(n),
                episode_ramp=np.zeros(n),
            ),
        )


@dataclass(frozen=True)
class MarketFactors:
    market: float  # the market factor's return
    industry: np.ndarray  # per industry
    size: float
    vol_level: float  # volatility level shared by all components (1 = the long-run market volatility)
    log_turnover_level: float


@dataclass(frozen=True)
class EpisodeClock:
    age: np.ndarray  # sessions since each name's last episode started
    accumulating: np.ndarray  # in the episode itself: volume ramps up, price is quiet
    live: np.ndarray  # in the episode or its drift


@dataclass(frozen=True)
class LatentReturns:
    idiosyncratic: np.ndarray  # today's idiosyncratic shock, the event of the reversal effect
    log_move: np.ndarray  # the latent log move (on the IPO day: the first-day pop)
    vol: np.ndarray  # today's idiosyncratic volatility
    vol_mult: np.ndarray  # IPO_VOL_MULT in the sessions without a limit, else 1
    no_limit: np.ndarray  # the IPO sessions without a price limit


@dataclass(frozen=True)
class Bars:
    """Today's prices of the trading names (``rows``), with what the volume step needs from them."""

    rows: np.ndarray
    pre_close: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    vwap: np.ndarray
    limit_up: np.ndarray  # inf without a limit
    limit_down: np.ndarray
    no_limit: np.ndarray
    target: np.ndarray  # the latent log move from pre_close
    log_limit_up: np.ndarray
    log_limit_down: np.ndarray
    one_price: np.ndarray  # open = high = low = close at a limit
    vol: np.ndarray  # idiosyncratic volatility, IPO multiplier included
    one_price_u: np.ndarray  # uniform draw that sets a one-price day's volume


@dataclass(frozen=True)
class Trades:
    log_turnover: np.ndarray  # of the trading names, before the damping on limit days
    volume: np.ndarray
    amount: np.ndarray
    attention_events: np.ndarray  # all names


@dataclass
class Recording:
    """What the assembly needs: each session's pieces of the daily columns, the truth at each month end, and
    the delisting sessions the simulation chose."""

    columns: dict[str, list] = field(default_factory=lambda: {key: [] for key in (
        "idx", "open", "high", "low", "close", "pre_close", "volume", "amount", "adj", "float", "st")})
    rows_per_session: list[int] = field(default_factory=list)
    truth: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)  # (month, rows, expected)
    session_truth: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)  # (session, rows, expected)
    delisting_session: np.ndarray | None = None

    def add_session(self, bars: Bars, trades: Trades, quotes: Quotes, life: LifeCycle) -> None:
        rows = bars.rows
        self.columns["idx"].append(rows.astype(np.int32))
        self.columns["open"].append(_cents(bars.open))
        self.columns["high"].append(_cents(bars.high))
        self.columns["low"].append(_cents(bars.low))
        self.columns["close"].append(_cents(bars.close))
        self.columns["pre_close"].append(_cents(bars.pre_close))
        self.columns["volume"].append(trades.volume)
        self.columns["amount"].append(trades.amount)
        self.columns["adj"].append(quotes.adj_factor[rows].copy())
        self.columns["float"].append(quotes.float_shares[rows].copy())
        self.columns["st"].append(life.is_st[rows].copy())
        self.rows_per_session.append(len(rows))

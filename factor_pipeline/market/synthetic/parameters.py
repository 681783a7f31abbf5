"""Every number of the synthetic market's model, documented in the package docstring and in
docs/synthetic_market.md."""

from __future__ import annotations

import numpy as np

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

BOARDS = ("main", "chinext", "star", "bse")  # a stock's board is an index into BOARDS
BSE = BOARDS.index("bse")

# SW level-1 industries (order of trading_rules.INDUSTRY_NAMES): relative sizes and betas.
INDUSTRY_SIZE = {
    "Agriculture": 100, "Basic Chemicals": 400, "Steel": 45, "Non-ferrous Metals": 135, "Electronics": 460,
    "Automobiles": 270, "Household Appliances": 95, "Food & Beverage": 125, "Textiles & Apparel": 110,
    "Light Manufacturing": 160, "Pharmaceuticals & Biotech": 480, "Utilities": 130, "Transportation": 125,
    "Real Estate": 110, "Retail": 100, "Consumer Services": 75, "Banks": 42, "Non-bank Financials": 90,
    "Conglomerates": 15, "Building Materials": 75, "Construction": 160, "Power Equipment": 350,
    "Machinery": 520, "Defense": 110, "Computers": 330, "Media": 140, "Communications": 130, "Coal": 38,
    "Oil & Petrochemicals": 48, "Environmental Protection": 130, "Beauty & Personal Care": 30,
}
INDUSTRY_BETA = {
    "Banks": 0.65, "Utilities": 0.8, "Transportation": 0.85, "Food & Beverage": 0.9, "Coal": 0.9,
    "Oil & Petrochemicals": 0.85, "Real Estate": 0.95, "Non-bank Financials": 1.1, "Electronics": 1.15,
    "Computers": 1.2, "Media": 1.15, "Communications": 1.15, "Defense": 1.15, "Power Equipment": 1.1,
}

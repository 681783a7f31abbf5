"""A-share trading rules shared by the synthetic market, input validation and the universe filters.

Sources: docs/market.md. Boards are read from the code; price limits follow the board,
the date the rule changed, the ST flag and the first five sessions after listing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Shenwan (SW 2021) level-1: (code, Chinese, English). 综合 / Conglomerates is excluded from attribution.
SW_INDUSTRIES: tuple[tuple[str, str, str], ...] = (
    ("801010", "农林牧渔", "Agriculture"),
    ("801030", "基础化工", "Basic Chemicals"),
    ("801040", "钢铁", "Steel"),
    ("801050", "有色金属", "Non-ferrous Metals"),
    ("801080", "电子", "Electronics"),
    ("801880", "汽车", "Automobiles"),
    ("801110", "家用电器", "Household Appliances"),
    ("801120", "食品饮料", "Food & Beverage"),
    ("801130", "纺织服饰", "Textiles & Apparel"),
    ("801140", "轻工制造", "Light Manufacturing"),
    ("801150", "医药生物", "Pharmaceuticals & Biotech"),
    ("801160", "公用事业", "Utilities"),
    ("801170", "交通运输", "Transportation"),
    ("801180", "房地产", "Real Estate"),
    ("801200", "商贸零售", "Retail"),
    ("801210", "社会服务", "Consumer Services"),
    ("801780", "银行", "Banks"),
    ("801790", "非银金融", "Non-bank Financials"),
    ("801230", "综合", "Conglomerates"),
    ("801710", "建筑材料", "Building Materials"),
    ("801720", "建筑装饰", "Construction"),
    ("801730", "电力设备", "Power Equipment"),
    ("801890", "机械设备", "Machinery"),
    ("801740", "国防军工", "Defense"),
    ("801750", "计算机", "Computers"),
    ("801760", "传媒", "Media"),
    ("801770", "通信", "Communications"),
    ("801950", "煤炭", "Coal"),
    ("801960", "石油石化", "Oil & Petrochemicals"),
    ("801970", "环保", "Environmental Protection"),
    ("801980", "美容护理", "Beauty & Personal Care"),
)
INDUSTRY_NAMES: tuple[str, ...] = tuple(english for _, _, english in SW_INDUSTRIES)
EXCLUDED_FROM_ATTRIBUTION = "Conglomerates"
# A listed stock without a Shenwan membership on a date: it keeps its bars and pRet, forms no industry's
# mean (its own group when neutralising) and is left out of the industry tables.
UNCLASSIFIED = "Unclassified"
NOT_ATTRIBUTED = (EXCLUDED_FROM_ATTRIBUTION, UNCLASSIFIED)
_CANONICAL = {name: english for _, chinese, english in SW_INDUSTRIES for name in (chinese, english)}
_CANONICAL.update({UNCLASSIFIED: UNCLASSIFIED, "未分类": UNCLASSIFIED})

NO_LIMIT_SESSIONS = 5  # registration-system IPOs trade without a limit for their first 5 sessions

CHINEXT_20PCT_FROM = pd.Timestamp("2020-08-24")
STAR_OPENED = pd.Timestamp("2019-07-22")
BSE_30PCT_FROM = pd.Timestamp("2021-11-15")
# Main-board ST/*ST: 5% until this date, 10% from it (docs/market.md gives the notices and why this date).
ST_MAIN_10PCT_FROM = pd.Timestamp("2026-07-06")

# Code prefixes of each board (docs/market.md); a code matching none is an error, never a default board.
BOARD_PREFIXES: dict[str, dict[str, tuple[str, ...]]] = {
    "SH": {"main": ("600", "601", "603", "605"), "star": ("688", "689")},
    "SZ": {"main": ("000", "001", "002", "003"), "chinext": ("300", "301")},
    "BJ": {"bse": ("4", "8", "920")},
}


def canonical_industry(name: str) -> str | None:
    """English SW level-1 name for a Chinese or English name; None when unknown."""
    if not isinstance(name, str):
        return None
    return _CANONICAL.get(name.strip())


def board_of(ts_code: str) -> str:
    """'main', 'chinext', 'star' or 'bse' from the code's number and exchange (BOARD_PREFIXES)."""
    number, _, exchange = str(ts_code).partition(".")
    for board, prefixes in BOARD_PREFIXES.get(exchange, {}).items():
        if len(number) == 6 and number.isdigit() and number.startswith(prefixes):
            return board
    raise ValueError(
        f"{ts_code!r} is on no A-share board: expected 600/601/603/605/688/689xxx.SH, 000/001/002/003/300/301xxx.SZ "
        "or 4xxxxx/8xxxxx/920xxx.BJ (docs/market.md)"
    )


def limit_ratio(board, trade_date, is_st):
    """Daily price-limit ratio, vectorised over numpy arrays or pandas Series of equal length."""
    board = np.asarray(board)
    trade_date = pd.DatetimeIndex(np.asarray(trade_date, dtype="datetime64[ns]"))
    is_st = np.asarray(is_st, dtype=bool)
    ratio = np.full(len(board), 0.10)
    ratio[(board == "chinext") & (trade_date >= CHINEXT_20PCT_FROM)] = 0.20
    ratio[board == "star"] = 0.20
    ratio[board == "bse"] = np.where(trade_date[board == "bse"] >= BSE_30PCT_FROM, 0.30, 0.10)
    # ST stocks: +-5% on the main board until the exchanges aligned them; the 20%/30% boards keep their own.
    ratio[(board == "main") & is_st & (trade_date < ST_MAIN_10PCT_FROM)] = 0.05
    return ratio


def round_half_up(price):
    """Round to 0.01 CNY, halves up, as the exchanges do (numpy's round is half-to-even)."""
    return np.floor(np.asarray(price, dtype=float) * 100.0 + 0.5 + 1e-9) / 100.0


def limit_prices(pre_close, ratio):
    """(limit_up, limit_down) prices: pre_close x (1 +- ratio), rounded half-up to 0.01."""
    pre_close = np.asarray(pre_close, dtype=float)
    ratio = np.asarray(ratio, dtype=float)
    return round_half_up(pre_close * (1.0 + ratio)), round_half_up(pre_close * (1.0 - ratio))


# Relative: a bar passes through CSV or Parquet parsing, price adjustment and the simulation's rounding, so
# float noise below this is no violation. Input validation and the raw_bars check use the same rule, so a
# bar the validation accepted never fails its check afterwards.
PRICE_TOLERANCE = 1e-9


def high_low_violations(open_, high, low, close) -> tuple[np.ndarray, np.ndarray]:
    """(high below max(open, close), low above min(open, close)) per bar, beyond PRICE_TOLERANCE."""
    open_, high, low, close = (np.asarray(v, dtype=np.float64) for v in (open_, high, low, close))
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    return high < top * (1 - PRICE_TOLERANCE), low > bottom * (1 + PRICE_TOLERANCE)


# Stamp duty on the seller, as a fraction of the value sold: 0.1% until 2023-08-27, halved from 2023-08-28.
STAMP_DUTY_SCHEDULE: tuple[tuple[str, float], ...] = (("1900-01-01", 0.001), ("2023-08-28", 0.0005))


def stamp_duty_rate(dates) -> np.ndarray:
    """The stamp duty rate on a sale on each date (STAMP_DUTY_SCHEDULE)."""
    dates = pd.to_datetime(pd.Series(dates)).to_numpy("datetime64[ns]")
    starts = np.array([np.datetime64(start, "ns") for start, _ in STAMP_DUTY_SCHEDULE])
    rates = np.array([rate for _, rate in STAMP_DUTY_SCHEDULE])
    return rates[np.searchsorted(starts, dates, side="right") - 1]

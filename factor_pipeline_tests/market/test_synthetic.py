"""The synthetic market against docs/market.md: schema, trading rules, life cycle, stylized facts, determinism,
no look-ahead, the oracle IC and the order dependence of the accumulation effect.

One small market (240 names, 2021-07..2026-12, about 1,370 sessions) is generated once per module. The
stylized-fact ranges are docs/market.md's; where a 5-year, 240-name sample makes a statistic noisy, the range is
widened and the comment says why.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.market import trading_rules
from factor_pipeline.market import session_calendar
from factor_pipeline.config import MarketConfig
from factor_pipeline.market.synthetic import SyntheticMarket, generate_market

CFG = MarketConfig(n_stocks=240, seed=20260301, start="2021-07-01", end="2026-12-31")
SHORT_END = "2024-06-28"

DAILY_COLUMNS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "volume", "amount",
                 "adj_factor", "float_shares", "is_st"]
CODE_RE = re.compile(r"^(60[0135]\d{3}\.SH|688\d{3}\.SH|689\d{3}\.SH|00[0-3]\d{3}\.SZ|30[01]\d{3}\.SZ|[48]\d{5}\.BJ)$")


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return generate_market(CFG)


@pytest.fixture(scope="module")
def bars(market) -> pd.DataFrame:
    """Daily bars with derived columns: r (adjusted close-to-close), young (first 5 sessions), limits."""
    d = market.daily
    list_date = d["ts_code"].map(market.stocks.set_index("ts_code")["list_date"]).to_numpy()
    sessions_since = d.groupby("ts_code").cumcount().to_numpy()
    ipo = list_date >= d["trade_date"].min().to_datetime64()
    board = d["ts_code"].map({c: trading_rules.board_of(c) for c in d["ts_code"].unique()}).to_numpy(dtype=object)
    ratio = trading_rules.limit_ratio(board, d["trade_date"].to_numpy(), d["is_st"].to_numpy())
    up, down = trading_rules.limit_prices(d["pre_close"].to_numpy(), ratio)
    return d.assign(
        r=d["close"] / d["pre_close"] - 1.0,
        log_turnover=np.log(d["volume"] / d["float_shares"]),
        log_volume=np.log(d["volume"]),
        adj_close=d["close"] * d["adj_factor"],
        young=ipo & (sessions_since < trading_rules.NO_LIMIT_SESSIONS),
        ipo_session=np.where(ipo, sessions_since, -1),
        board=board,
        limit_up=up,
        limit_down=down,
    )


@pytest.fixture(scope="module")
def wide(bars) -> dict[str, pd.DataFrame]:
    seasoned = bars[~bars["young"]]
    return {
        "r": seasoned.pivot(index="trade_date", columns="ts_code", values="r"),
        "log_turnover": seasoned.pivot(index="trade_date", columns="ts_code", values="log_turnover"),
        "log_volume": seasoned.pivot(index="trade_date", columns="ts_code", values="log_volume"),
        "adj_close": bars.pivot(index="trade_date", columns="ts_code", values="adj_close"),
    }


@pytest.fixture(scope="module")
def monthly(wide) -> dict:
    """Month-end adjusted closes (forward-filled through suspensions and after delisting) and R(i, m)."""
    adj = wide["adj_close"]
    traded = adj.notna()
    ends = adj.groupby(adj.index.to_period("M")).tail(1).index
    filled = adj.ffill()
    at_end = filled.loc[ends]
    forward = at_end.shift(-1) / at_end - 1.0  # R(i, m): close of d(m) to close of d(m+1)
    forward = forward.where(traded.loc[ends])  # only stocks that trade at d(m)
    past = at_end / at_end.shift(1) - 1.0
    past = past.where(traded.loc[ends] & traded.loc[ends].shift(1, fill_value=False))
    months = ends.strftime("%Y-%m")
    forward.index = months
    past.index = months
    return {"ends": ends, "forward": forward.iloc[:-1], "past": past}


def _per_stock(frame: pd.DataFrame, fn, min_obs: int = 250) -> pd.Series:
    counts = frame.notna().sum()
    return frame[counts[counts >= min_obs].index].apply(fn)


# --------------------------------------------------------------------------------------------------
# Schema


def test_frames_follow_the_canonical_schema(market):
    d, s, t = market.daily, market.stocks, market.truth
    assert list(d.columns) == DAILY_COLUMNS
    assert d["trade_date"].dtype == "datetime64[ns]" and d["is_st"].dtype == bool
    for column in DAILY_COLUMNS[2:-1]:
        assert d[column].dtype == np.float64, column
    assert pd.api.types.is_string_dtype(d["ts_code"])
    key = pd.MultiIndex.from_frame(d[["trade_date", "ts_code"]])
    assert key.is_unique and key.is_monotonic_increasing  # sorted by (trade_date, ts_code)
    assert set(d["trade_date"].unique()) <= set(session_calendar.sessions_between(CFG.start, CFG.end))

    assert list(s.columns) == ["ts_code", "name", "industry", "list_date", "delist_date"]
    assert s["ts_code"].is_unique and all(CODE_RE.match(c) for c in s["ts_code"])
    assert all(re.fullmatch(r"Synthetic \d{4}", n) for n in s["name"]) and s["name"].is_unique
    assert set(s["industry"]) <= set(trading_rules.INDUSTRY_NAMES)
    assert set(d["ts_code"]) <= set(s["ts_code"])
    boards = {trading_rules.board_of(c) for c in s["ts_code"]}
    assert {"main", "chinext", "star"} <= boards

    assert list(t.columns) == ["month", "ts_code", "expected_return"]
    assert t["expected_return"].dtype == np.float64 and t["expected_return"].notna().all()
    assert pd.MultiIndex.from_frame(t[["month", "ts_code"]]).is_unique


def test_industry_sizes_are_uneven():
    # The plan's industry draw does not depend on the simulated length: a long, large plan shows the sizes.
    stocks = generate_market(
        MarketConfig(n_stocks=2000, seed=CFG.seed, start="2026-11-02", end="2026-12-31")
    ).stocks
    counts = stocks["industry"].value_counts()
    assert set(counts.index) == set(trading_rules.INDUSTRY_NAMES)  # all 31
    assert counts["Conglomerates"] < 0.25 * counts.median()
    assert counts.max() > 8 * counts["Conglomerates"]


def test_truth_has_one_row_per_stock_trading_at_each_month_end(market, monthly):
    d = market.daily
    for end in monthly["ends"]:
        month = end.strftime("%Y-%m")
        traded = set(d.loc[d["trade_date"] == end, "ts_code"])
        assert set(market.truth.loc[market.truth["month"] == month, "ts_code"]) == traded, month
    assert market.truth["month"].nunique() == len(monthly["ends"])


# --------------------------------------------------------------------------------------------------
# Trading rules


def test_ohlc_are_consistent_positive_and_on_the_tick(bars):
    o, h, low, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (low > 0).all()
    assert (low <= np.minimum(o, c)).all() and (np.maximum(o, c) <= h).all()
    for column in ("open", "high", "low", "close", "pre_close"):
        cents = bars[column].to_numpy() * 100.0
        assert np.abs(cents - np.round(cents)).max() < 1e-6, column
    vwap = bars["amount"].to_numpy() / bars["volume"].to_numpy()
    assert (bars["volume"] > 0).all()
    assert ((vwap >= low * (1 - 1e-9)) & (vwap <= h * (1 + 1e-9))).all()


def test_prices_stay_within_the_limits_after_the_first_five_sessions(bars):
    seasoned = bars[~bars["young"]]
    for column in ("open", "high", "low", "close"):
        values = seasoned[column].to_numpy()
        assert (values <= seasoned["limit_up"].to_numpy() + 1e-9).all(), column
        assert (values >= seasoned["limit_down"].to_numpy() - 1e-9).all(), column
    at_up = np.isclose(seasoned["close"], seasoned["limit_up"])
    at_down = np.isclose(seasoned["close"], seasoned["limit_down"])
    share = (at_up | at_down).mean()
    assert 0.003 <= share <= 0.02  # docs/market.md: limit hits on about 0.3 to 2% of stock-days
    # Runs of limit-up days on low volume: one-price limit-up days exist and trade far less than usual.
    one_price = at_up & (seasoned["low"].to_numpy() == seasoned["high"].to_numpy())
    assert one_price.sum() >= 10
    prev_up = pd.Series(at_up, index=seasoned.index).groupby(seasoned["ts_code"]).shift(1, fill_value=False)
    assert (one_price & prev_up.to_numpy()).sum() >= 5  # runs, not single days
    turnover = seasoned["log_turnover"].to_numpy()
    assert np.median(turnover[one_price]) < np.median(turnover) - np.log(5)


def test_new_listings_trade_without_a_limit_for_five_sessions(bars):
    first_day = bars[bars["ipo_session"] == 0]
    assert len(first_day) >= 30
    assert first_day["r"].median() > 0.3  # a large first-day move
    beyond = (first_day["close"] > first_day["limit_up"] + 1e-9) | (first_day["close"] < first_day["limit_down"] - 1e-9)
    assert beyond.mean() > 0.6  # most first days end beyond what a limit would allow
    later = bars[(bars["ipo_session"] >= 1) & (bars["ipo_session"] < 5)]
    assert ((later["close"] > later["limit_up"] + 1e-9) | (later["close"] < later["limit_down"] - 1e-9)).any()


def test_st_main_board_stocks_move_within_five_percent_until_the_exchanges_aligned_them(bars):
    main_st = bars[bars["is_st"] & (bars["board"] == "main") & ~bars["young"]]
    st = main_st[main_st["trade_date"] < trading_rules.ST_MAIN_10PCT_FROM]
    assert len(st) > 500
    ratio = trading_rules.limit_ratio(st["board"].to_numpy(), st["trade_date"].to_numpy(), st["is_st"].to_numpy())
    assert np.allclose(ratio, 0.05)
    up, down = trading_rules.limit_prices(st["pre_close"].to_numpy(), 0.05)
    assert (st["close"].to_numpy() <= up + 1e-9).all() and (st["close"].to_numpy() >= down - 1e-9).all()
    assert np.isclose(st["close"], up).any() or np.isclose(st["close"], down).any()
    # Only rounding lets a 5% limit exceed 5% (a cheap stock's limit price rounds half-up to the tick).
    bad = st[~(st["r"].abs() <= 0.05 + 0.005 / st["pre_close"] + 1e-12)]
    assert bad.empty, bad[["ts_code", "trade_date", "pre_close", "close", "r"]]
    after = main_st[main_st["trade_date"] >= trading_rules.ST_MAIN_10PCT_FROM]
    assert len(after) > 50
    # From the change on, ST names have the main board's 10% (and stay within it).
    ratio = trading_rules.limit_ratio(after["board"].to_numpy(), after["trade_date"].to_numpy(), after["is_st"].to_numpy())
    assert np.allclose(ratio, 0.10)
    assert (after["r"].abs() <= 0.10 + 0.005 / after["pre_close"] + 1e-12).all()


def test_pre_close_and_adjustment_factor(bars):
    g = bars.groupby("ts_code")
    prev_close, prev_adj = g["close"].shift(1), g["adj_factor"].shift(1)
    has_prev = prev_close.notna()
    unchanged = bars["adj_factor"] == prev_adj
    assert (bars["pre_close"][has_prev & unchanged] == prev_close[has_prev & unchanged]).all()
    ex_dates = has_prev & ~unchanged
    assert ex_dates.sum() >= 100  # annual dividends
    assert (bars["pre_close"][ex_dates] < prev_close[ex_dates]).all()  # an ex-dividend gap
    # close x adj_factor is a continuous total-return price across the ex-date.
    before = (prev_close * prev_adj)[ex_dates]
    after = (bars["pre_close"] * bars["adj_factor"])[ex_dates]
    assert np.allclose(after, before, rtol=1e-12)
    assert (g["adj_factor"].diff().dropna() >= 0).all()


# --------------------------------------------------------------------------------------------------
# Life cycle: suspensions, IPOs, ST and delistings


def test_suspensions_are_present_heavy_tailed_and_release_the_built_up_move(market, bars):
    sessions = session_calendar.sessions_between(CFG.start, CFG.end)
    position = pd.Series(np.arange(len(sessions)), index=sessions)
    pos = position[bars["trade_date"].to_numpy()].to_numpy()
    step = pd.Series(pos).groupby(bars["ts_code"].to_numpy()).diff().to_numpy()
    lengths = step[step > 1] - 1  # sessions missed between two traded days
    span = bars.groupby("ts_code")["trade_date"].agg(["min", "max"])
    listed_days = (position[span["max"].to_numpy()].to_numpy() - position[span["min"].to_numpy()].to_numpy() + 1).sum()
    share = lengths.sum() / listed_days
    assert 0.01 <= share <= 0.03
    assert np.median(lengths) <= 3 and lengths.max() >= 40  # a day to months
    resumed = np.abs(bars["r"].to_numpy()[step > 1])
    normal = np.abs(bars["r"].to_numpy()[(step == 1) & ~bars["young"].to_numpy()])
    assert resumed.mean() > 1.5 * normal.mean()


def test_universe_grows_and_delisted_names_keep_their_history(market, bars):
    s, d = market.stocks, market.daily
    first, last = d["trade_date"].min(), d["trade_date"].max()
    listed_at = lambda day: ((s["list_date"] <= day) & ~(s["delist_date"] <= day)).sum()  # noqa: E731
    assert listed_at(last) == CFG.n_stocks  # n_stocks = names listed at the end of the plan
    assert listed_at(first) < 0.9 * listed_at(last)
    ipos = s[s["list_date"] > first]
    assert len(ipos) >= 30
    first_rows = d.groupby("ts_code")["trade_date"].min()
    assert (first_rows[ipos["ts_code"]].to_numpy() == ipos["list_date"].to_numpy()).all()

    delisted = s[s["delist_date"].notna()]
    assert len(delisted) >= 3
    last_rows = d.groupby("ts_code")["trade_date"].max()[delisted["ts_code"]]
    assert (last_rows.to_numpy() < delisted["delist_date"].to_numpy()).all()  # history kept, nothing after
    assert (d.groupby("ts_code").size()[delisted["ts_code"]] > 20).all()
    # An ST period before each delisting: the last traded day is ST, and ST ran for months.
    final = bars[bars["ts_code"].isin(delisted["ts_code"])].groupby("ts_code").tail(1)
    assert final["is_st"].all()
    st_days = bars[bars["ts_code"].isin(delisted["ts_code"])].groupby("ts_code")["is_st"].sum()
    assert (st_days > 60).mean() > 0.5
    assert 0.005 < bars["is_st"].mean() < 0.06


# --------------------------------------------------------------------------------------------------
# Stylized facts (docs/market.md's table)


def test_returns_are_linearly_unpredictable_fat_tailed_and_cluster_in_volatility(wide):
    r = wide["r"]
    acf1 = _per_stock(r, lambda x: x.autocorr(1))
    assert acf1.abs().mean() < 0.05
    kurt = _per_stock(r, lambda x: x.kurt())
    assert 1.0 <= kurt.median() <= 6.0
    index = r.mean(axis=1)
    # docs/market.md: 5 to 8. Sample kurtosis over 5.5 years hinges on a few crash days (across seeds this market
    # gives 4 to 13 on such a window, 5 to 7 over 2015-2026): widened to 3.5-14.
    assert 3.5 <= index.kurt() <= 14.0
    absr = r.abs()
    assert 0.15 <= _per_stock(absr, lambda x: x.autocorr(1)).mean() <= 0.30
    assert _per_stock(absr, lambda x: x.autocorr(20)).mean() > 0.05


def test_market_and_industry_factors(market, wide):
    r = wide["r"]
    full = r.columns[r.notna().mean() > 0.9]
    corr = r[full].corr().to_numpy()
    industry = market.stocks.set_index("ts_code")["industry"].reindex(full).to_numpy(dtype=object)
    same = industry[:, None] == industry[None, :]
    off = ~np.eye(len(full), dtype=bool)
    # docs/market.md: 0.25 to 0.4. One 5.5-year path of the market's volatility regime moves the share of the
    # market in a stock's variance (across seeds 0.21 to 0.30 on this window): widened to 0.2-0.4.
    assert 0.20 <= np.nanmean(corr[off]) <= 0.40
    assert np.nanmean(corr[off & same]) > np.nanmean(corr[~same]) + 0.02
    index_vol = r.mean(axis=1).std() * np.sqrt(244)
    # docs/market.md: 20 to 25% a year; one 5.5-year path of a regime-switching volatility varies (16 to 31%
    # across seeds on this window, 21 to 25% over 2015-2026): widened to 15-32%.
    assert 0.15 <= index_vol <= 0.32


def test_cross_sectional_dispersion_and_short_term_reversal(monthly):
    past = monthly["past"]
    assert 0.08 <= past.std(axis=1).iloc[1:].mean() <= 0.12
    ics = []
    for k in range(1, len(past) - 1):
        a, b = past.iloc[k], past.iloc[k + 1]
        ok = a.notna() & b.notna()
        ics.append(a[ok].rank().corr(b[ok].rank()))
    # docs/market.md: -0.03 to -0.08. With 240 names the mean of 64 monthly rank ICs has a standard error of
    # about 0.01, so the band is widened by 0.015 at each end.
    assert -0.095 <= np.mean(ics) <= -0.015


def test_volume_turnover_and_size(market, bars, wide):
    lv, absr = wide["log_volume"], wide["r"].abs()
    counts = absr.notna().sum()
    names = counts[counts >= 250].index
    corr = [np.corrcoef(lv[c][absr[c].notna()], absr[c].dropna())[0, 1] for c in names]
    assert 0.3 <= np.nanmean(corr) <= 0.5
    lt = wide["log_turnover"][names]
    assert _per_stock(lt, lambda x: x.autocorr(1)).mean() > 0.5  # autocorrelated
    assert abs(_per_stock(lt, lambda x: x.skew()).median()) < 0.5  # lognormal: log turnover near-symmetric
    assert 0.005 < np.exp(np.nanmedian(lt.to_numpy())) < 0.05
    first = bars.groupby("ts_code").first()
    cap = (first["close"] * first["float_shares"]).reindex(names)
    small = cap <= cap.median()
    vol = wide["r"][names].std()
    turnover = lt.median()
    assert vol[small].median() > 1.1 * vol[~small].median()  # smaller names more volatile
    assert turnover[small].median() > turnover[~small].median() + np.log(1.3)  # and turn over more


# --------------------------------------------------------------------------------------------------
# Determinism and no look-ahead


def test_same_config_gives_identical_frames(market):
    again = generate_market(CFG)
    pd.testing.assert_frame_equal(again.daily, market.daily, check_exact=True)
    pd.testing.assert_frame_equal(again.stocks, market.stocks, check_exact=True)
    pd.testing.assert_frame_equal(again.truth, market.truth, check_exact=True)
    other = generate_market(MarketConfig(n_stocks=CFG.n_stocks, seed=CFG.seed + 1, start=CFG.start, end=SHORT_END))
    assert not np.allclose(other.daily["close"].iloc[:200], market.daily["close"].iloc[:200])


def test_a_shorter_run_is_an_exact_prefix(market):
    short = generate_market(MarketConfig(n_stocks=CFG.n_stocks, seed=CFG.seed, start=CFG.start, end=SHORT_END))
    cut = pd.Timestamp(SHORT_END)
    pd.testing.assert_frame_equal(
        short.daily, market.daily[market.daily["trade_date"] <= cut].reset_index(drop=True), check_exact=True
    )
    pd.testing.assert_frame_equal(
        short.truth, market.truth[market.truth["month"] <= cut.strftime("%Y-%m")].reset_index(drop=True),
        check_exact=True,
    )
    # The shorter run knows no future listing and no future delisting.
    assert (short.stocks["list_date"] <= cut).all()
    assert not (short.stocks["delist_date"] > cut).any()
    long_known = market.stocks[market.stocks["list_date"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(short.stocks.drop(columns="delist_date"), long_known.drop(columns="delist_date"))
    delisted_later = long_known["delist_date"] > cut
    assert short.stocks["delist_date"][delisted_later.to_numpy()].isna().all()


def test_running_past_the_library_calendar_changes_no_earlier_month(market):
    """The synthetic calendar (or a calendar file) extends the market; every month before it stays bit-identical."""
    longer = generate_market(MarketConfig(n_stocks=CFG.n_stocks, seed=CFG.seed, start=CFG.start, end="2027-03-31"))
    assert longer.daily["trade_date"].max() > pd.Timestamp("2027-03-01")
    cut = pd.Timestamp(CFG.end)
    pd.testing.assert_frame_equal(
        longer.daily[longer.daily["trade_date"] <= cut].reset_index(drop=True), market.daily, check_exact=True
    )
    pd.testing.assert_frame_equal(
        longer.truth[longer.truth["month"] < "2026-12"].reset_index(drop=True),
        market.truth[market.truth["month"] < "2026-12"].reset_index(drop=True),
        check_exact=True,
    )


# --------------------------------------------------------------------------------------------------
# The planted effects


def _oracle_ics(market, monthly) -> pd.Series:
    forward = monthly["forward"]
    truth = market.truth.pivot(index="month", columns="ts_code", values="expected_return")
    ics = {}
    for month in forward.index:
        expected, realised = truth.loc[month], forward.loc[month]
        ok = expected.notna() & realised.notna()
        ics[month] = np.corrcoef(expected[ok], realised[ok])[0, 1]
    return pd.Series(ics)


def test_oracle_ic_is_between_010_and_020(market, monthly):
    ics = _oracle_ics(market, monthly)
    assert len(ics) >= 60
    assert 0.10 <= ics.mean() <= 0.20
    by_year = ics.groupby(ics.index.str[:4]).mean()
    assert (by_year > 0).sum() >= len(by_year) - 1  # a positive mean in almost every year
    assert (ics > 0).mean() > 0.75


def test_truth_is_an_unbiased_forecast(market, monthly):
    """Regressing R on the truth (both demeaned per month) gives a slope near 1: the truth is the expectation."""
    forward = monthly["forward"].stack().rename("R")
    truth = market.truth.set_index(["month", "ts_code"])["expected_return"]
    joined = pd.concat([truth, forward], axis=1, join="inner").dropna()
    demeaned = joined - joined.groupby(level=0).transform("mean")
    slope = (demeaned["expected_return"] * demeaned["R"]).sum() / (demeaned["expected_return"] ** 2).sum()
    assert 0.7 <= slope <= 1.3


def _ramp_t_stat(log_turnover: np.ndarray, width: int = 10, recent: int = 21) -> np.ndarray:
    """Max over the windows ending in the last ``recent`` sessions of the t-statistic of a linear rise of
    log turnover over ``width`` sessions. log_turnover: [stocks, sessions], oldest first."""
    windows = np.lib.stride_tricks.sliding_window_view(log_turnover, width, axis=-1)
    tt = np.arange(width) - (width - 1) / 2.0
    slope = (windows * tt).sum(-1) / (tt ** 2).sum()
    resid = windows - windows.mean(-1, keepdims=True) - slope[..., None] * tt
    se = np.sqrt((resid ** 2).sum(-1) / (width - 2) / (tt ** 2).sum())
    return (slope / se)[..., -recent:].max(-1)


def test_accumulation_effect_depends_on_the_order_of_the_window(market, wide, monthly):
    """A steady volume rise in the last 40 sessions predicts returns; the same 40 days reversed in time do not.

    Every order-free summary of a window (means, variances, quantiles) is the same for the window and its
    time reversal, so a gap between the two ICs is a signal that only the order carries.
    """
    lt = wide["log_turnover"]
    truth = market.truth.pivot(index="month", columns="ts_code", values="expected_return")
    position = {day: k for k, day in enumerate(lt.index)}
    rows = []
    for end, month in zip(monthly["ends"], monthly["forward"].index):
        k = position[end]
        if k < 40:
            continue
        block = lt.iloc[k - 39: k + 1]
        names = block.columns[block.notna().all().to_numpy()]
        values = block[names].to_numpy().T
        rows.append(pd.DataFrame({
            "month": month,
            "forward_order": _ramp_t_stat(values),
            "reversed_order": _ramp_t_stat(values[:, ::-1]),
            "truth": truth.loc[month].reindex(names).to_numpy(),
            "R": monthly["forward"].loc[month].reindex(names).to_numpy(),
        }))
    samples = pd.concat(rows).dropna()

    def ic(feature, target):
        return samples.groupby("month")[[feature, target]].apply(lambda g: g[feature].corr(g[target])).mean()

    # Against the generator's own expectation (noise-free): strong one way, nothing the other.
    assert ic("forward_order", "truth") > 0.08
    assert abs(ic("reversed_order", "truth")) < 0.04
    # Against realised returns (noisy: monthly R has a 10% spread): the forward order still wins.
    assert ic("forward_order", "R") > ic("reversed_order", "R")
    assert ic("forward_order", "R") > 0.0


VARIANT_CFG = dict(n_stocks=200, seed=20260301, start="2021-07-01", end="2023-12-29")


def _month_end_panel(market):
    """Per (month, stock) at each month end: the truth, -20-session return, 20-session log-return vol and
    mean log turnover over the last 5 sessions relative to the stock's own 60-session mean."""
    d = market.daily.assign(adj_close=market.daily.close * market.daily.adj_factor)
    d = d.assign(turnover=d.volume / d.float_shares)
    wide = d.pivot(index="trade_date", columns="ts_code", values="adj_close")
    log_ret = np.log(wide).diff()
    log_turn = np.log(d.pivot(index="trade_date", columns="ts_code", values="turnover"))
    ends = wide.groupby(wide.index.to_period("M")).tail(1).index
    frames = []
    for end in ends[3:]:
        pos = wide.index.get_loc(end)
        frames.append(
            pd.DataFrame(
                {
                    "month": end.strftime("%Y-%m"),
                    "reversal": -(wide.iloc[pos] / wide.iloc[pos - 20] - 1),
                    "vol": log_ret.iloc[pos - 19 : pos + 1].std(),
                    "abnormal_turnover": log_turn.iloc[pos - 4 : pos + 1].mean() - log_turn.iloc[pos - 59 : pos + 1].mean(),
                }
            ).rename_axis("ts_code").reset_index()
        )
    panel = pd.concat(frames).merge(market.truth, on=["month", "ts_code"])
    return panel.dropna()


def _monthly_corr(panel, a, b):
    return panel.groupby("month").apply(lambda g: np.corrcoef(g[a], g[b])[0, 1]).mean()


@pytest.fixture(scope="module")
def embedded_panel():
    return _month_end_panel(generate_market(MarketConfig(**VARIANT_CFG)))


def test_low_volatility_premium_makes_the_truth_favour_quiet_names(embedded_panel):
    low_vol = _month_end_panel(generate_market(MarketConfig(**VARIANT_CFG, low_vol_premium=1.0)))
    without = _monthly_corr(embedded_panel, "vol", "expected_return")
    with_effect = _monthly_corr(low_vol, "vol", "expected_return")
    assert with_effect < without - 0.15
    assert with_effect < -0.2


def test_turnover_reversal_makes_reversal_stronger_where_turnover_is_high(embedded_panel):
    variant = _month_end_panel(generate_market(MarketConfig(**VARIANT_CFG, turnover_reversal=1.0)))

    def gap(panel):
        high = panel[panel.groupby("month")["abnormal_turnover"].rank(pct=True) > 2 / 3]
        low = panel[panel.groupby("month")["abnormal_turnover"].rank(pct=True) <= 1 / 3]
        return _monthly_corr(high, "reversal", "expected_return") - _monthly_corr(low, "reversal", "expected_return")

    assert gap(variant) > gap(embedded_panel) + 0.05


def test_switching_the_planted_effects_off_leaves_little_to_predict(embedded_panel):
    off = generate_market(MarketConfig(**VARIANT_CFG, reversal=0.0, attention=0.0, episodes=0.0))
    on_spread = embedded_panel.groupby("month")["expected_return"].std().mean()
    off_panel = _month_end_panel(off)
    assert off_panel.groupby("month")["expected_return"].std().mean() < 0.5 * on_spread
    assert abs(_monthly_corr(off_panel, "reversal", "expected_return")) < 0.5 * _monthly_corr(embedded_panel, "reversal", "expected_return")

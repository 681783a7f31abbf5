"""The features stage: hand-computed features, labels, universe flags, standardisation, no look-ahead, storage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.features import windows as F
from factor_pipeline.market import trading_rules
from factor_pipeline.market import session_calendar
from factor_pipeline import storage
from factor_pipeline.config import SampleConfig

CFG = SampleConfig()
DAILY_COLUMNS = [
    "ts_code", "trade_date", "open", "high", "low", "close", "pre_close",
    "volume", "amount", "adj_factor", "float_shares", "is_st",
]  # fmt: skip


def _canonical(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    rows["trade_date"] = pd.DatetimeIndex(rows["trade_date"]).as_unit("ns")
    for column in DAILY_COLUMNS[2:-1]:
        rows[column] = rows[column].astype(np.float64)
    rows["is_st"] = rows["is_st"].astype(bool)
    return rows[DAILY_COLUMNS].sort_values(["trade_date", "ts_code"]).reset_index(drop=True)


def _stocks(codes, list_dates=None, delist_dates=None, industry="Banks") -> pd.DataFrame:
    n = len(codes)
    list_dates = list_dates if list_dates is not None else [pd.Timestamp("2010-01-04")] * n
    delist_dates = delist_dates if delist_dates is not None else [pd.NaT] * n
    return pd.DataFrame(
        {
            "ts_code": list(codes),
            "name": list(codes),
            "industry": industry,
            "list_date": pd.DatetimeIndex(list_dates).as_unit("ns"),
            "delist_date": pd.DatetimeIndex(delist_dates).as_unit("ns"),
        }
    )


def random_market(codes, first, last, seed=0, suspend_prob=0.0, list_dates=None):
    """A random-walk market with tick prices, one ex-dividend per stock and optional random halts."""
    rng = np.random.default_rng(seed)
    sessions = session_calendar.sessions_between(first, last)
    T, n = len(sessions), len(codes)
    adj = np.ones((T, n))
    ex_day = rng.integers(1, T, n)
    dividend = rng.uniform(0.02, 0.3, n)
    for j in range(n):
        adj[ex_day[j] :, j] = 1.0 + dividend[j]
    adj_close = 10.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, n)), axis=0))
    close = np.round(adj_close / adj, 2)
    traded = rng.random((T, n)) >= suspend_prob
    if list_dates is not None:
        traded &= sessions.values[:, None] >= pd.DatetimeIndex(list_dates).values[None, :]
    # pre_close: the last traded close, carried through halts, restated for a dividend in between.
    last_adj_close = np.full(n, np.nan)
    pre_close = np.empty((T, n))
    for i in range(T):
        base = np.where(np.isnan(last_adj_close), close[i] * adj[i] * 0.98, last_adj_close)
        pre_close[i] = np.round(base / adj[i], 2)
        last_adj_close = np.where(traded[i], close[i] * adj[i], last_adj_close)
    open_ = np.round(pre_close * np.exp(rng.normal(0, 0.01, (T, n))), 2)
    high = np.round(np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, (T, n))), 2)
    low = np.round(np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, (T, n))), 2)
    volume = np.round(np.exp(rng.normal(13, 0.6, (T, n))))
    vwap = low + (high - low) * rng.uniform(0.2, 0.8, (T, n))
    frame = pd.DataFrame(
        {
            "ts_code": np.tile(np.asarray(codes, dtype=object), T),
            "trade_date": np.repeat(sessions.values, n),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "pre_close": pre_close.ravel(),
            "volume": volume.ravel(),
            "amount": (volume * vwap).ravel(),
            "adj_factor": adj.ravel(),
            "float_shares": 2e8,
            "is_st": False,
        }
    )
    return _canonical(frame[traded.ravel()])


def features_for(daily: pd.DataFrame, months) -> pd.DataFrame:
    return pd.concat([F.compute_features(daily, m) for m in months], ignore_index=True)


def build(daily, stocks, month, cfg=CFG):
    months = session_calendar.months_between(session_calendar.shift_month(month, -F.SEQUENCE_LOOKBACK_MONTHS), month)
    return F.build_samples(features_for(daily, months), daily, stocks, month, cfg)


# ---------------------------------------------------------------------------------------------------
# Hand-computed features


def _session(day: str) -> pd.Timestamp:
    return pd.Timestamp(day)


def _k(day: str) -> int:
    """Index of ``day`` among the tiny market's sessions (volumes grow with it)."""
    return session_calendar.sessions_between("2024-01-02", "2024-02-29").get_loc(pd.Timestamp(day))


@pytest.fixture(scope="module")
def tiny_market():
    """Three stocks over real sessions Jan-Feb 2024 (the Spring Festival break sits before 02-19).

    600000.SH: flat at 10.00 in January, ex-dividend on 2024-02-19 (adj_factor 1 -> 1.25, pre_close 8.00).
    000001.SZ: halted 02-20 and 02-21 (no rows), a volume-0 row on 02-22, resumes 02-23; float_shares unknown.
    600100.SH: lists on 2024-02-05 at an issue price (pre_close) of 5.00.
    """
    sessions = session_calendar.sessions_between("2024-01-02", "2024-02-29")
    rows = []
    for k, day in enumerate(sessions):
        volume = 1000.0 + 100.0 * k
        if day < _session("2024-02-19"):
            a = dict(open=9.90, high=10.10, low=9.80, close=10.00, pre_close=10.00, amount=volume * 10.0, adj_factor=1.0)
        elif day == _session("2024-02-19"):
            a = dict(open=8.20, high=8.60, low=8.00, close=8.40, pre_close=8.00, amount=volume * 8.30, adj_factor=1.25)
        else:
            a = dict(open=8.40, high=8.50, low=8.30, close=8.40, pre_close=8.40, amount=volume * 8.40, adj_factor=1.25)
        rows.append(dict(ts_code="600000.SH", trade_date=day, volume=volume, float_shares=1e5, is_st=False, **a))

        b_close = 20.0 + 0.1 * k
        if day in (_session("2024-02-20"), _session("2024-02-21")):
            pass
        elif day == _session("2024-02-22"):
            rows.append(dict(ts_code="000001.SZ", trade_date=day, open=0.0, high=0.0, low=0.0, close=21.0,
                             pre_close=21.0, volume=0.0, amount=0.0, adj_factor=1.0, float_shares=np.nan, is_st=False))  # fmt: skip
        else:
            rows.append(dict(ts_code="000001.SZ", trade_date=day, open=b_close, high=b_close + 0.2, low=b_close - 0.2,
                             close=b_close, pre_close=b_close - 0.1, volume=500.0 + 10 * k, amount=(500.0 + 10 * k) * b_close,
                             adj_factor=1.0, float_shares=np.nan, is_st=False))  # fmt: skip

        if day == _session("2024-02-05"):
            rows.append(dict(ts_code="600100.SH", trade_date=day, open=6.00, high=7.50, low=5.90, close=7.20,
                             pre_close=5.00, volume=4000.0, amount=4000.0 * 6.80, adj_factor=1.0, float_shares=1e4, is_st=False))  # fmt: skip
        elif day > _session("2024-02-05"):
            rows.append(dict(ts_code="600100.SH", trade_date=day, open=7.20, high=7.30, low=7.10, close=7.20,
                             pre_close=7.20, volume=2000.0, amount=2000.0 * 7.20, adj_factor=1.0, float_shares=1e4, is_st=False))  # fmt: skip
    daily = _canonical(pd.DataFrame(rows))
    # Input order must not matter.
    return daily.sample(frac=1.0, random_state=3).reset_index(drop=True)


def _row(feats, code, day):
    match = feats[(feats.ts_code == code) & (feats.trade_date == pd.Timestamp(day))]
    assert len(match) == 1, (code, day)
    return match.iloc[0]


def test_feature_names_and_columns(tiny_market):
    assert len(F.FEATURE_NAMES) == 18 == CFG.n_features
    assert len(set(F.FEATURE_NAMES)) == 18
    assert F.FEATURE_NAMES[:8] == ("close", "open", "high", "low", "vwap", "volume", "amount", "turnover_rate")
    feats = F.compute_features(tiny_market, "2024-02")
    assert list(feats.columns) == ["ts_code", "trade_date", "month", *F.FEATURE_NAMES, "adj_close"]
    assert feats["trade_date"].dtype == "datetime64[ns]"
    assert (feats["month"] == "2024-02").all()
    for name in (*F.FEATURE_NAMES, "adj_close"):
        assert feats[name].dtype == np.float64
    # Only February's traded days: no January row, no row for the halt or the volume-0 day.
    assert feats.trade_date.min() >= pd.Timestamp("2024-02-01")
    b_days = set(feats.loc[feats.ts_code == "000001.SZ", "trade_date"].dt.strftime("%m-%d"))
    assert not b_days & {"02-20", "02-21", "02-22"}
    assert len(b_days) == len(session_calendar.month_sessions("2024-02")) - 3
    assert feats[["ts_code", "trade_date"]].equals(feats[["ts_code", "trade_date"]].sort_values(["ts_code", "trade_date"]))


def test_hand_computed_ex_dividend_day(tiny_market):
    feats = F.compute_features(tiny_market, "2024-02")
    r = _row(feats, "600000.SH", "2024-02-19")
    # Adjusted: x 1.25. The previous traded day (02-08, before the holiday) closed at 10.00 with factor 1.
    expected = {
        "close": 8.40 * 1.25,  # 10.5
        "open": 8.20 * 1.25,  # 10.25
        "high": 8.60 * 1.25,  # 10.75
        "low": 8.00 * 1.25,  # 10.0
        "vwap": 8.30 * 1.25,  # 10.375
        "adj_close": 10.5,
        "ret": 10.5 / 10.0 - 1,  # +5%, where the unadjusted close fell 16%
        "log_ret": math.log(1.05),
        "intraday_ret": 8.40 / 8.20 - 1,
        "overnight_ret": 10.25 / 10.0 - 1,
        "amplitude": (10.75 - 10.0) / 10.0,
        "upper_shadow": (10.75 - 10.5) / 10.0,
        "lower_shadow": (10.25 - 10.0) / 10.0,
        "close_to_vwap": 10.5 / 10.375 - 1,
    }
    for name, value in expected.items():
        assert r[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    # Volume is 1000 + 100k on the k-th session; every session before 02-19 is a traded day.
    k = _k("2024-02-19")
    volume = 1000.0 + 100 * k
    assert r["volume"] == volume
    assert r["amount"] == pytest.approx(volume * 8.30)
    assert r["turnover_rate"] == pytest.approx(volume / 1e5)
    assert r["volume_ratio_5"] == pytest.approx(volume / np.mean([1000.0 + 100 * j for j in range(k - 5, k)]))
    turnover_before = [(1000.0 + 100 * j) / 1e5 for j in range(k - 20, k)]
    assert r["turnover_ratio_20"] == pytest.approx((volume / 1e5) / np.mean(turnover_before))


def test_hand_computed_first_day_of_month_uses_prior_month(tiny_market):
    feats = F.compute_features(tiny_market, "2024-02")
    r = _row(feats, "600000.SH", "2024-02-01")
    assert r["ret"] == pytest.approx(0.0, abs=1e-15)
    assert r["overnight_ret"] == pytest.approx(9.90 / 10.0 - 1)
    k = _k("2024-02-01")  # the 5 sessions before it are in January
    assert r["volume_ratio_5"] == pytest.approx((1000 + 100 * k) / np.mean([1000 + 100 * j for j in range(k - 5, k)]))


def test_hand_computed_halt_and_missing_float_shares(tiny_market):
    feats = F.compute_features(tiny_market, "2024-02")
    r = _row(feats, "000001.SZ", "2024-02-23")
    k23, k19 = _k("2024-02-23"), _k("2024-02-19")
    close23, close19 = 20.0 + 0.1 * k23, 20.0 + 0.1 * k19
    # The return spans the halt (02-20..02-22): from the last traded close, not from the volume-0 row.
    assert r["ret"] == pytest.approx(close23 / close19 - 1)
    assert r["overnight_ret"] == pytest.approx(close23 / close19 - 1)
    # The volume ratio's 5 previous traded days skip the halt: 02-19 and the four before the holiday.
    previous = [500.0 + 10 * _k(d) for d in ("2024-02-05", "2024-02-06", "2024-02-07", "2024-02-08", "2024-02-19")]
    assert r["volume_ratio_5"] == pytest.approx((500.0 + 10 * k23) / np.mean(previous))
    assert np.isnan(r["turnover_rate"]) and np.isnan(r["turnover_ratio_20"])
    assert np.isfinite(r[[n for n in F.FEATURE_NAMES if "turnover" not in n]].astype(float)).all()


def test_hand_computed_listing_day(tiny_market):
    feats = F.compute_features(tiny_market, "2024-02")
    r = _row(feats, "600100.SH", "2024-02-05")
    assert r["ret"] == pytest.approx(7.20 / 5.00 - 1)  # from the issue price (pre_close)
    assert r["vwap"] == pytest.approx(6.80)
    assert r["turnover_rate"] == pytest.approx(0.4)
    assert np.isnan(r["volume_ratio_5"]) and np.isnan(r["turnover_ratio_20"])  # nothing before the listing
    second = _row(feats, "600100.SH", "2024-02-06")
    assert second["volume_ratio_5"] == pytest.approx(2000.0 / 4000.0)


# ---------------------------------------------------------------------------------------------------
# Forward returns and labels


def test_forward_returns_rules():
    daily = random_market(["600001.SH", "600002.SH", "600003.SH"], "2024-01-02", "2024-03-29", seed=5)
    adj = daily.assign(adj_close=daily.close * daily.adj_factor).set_index(["ts_code", "trade_date"])["adj_close"]
    start, end = pd.Timestamp("2024-02-01"), pd.Timestamp("2024-03-01")
    halt = session_calendar.sessions_between("2024-02-27", end)
    delisted_after = pd.Timestamp("2024-02-20")
    daily = daily[
        ~((daily.ts_code == "600002.SH") & daily.trade_date.isin(halt))  # halted at the end
        & ~((daily.ts_code == "600003.SH") & (daily.trade_date > delisted_after))  # delisted
    ]
    # A volume-0 row on the end date is a halt too.
    zero = daily[(daily.ts_code == "600001.SH") & (daily.trade_date == end)].index
    daily.loc[zero, ["volume", "amount"]] = 0.0
    targets = pd.DataFrame(
        {
            "ts_code": ["600001.SH", "600002.SH", "600003.SH", "600003.SH", "600001.SH", "999999.SH", "600001.SH"],
            "start_date": [start, start, start, delisted_after, pd.Timestamp("2024-02-03"), start, end],
            "end_date": [end, end, end, end, end, end, pd.NaT],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )
    out = F.forward_returns(daily, targets)
    assert list(out.index) == [10, 11, 12, 13, 14, 15, 16]
    before_end = session_calendar.session_offset(end, -1)
    assert out[10] == pytest.approx(adj["600001.SH", before_end] / adj["600001.SH", start] - 1)
    assert out[11] == pytest.approx(adj["600002.SH", pd.Timestamp("2024-02-26")] / adj["600002.SH", start] - 1)
    assert out[12] == pytest.approx(adj["600003.SH", delisted_after] / adj["600003.SH", start] - 1)
    assert np.isnan(out[13])  # no close after the start
    assert np.isnan(out[14])  # 02-03 is a Saturday: no close on start_date
    assert np.isnan(out[15])  # unknown stock
    assert np.isnan(out[16])  # no end date


def test_labels_alignment_and_knowledge():
    codes = ["600001.SH", "600002.SH"]
    daily = random_market(codes, "2024-01-02", "2024-05-31", seed=7)
    adj = daily.assign(adj_close=daily.close * daily.adj_factor).set_index(["ts_code", "trade_date"])["adj_close"]
    dates = session_calendar.sample_dates("2024-02", 5)
    samples = pd.DataFrame(
        {"ts_code": np.repeat(codes, len(dates)), "trade_date": np.tile(dates.values, 2)}, index=np.arange(100, 100 + 2 * len(dates))
    )
    horizon = 20
    last_end = session_calendar.session_offset(dates[-1], horizon)
    labels = F.compute_labels(daily, samples, horizon, as_of=last_end)
    assert list(labels.index) == list(samples.index)
    for i, row in samples.iterrows():
        end = session_calendar.session_offset(row.trade_date, horizon)
        assert len(session_calendar.sessions_between(row.trade_date, end)) == horizon + 1
        assert labels[i] == pytest.approx(adj[row.ts_code, end] / adj[row.ts_code, row.trade_date] - 1)
    # One session earlier the newest date's label is not known yet; the others are.
    earlier = F.compute_labels(daily, samples, horizon, as_of=session_calendar.session_offset(last_end, -1))
    newest = samples.trade_date == dates[-1]
    assert earlier[newest].isna().all()
    assert earlier[~newest].equals(labels[~newest])
    # Nothing known at the sample date itself.
    assert F.compute_labels(daily, samples, horizon, as_of=dates[0]).isna().all()


def test_labels_past_calendar_horizon_are_nan():
    last = session_calendar.all_sessions()[-1]
    near_end = session_calendar.session_offset(last, -5)
    daily = random_market(["600001.SH"], session_calendar.session_offset(last, -30), last, seed=1)
    samples = pd.DataFrame({"ts_code": ["600001.SH", "600001.SH"], "trade_date": [session_calendar.session_offset(last, -25), near_end]})
    labels = F.compute_labels(daily, samples, 20, as_of=last + pd.Timedelta(days=400))
    assert np.isfinite(labels.iloc[0])
    assert np.isnan(labels.iloc[1])


# ---------------------------------------------------------------------------------------------------
# Universe filters and flags


@pytest.fixture(scope="module")
def universe_case():
    month = "2024-03"
    t = session_calendar.rebalance_date(month)
    sessions = session_calendar.all_sessions()
    pos = sessions.get_loc(t)
    codes = [
        "600001.SH",  # plain: eligible
        "600002.SH",  # ST on t
        "600003.SH",  # listed 125 sessions before t
        "600013.SH",  # listed 126 sessions before t: eligible
        "600004.SH",  # no row on t
        "600005.SH",  # volume-0 row on t
        "600006.SH",  # 21 halted sessions in the 60-session window: 39 traded days
        "600007.SH",  # 20 halted sessions: exactly 40 traded days
        "600008.SH",  # closes at the +10% limit on t
        "600009.SH",  # ST, closes at the +5% limit on t
        "688001.SH",  # STAR board, +10% on t: below its 20% limit
        "600010.SH",  # listed 3 sessions before t, +30%: no limit yet
        "600011.SH",  # delisted before t
        "600012.SH",  # lists after t (in April): not in March's rows
    ]
    list_dates = [pd.Timestamp("2015-06-01")] * len(codes)
    list_dates[2] = sessions[pos - 125]
    list_dates[3] = sessions[pos - 126]
    list_dates[11] = sessions[pos - 3]
    list_dates[13] = pd.Timestamp("2024-04-08")
    delist = [pd.NaT] * len(codes)
    delist[12] = pd.Timestamp("2024-03-15")
    daily = random_market(codes, "2023-09-01", "2024-04-30", seed=11, list_dates=list_dates)
    window = sessions[pos - 59 : pos]
    dropped = (
        ((daily.ts_code == "600006.SH") & daily.trade_date.isin(window[10:31]))
        | ((daily.ts_code == "600007.SH") & daily.trade_date.isin(window[10:30]))
        | ((daily.ts_code == "600004.SH") & (daily.trade_date == t))
        | ((daily.ts_code == "600011.SH") & (daily.trade_date >= delist[12]))
    )
    daily = daily[~dropped].reset_index(drop=True)
    on_t = daily.trade_date == t
    daily.loc[(daily.ts_code == "600005.SH") & on_t, ["volume", "amount"]] = 0.0
    daily.loc[(daily.ts_code.isin(["600002.SH", "600009.SH"])) & on_t, "is_st"] = True
    for code, move in (("600008.SH", 1.10), ("600009.SH", 1.05), ("688001.SH", 1.10), ("600010.SH", 1.30)):
        row = (daily.ts_code == code) & on_t
        pre = daily.loc[row, "pre_close"].to_numpy()
        limit = trading_rules.round_half_up(pre * move)
        daily.loc[row, ["close", "high"]] = np.c_[limit, limit]
    stocks = _stocks(codes, list_dates, delist)
    X, samples = build(daily, stocks, month)
    return t, daily, X, samples


def test_universe_rows_and_flags(universe_case):
    t, daily, X, samples = universe_case
    assert list(samples.columns) == list(F.SAMPLE_COLUMNS)
    assert samples[["trade_date", "ts_code"]].equals(samples[["trade_date", "ts_code"]].sort_values(["trade_date", "ts_code"]))
    at_t = samples[samples.trade_date == t].set_index("ts_code")
    assert "600011.SH" not in at_t.index and "600012.SH" not in at_t.index
    assert "600012.SH" not in set(samples.ts_code)

    def flags(code):
        return at_t.loc[code, ["is_st", "is_trading", "full_window", "eligible", "is_limit_up", "buyable"]].tolist()

    #                             is_st  trading full   eligible limit_up buyable
    assert flags("600001.SH") == [False, True, True, True, False, True]
    assert flags("600002.SH") == [True, True, True, False, False, False]
    assert flags("600003.SH") == [False, True, True, False, False, False]
    assert flags("600013.SH") == [False, True, True, True, False, True]
    assert flags("600004.SH") == [False, False, True, False, False, False]
    assert flags("600005.SH") == [False, False, True, False, False, False]
    assert flags("600006.SH") == [False, True, False, False, False, False]
    assert flags("600007.SH") == [False, True, True, True, False, True]
    assert flags("600008.SH") == [False, True, True, True, True, False]
    assert flags("600009.SH") == [True, True, True, False, True, False]
    assert flags("688001.SH") == [False, True, True, True, False, True]
    assert flags("600010.SH") == [False, True, False, False, False, False]
    assert at_t.loc["600003.SH", "listed_sessions"] == 125
    assert at_t.loc["600013.SH", "listed_sessions"] == 126
    assert at_t.loc["600010.SH", "listed_sessions"] == 3
    assert at_t.loc["600001.SH", "industry"] == "Banks"
    row = daily[(daily.ts_code == "600001.SH") & (daily.trade_date == t)].iloc[0]
    assert at_t.loc["600001.SH", "log_float_mcap"] == pytest.approx(math.log(row.close * row.float_shares))
    # A halted stock keeps its last traded size.
    last = daily[(daily.ts_code == "600004.SH") & (daily.trade_date < t)].iloc[-1]
    assert at_t.loc["600004.SH", "log_float_mcap"] == pytest.approx(math.log(last.close * last.float_shares))


def test_seq_index_and_x_shape(universe_case):
    _, _, X, samples = universe_case
    assert X.dtype == np.float32 and X.shape[1:] == (CFG.seq_len, 18)
    assert X.shape[0] == samples.eligible.sum()
    assert (samples.loc[samples.eligible, "seq_index"].to_numpy() == np.arange(X.shape[0])).all()
    assert (samples.loc[~samples.eligible, "seq_index"] == -1).all()
    assert set(samples.trade_date) == set(session_calendar.sample_dates("2024-03", CFG.sample_every))
    assert np.isfinite(X).all()


def test_sequence_lookback_covers_every_window():
    """SEQUENCE_LOOKBACK_MONTHS months of features reach the start of every sample date's window."""
    sessions = session_calendar.all_sessions()
    for month in session_calendar.months_between(session_calendar.FIRST_MONTH, session_calendar.last_complete_month()):
        first = session_calendar.month_sessions(session_calendar.shift_month(month, -F.SEQUENCE_LOOKBACK_MONTHS))[0]
        t = session_calendar.sample_dates(month, CFG.sample_every)[0]
        assert sessions.get_loc(t) - (CFG.max_window_sessions - 1) >= sessions.get_loc(first), month
        lookback = session_calendar.month_sessions(session_calendar.shift_month(month, -F.FEATURE_LOOKBACK_MONTHS))[0]
        assert sessions.get_loc(session_calendar.month_sessions(month)[0]) - sessions.get_loc(lookback) >= 20, month


# ---------------------------------------------------------------------------------------------------
# Standardisation against a straightforward pandas computation


def _reference_series(values: np.ndarray, mad_clip: float) -> np.ndarray:
    clipped = _reference_clipped(values, mad_clip)
    out = np.zeros_like(values)
    for j in range(values.shape[1]):
        s = pd.Series(clipped[:, j])
        if not np.isnan(pd.Series(values[:, j]).median()) and s.max() != s.min():
            out[:, j] = (s - s.mean()) / s.std(ddof=0)
    return out


def _reference_cross_section(block: np.ndarray) -> np.ndarray:
    out = np.zeros_like(block)
    for i in range(block.shape[1]):
        for j in range(block.shape[2]):
            column = block[:, i, j]
            if column.max() != column.min():
                out[:, i, j] = (column - column.mean()) / column.std()
    return out


def test_standardise_series_cases():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, 40, 4))
    raw[0, :, 0] = 7.0  # constant
    raw[0, :, 1] = np.nan  # all missing
    raw[0, ::3, 2] = np.nan  # some missing
    raw[0, 5, 3] = 1e6  # outlier
    raw[1, :25, 0] = 2.0  # MAD 0: more than half the steps equal
    out = F._standardise_series(raw, 5.0)
    assert np.isfinite(out).all()
    assert (out[0, :, 0] == 0).all() and (out[0, :, 1] == 0).all()
    expected = np.stack([_reference_series(raw[i], 5.0) for i in range(3)])
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    # The outlier was clipped: it sits well inside what a raw z-score would give (about 6.2).
    assert out[0, 5, 3] < 6.0
    assert np.std(out[0, :, 3]) == pytest.approx(1.0)
    # A constant cross-section becomes zeros.
    assert (F._zscore(np.ones((5, 40, 18)), axis=0) == 0).all()


def test_x_matches_reference_computation():
    codes = [f"60{i:04d}.SH" for i in range(12)]
    daily = random_market(codes, "2023-09-01", "2024-03-29", seed=21, suspend_prob=0.05)
    daily.loc[daily.ts_code == codes[0], "float_shares"] = np.nan  # turnover features all NaN
    daily.loc[daily.ts_code == codes[1], "volume"] = 5000.0  # constant volume and volume ratio
    month = "2024-03"
    months = session_calendar.months_between(session_calendar.shift_month(month, -F.SEQUENCE_LOOKBACK_MONTHS), month)
    feats = features_for(daily, months)
    cfg = SampleConfig(max_window_sessions=70)  # random halts: keep most stocks eligible
    X, samples = F.build_samples(feats, daily, _stocks(codes), month, cfg)
    eligible = samples[samples.eligible]
    assert len(eligible) >= 30
    expected = np.empty_like(X, dtype=np.float64)
    for date, group in eligible.groupby("trade_date"):
        block = []
        for code in group.ts_code:
            rows = feats[(feats.ts_code == code) & (feats.trade_date <= date)].sort_values("trade_date").tail(cfg.seq_len)
            assert rows.trade_date.iloc[-1] == date
            block.append(_reference_series(rows[list(F.FEATURE_NAMES)].to_numpy(), cfg.mad_clip))
        expected[group.seq_index.to_numpy()] = _reference_cross_section(np.stack(block))
    np.testing.assert_allclose(X, expected, rtol=1e-5, atol=1e-5)
    # Per date, every cell is standardised across the eligible stocks.
    for _, group in eligible.groupby("trade_date"):
        block = X[group.seq_index.to_numpy()].astype(np.float64)
        assert np.abs(block.mean(axis=0)).max() < 1e-5
        std = block.std(axis=0)
        assert np.all((np.abs(std - 1) < 1e-4) | (std == 0))
    # The cases the reference covers did occur: an all-NaN series (zeros before the cross-section)
    # and a constant one.
    assert feats.loc[feats.ts_code == codes[0], "turnover_rate"].isna().all()
    assert codes[0] in set(eligible.ts_code) and codes[1] in set(eligible.ts_code)
    assert np.isfinite(X).all()


def test_side_inputs_are_each_windows_level_and_log_volatility_ranked_across_the_date():
    codes = [f"60{i:04d}.SH" for i in range(12)]
    daily = random_market(codes, "2023-09-01", "2024-03-29", seed=22, suspend_prob=0.0)
    daily.loc[daily.ts_code == codes[1], "volume"] = 5000.0  # a constant volume: no volatility, ties elsewhere
    month = "2024-03"
    months = session_calendar.months_between(session_calendar.shift_month(month, -F.SEQUENCE_LOOKBACK_MONTHS), month)
    feats = features_for(daily, months)
    cfg = SampleConfig(max_window_sessions=70)
    _, samples = F.build_samples(feats, daily, _stocks(codes), month, cfg)
    eligible = samples[samples.eligible]
    assert samples.loc[~samples.eligible, list(F.SIDE_COLUMNS)].isna().all().all()
    for date, group in eligible.groupby("trade_date"):
        level, logvol = [], []
        for code in group.ts_code:
            rows = feats[(feats.ts_code == code) & (feats.trade_date <= date)].sort_values("trade_date").tail(cfg.seq_len)
            values = rows[list(F.FEATURE_NAMES)].to_numpy(dtype=np.float64)
            level.append(np.nanmean(values, axis=0))
            mean = np.nanmean(values, axis=0)
            logvol.append(np.log(np.maximum(np.nanstd(values, axis=0), 1e-9 * np.maximum(1.0, np.abs(mean)))))
        raw = pd.DataFrame(np.c_[np.array(level), np.array(logvol)])
        ranks = raw.rank(method="average")
        count = raw.notna().sum()
        expected = ((ranks - (count + 1) / 2) / np.sqrt((count**2 - 1) / 12)).fillna(0.0).to_numpy()
        np.testing.assert_allclose(group[list(F.SIDE_COLUMNS)].to_numpy(dtype=np.float64), expected, atol=1e-5)
    # The constant-volume name has the least volume volatility of the date; levels spread out.
    on_last = eligible[eligible.trade_date == eligible.trade_date.max()].set_index("ts_code")
    assert on_last.loc[codes[1], "logvol_volume"] == on_last["logvol_volume"].min() < -1.0
    assert on_last["level_volume"].std() > 0.5


def _reference_clipped(values: np.ndarray, mad_clip: float) -> np.ndarray:
    out = np.zeros_like(values)
    for j in range(values.shape[1]):
        s = pd.Series(values[:, j])
        median = s.median()
        if np.isnan(median):
            continue
        mad = (s - median).abs().median() * 1.4826
        s = s.fillna(median)
        if mad > 0:
            s = s.clip(median - mad_clip * mad, median + mad_clip * mad)
        out[:, j] = s
    return out


def test_scale_steps_keep_each_stocks_level_and_volatility_and_standardise_across_stocks_only():
    codes = [f"60{i:04d}.SH" for i in range(12)]
    daily = random_market(codes, "2023-09-01", "2024-03-29", seed=23, suspend_prob=0.03)
    month = "2024-03"
    months = session_calendar.months_between(session_calendar.shift_month(month, -F.SEQUENCE_LOOKBACK_MONTHS), month)
    feats = features_for(daily, months)
    cfg = SampleConfig(max_window_sessions=70)
    X, samples = F.build_samples(feats, daily, _stocks(codes), month, cfg)
    S = F.scale_steps(feats, samples, cfg)
    assert S.shape == (len(X), cfg.seq_len, len(F.STATE_FEATURES))
    keep = [F.FEATURE_NAMES.index(name) for name in F.STATE_FEATURES]
    eligible = samples[samples.eligible]
    expected = np.empty_like(S, dtype=np.float64)
    for date, group in eligible.groupby("trade_date"):
        block = []
        for code in group.ts_code:
            rows = feats[(feats.ts_code == code) & (feats.trade_date <= date)].sort_values("trade_date").tail(cfg.seq_len)
            block.append(_reference_clipped(rows[list(F.FEATURE_NAMES)].to_numpy()[:, keep], cfg.mad_clip))
        expected[group.seq_index.to_numpy()] = _reference_cross_section(np.stack(block))
    np.testing.assert_allclose(S, expected, rtol=1e-5, atol=1e-5)
    # Unlike X, a stock's window is not centred on itself: its mean over the steps varies across stocks.
    ret = F.STATE_FEATURES.index("ret")
    assert S[:, :, ret].mean(axis=1).std() > 3 * X[:, :, F.FEATURE_NAMES.index("ret")].mean(axis=1).std()


# ---------------------------------------------------------------------------------------------------
# No look-ahead


def test_no_look_ahead():
    codes = [f"60{i:04d}.SH" for i in range(25)] + ["300001.SZ", "688002.SH"]
    first, last = "2023-08-01", "2024-05-31"
    daily = random_market(codes, first, last, seed=3, suspend_prob=0.02)
    stocks = _stocks(codes)
    month = "2024-03"
    t = session_calendar.sample_dates(month, CFG.sample_every)[2]
    after = daily.trade_date > t

    rng = np.random.default_rng(99)
    altered = daily.copy()
    for column in ("open", "high", "low", "close", "pre_close"):
        altered.loc[after, column] *= rng.uniform(0.5, 1.5, after.sum())
    altered.loc[after, "volume"] *= rng.uniform(0.1, 10, after.sum())
    altered.loc[after, "adj_factor"] *= 1.3
    altered.loc[after, "is_st"] = rng.random(after.sum()) < 0.5
    altered = altered[~after | (rng.random(len(altered)) > 0.2)]  # new halts after t
    delisted = codes[4]
    delist_date = session_calendar.session_offset(t, 3)
    altered = altered[~((altered.ts_code == delisted) & (altered.trade_date >= delist_date))]
    newcomer = random_market(["600999.SH"], session_calendar.session_offset(t, 1), last, seed=4)
    altered = _canonical(pd.concat([altered, newcomer]))
    altered_stocks = pd.concat(
        [
            _stocks(codes, delist_dates=[delist_date if c == delisted else pd.NaT for c in codes]),
            _stocks(["600999.SH"], [session_calendar.session_offset(t, 1)]),
        ],
        ignore_index=True,
    )

    months = session_calendar.months_between(session_calendar.shift_month(month, -F.SEQUENCE_LOOKBACK_MONTHS), month)
    feats, feats2 = features_for(daily, months), features_for(altered, months)
    upto = feats.trade_date <= t
    pd.testing.assert_frame_equal(feats[upto].reset_index(drop=True), feats2[feats2.trade_date <= t].reset_index(drop=True), check_exact=True)

    X, samples = F.build_samples(feats, daily, stocks, month, CFG)
    X2, samples2 = F.build_samples(feats2, altered, altered_stocks, month, CFG)
    keep, keep2 = samples.trade_date <= t, samples2.trade_date <= t
    assert keep.sum() > 0 and (samples.trade_date > t).any()
    pd.testing.assert_frame_equal(samples[keep].reset_index(drop=True), samples2[keep2].reset_index(drop=True), check_exact=True)
    n = int(samples.loc[keep, "eligible"].sum())
    assert n > 0
    assert np.array_equal(X[:n], X2[:n])
    # The step channels (ModelConfig.step_channels) too: standardised across the date's stocks only.
    assert np.array_equal(F.scale_steps(feats, samples, CFG)[:n], F.scale_steps(feats2, samples2, CFG)[:n])

    # Labels known by t (as_of <= t) are the same in both worlds; later ones are NaN.
    prev_month = session_calendar.shift_month(month, -1)
    prev_months = session_calendar.months_between(session_calendar.shift_month(prev_month, -F.SEQUENCE_LOOKBACK_MONTHS), prev_month)
    _, prev = F.build_samples(features_for(daily, prev_months), daily, stocks, prev_month, CFG)
    both = pd.concat([prev, samples], ignore_index=True)
    both2 = pd.concat([prev, samples2], ignore_index=True)
    for as_of in (t, session_calendar.session_offset(t, -1)):
        labels = F.compute_labels(daily, both, CFG.label_horizon, as_of)
        labels2 = F.compute_labels(altered, both2, CFG.label_horizon, as_of)
        assert labels.equals(labels2)
        known = np.array([session_calendar.session_offset(d, CFG.label_horizon) <= as_of for d in both.trade_date])
        assert labels[~known].isna().all()
        assert labels[known & both.is_trading.to_numpy()].notna().any()
    # A known label ends exactly label_horizon sessions after its date.
    adj = daily.assign(a=daily.close * daily.adj_factor).set_index(["ts_code", "trade_date"])["a"]
    labels = F.compute_labels(daily, both, CFG.label_horizon, t)
    for i in np.flatnonzero(labels.notna().to_numpy())[:20]:
        row = both.iloc[i]
        end = session_calendar.session_offset(row.trade_date, CFG.label_horizon)
        if (row.ts_code, end) in adj.index:
            assert labels.iloc[i] == pytest.approx(adj[row.ts_code, end] / adj[row.ts_code, row.trade_date] - 1)


# ---------------------------------------------------------------------------------------------------
# Storage


def _fake_month(month, n_stocks, rng):
    dates = session_calendar.sample_dates(month, CFG.sample_every)
    samples = pd.DataFrame(
        {
            "month": month,
            "trade_date": np.repeat(dates.values, n_stocks),
            "ts_code": np.tile([f"{600000 + i:06d}.SH" for i in range(n_stocks)], len(dates)),
            "industry": "Banks",
            "is_st": False,
            "listed_sessions": 500,
            "is_trading": True,
            "full_window": True,
            "eligible": rng.random(len(dates) * n_stocks) < 0.8,
            "is_limit_up": False,
            "buyable": True,
            "log_float_mcap": 20.0,
        }
    )
    samples["seq_index"] = np.where(samples.eligible, np.cumsum(samples.eligible) - 1, -1)
    X = rng.normal(size=(int(samples.eligible.sum()), CFG.seq_len, 18)).astype(np.float32)
    return X, samples


def test_save_and_load_samples(tmp_path):
    rng = np.random.default_rng(0)
    X1, s1 = _fake_month("2024-02", 30, rng)
    X2, s2 = _fake_month("2024-03", 20, rng)
    F.save_samples(tmp_path, "2024-02", X1, s1)
    F.save_samples(tmp_path, "2024-03", X2, s2)
    assert (tmp_path / "2024-02.npy").is_file() and (tmp_path / "2024-02.parquet").is_file()
    assert not list(tmp_path.glob("*.tmp-*"))

    X, samples = F.load_samples(tmp_path, ["2024-02", "2024-03"])
    assert np.array_equal(X, np.concatenate([X1, X2]))
    assert samples.eligible.all() and (samples.seq_index.to_numpy() == np.arange(len(X))).all()
    assert np.array_equal(X[samples.seq_index[samples.month == "2024-03"].to_numpy()], X2)

    X, samples = F.load_samples(tmp_path, ["2024-03", "2024-02"], eligible_only=False)
    assert len(samples) == len(s1) + len(s2)
    assert (samples.seq_index[~samples.eligible] == -1).all()
    rows = samples[samples.eligible]
    assert (rows.seq_index.to_numpy() == np.arange(len(X))).all()
    assert np.array_equal(X[rows.seq_index[rows.month == "2024-02"].to_numpy()], X1)

    with pytest.raises(ValueError):
        F.save_samples(tmp_path, "2024-04", X1[:-1], s1)


def test_load_samples_errors(tmp_path):
    rng = np.random.default_rng(1)
    X1, s1 = _fake_month("2024-02", 10, rng)
    F.save_samples(tmp_path, "2024-02", X1, s1)
    with pytest.raises(storage.StorageError, match="2024-05.parquet"):
        F.load_samples(tmp_path, ["2024-02", "2024-05"])
    storage.write_npy(X1[:-2], tmp_path / "2024-02.npy")
    with pytest.raises(storage.StorageError, match="2024-02"):
        F.load_samples(tmp_path, ["2024-02"])
    (tmp_path / "2024-02.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(storage.StorageError, match="2024-02.npy"):
        F.load_samples(tmp_path, ["2024-02"])
    F.save_samples(tmp_path, "2024-02", X1, s1)
    (tmp_path / "2024-02.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(storage.StorageError, match="2024-02.parquet"):
        F.load_samples(tmp_path, ["2024-02"])


def test_step_channels_are_stored_beside_the_samples_row_for_row(tmp_path):
    rng = np.random.default_rng(5)
    X1, s1 = _fake_month("2024-02", 6, rng)
    X2, s2 = _fake_month("2024-03", 5, rng)
    S1 = rng.normal(size=(*X1.shape[:2], len(F.STATE_FEATURES))).astype(np.float32)
    S2 = rng.normal(size=(*X2.shape[:2], len(F.STATE_FEATURES))).astype(np.float32)
    F.save_samples(tmp_path, "2024-02", X1, s1, steps=S1)
    F.save_samples(tmp_path, "2024-03", X2, s2, steps=S2)
    X, _ = F.load_samples(tmp_path, ["2024-02", "2024-03"])
    S = F.load_steps(tmp_path, ["2024-02", "2024-03"])
    assert S.shape[:2] == X.shape[:2] and np.array_equal(S, np.concatenate([S1, S2]))
    with pytest.raises(ValueError, match="steps"):
        F.save_samples(tmp_path, "2024-04", X1, s1, steps=S1[:-1])
    F.save_samples(tmp_path, "2024-05", X1, s1)  # without steps: readers that need them say what to do
    with pytest.raises(storage.StorageError, match="re-materialise"):
        F.load_steps(tmp_path, ["2024-05"])

"""The samples: universe flags, windows and their standardisation, side inputs, no look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.features.daily import FEATURE_LOOKBACK_MONTHS, FEATURE_NAMES
from factor_pipeline.features.labels import compute_labels
from factor_pipeline.features.samples import (
    SAMPLE_COLUMNS,
    SEQUENCE_LOOKBACK_MONTHS,
    SIDE_COLUMNS,
    STATE_FEATURES,
    _standardise_series,
    build_samples,
    market_beta,
    scale_steps,
)
from factor_pipeline.market import trading_rules
from factor_pipeline.market import session_calendar
from factor_pipeline.config import SampleConfig

from factor_pipeline_tests.features.bars import (
    CFG,
    _canonical,
    _stocks,
    build,
    features_for,
    random_market,
)


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
    assert list(samples.columns) == list(SAMPLE_COLUMNS)
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
        first = session_calendar.month_sessions(session_calendar.shift_month(month, -SEQUENCE_LOOKBACK_MONTHS))[0]
        t = session_calendar.sample_dates(month, CFG.sample_every)[0]
        assert sessions.get_loc(t) - (CFG.max_window_sessions - 1) >= sessions.get_loc(first), month
        lookback = session_calendar.month_sessions(session_calendar.shift_month(month, -FEATURE_LOOKBACK_MONTHS))[0]
        assert sessions.get_loc(session_calendar.month_sessions(month)[0]) - sessions.get_loc(lookback) >= 20, month


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
    out = _standardise_series(raw, 5.0)
    assert np.isfinite(out).all()
    assert (out[0, :, 0] == 0).all() and (out[0, :, 1] == 0).all()
    expected = np.stack([_reference_series(raw[i], 5.0) for i in range(3)])
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    # The outlier was clipped: it sits well inside what a raw z-score would give (about 6.2).
    assert out[0, 5, 3] < 6.0
    assert np.std(out[0, :, 3]) == pytest.approx(1.0)


def test_x_matches_reference_computation():
    codes = [f"60{i:04d}.SH" for i in range(12)]
    daily = random_market(codes, "2023-09-01", "2024-03-29", seed=21, suspend_prob=0.05)
    daily.loc[daily.ts_code == codes[0], "float_shares"] = np.nan  # turnover features all NaN
    daily.loc[daily.ts_code == codes[1], "volume"] = 5000.0  # constant volume and volume ratio
    month = "2024-03"
    months = session_calendar.months_between(session_calendar.shift_month(month, -SEQUENCE_LOOKBACK_MONTHS), month)
    feats = features_for(daily, months)
    cfg = SampleConfig(max_window_sessions=70)  # random halts: keep most stocks eligible
    X, samples = build_samples(feats, daily, _stocks(codes), month, cfg)
    eligible = samples[samples.eligible]
    assert len(eligible) >= 30
    expected = np.empty_like(X, dtype=np.float64)
    for date, group in eligible.groupby("trade_date"):
        block = []
        for code in group.ts_code:
            rows = feats[(feats.ts_code == code) & (feats.trade_date <= date)].sort_values("trade_date").tail(cfg.seq_len)
            assert rows.trade_date.iloc[-1] == date
            block.append(_reference_series(rows[list(FEATURE_NAMES)].to_numpy(), cfg.mad_clip))
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
    months = session_calendar.months_between(session_calendar.shift_month(month, -SEQUENCE_LOOKBACK_MONTHS), month)
    feats = features_for(daily, months)
    cfg = SampleConfig(max_window_sessions=70)
    _, samples = build_samples(feats, daily, _stocks(codes), month, cfg)
    eligible = samples[samples.eligible]
    assert samples.loc[~samples.eligible, list(SIDE_COLUMNS)].isna().all().all()
    for date, group in eligible.groupby("trade_date"):
        level, logvol = [], []
        for code in group.ts_code:
            rows = feats[(feats.ts_code == code) & (feats.trade_date <= date)].sort_values("trade_date").tail(cfg.seq_len)
            values = rows[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
            level.append(np.nanmean(values, axis=0))
            mean = np.nanmean(values, axis=0)
            logvol.append(np.log(np.maximum(np.nanstd(values, axis=0), 1e-9 * np.maximum(1.0, np.abs(mean)))))
        raw = pd.DataFrame(np.c_[np.array(level), np.array(logvol)])
        ranks = raw.rank(method="average")
        count = raw.notna().sum()
        expected = ((ranks - (count + 1) / 2) / np.sqrt((count**2 - 1) / 12)).fillna(0.0).to_numpy()
        np.testing.assert_allclose(group[list(SIDE_COLUMNS)].to_numpy(dtype=np.float64), expected, atol=1e-5)
    # The constant-volume name has the least volume volatility of the date; levels spread out.
    on_last = eligible[eligible.trade_date == eligible.trade_date.max()].set_index("ts_code")
    assert on_last.loc[codes[1], "logvol_volume"] == on_last["logvol_volume"].min() < -1.0
    assert on_last["level_volume"].std() > 0.5


def test_market_beta_is_each_stocks_slope_on_the_equal_weight_mean_return():
    rng = np.random.default_rng(8)
    market = rng.normal(0, 0.01, size=40)
    true_beta = np.array([0.5, 1.0, 1.5, 2.0])
    returns = true_beta[:, None] * market + rng.normal(0, 0.002, size=(4, 40))
    returns[2, 5] = np.nan  # a missing day is left out of that stock's moments
    out = market_beta(returns)
    mean = np.nanmean(returns, axis=0)
    for i in range(4):
        keep = np.isfinite(returns[i])
        expected = np.cov(returns[i, keep], mean[keep], bias=True)[0, 1] / np.var(mean)
        if i != 2:
            np.testing.assert_allclose(out[i], np.polyfit(mean, returns[i], 1)[0], rtol=1e-10)
        assert abs(out[i] - expected) < 0.05
    assert np.corrcoef(out, true_beta)[0, 1] > 0.99
    assert np.isnan(market_beta(np.ones((3, 40)) * 0.01)).all()  # a market that does not move has no beta


def test_samples_carry_the_market_beta_of_their_window(universe_case):
    samples = universe_case[3]
    eligible = samples[samples.eligible]
    assert samples.loc[~samples.eligible, "market_beta"].isna().all()
    assert eligible["market_beta"].notna().mean() > 0.9
    # Betas on the date's own equal-weight mean average one (exactly, when every window is aligned).
    assert 0.8 < eligible.groupby("trade_date")["market_beta"].mean().median() < 1.2


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
    months = session_calendar.months_between(session_calendar.shift_month(month, -SEQUENCE_LOOKBACK_MONTHS), month)
    feats = features_for(daily, months)
    cfg = SampleConfig(max_window_sessions=70)
    X, samples = build_samples(feats, daily, _stocks(codes), month, cfg)
    S = scale_steps(feats, samples, cfg)
    assert S.shape == (len(X), cfg.seq_len, len(STATE_FEATURES))
    keep = [FEATURE_NAMES.index(name) for name in STATE_FEATURES]
    eligible = samples[samples.eligible]
    expected = np.empty_like(S, dtype=np.float64)
    for date, group in eligible.groupby("trade_date"):
        block = []
        for code in group.ts_code:
            rows = feats[(feats.ts_code == code) & (feats.trade_date <= date)].sort_values("trade_date").tail(cfg.seq_len)
            block.append(_reference_clipped(rows[list(FEATURE_NAMES)].to_numpy()[:, keep], cfg.mad_clip))
        expected[group.seq_index.to_numpy()] = _reference_cross_section(np.stack(block))
    np.testing.assert_allclose(S, expected, rtol=1e-5, atol=1e-5)
    # Unlike X, a stock's window is not centred on itself: its mean over the steps varies across stocks.
    ret = STATE_FEATURES.index("ret")
    assert S[:, :, ret].mean(axis=1).std() > 3 * X[:, :, FEATURE_NAMES.index("ret")].mean(axis=1).std()


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

    months = session_calendar.months_between(session_calendar.shift_month(month, -SEQUENCE_LOOKBACK_MONTHS), month)
    feats, feats2 = features_for(daily, months), features_for(altered, months)
    upto = feats.trade_date <= t
    pd.testing.assert_frame_equal(feats[upto].reset_index(drop=True), feats2[feats2.trade_date <= t].reset_index(drop=True), check_exact=True)

    X, samples = build_samples(feats, daily, stocks, month, CFG)
    X2, samples2 = build_samples(feats2, altered, altered_stocks, month, CFG)
    keep, keep2 = samples.trade_date <= t, samples2.trade_date <= t
    assert keep.sum() > 0 and (samples.trade_date > t).any()
    pd.testing.assert_frame_equal(samples[keep].reset_index(drop=True), samples2[keep2].reset_index(drop=True), check_exact=True)
    n = int(samples.loc[keep, "eligible"].sum())
    assert n > 0
    assert np.array_equal(X[:n], X2[:n])
    # The step channels (ModelConfig.step_channels) too: standardised across the date's stocks only.
    assert np.array_equal(scale_steps(feats, samples, CFG)[:n], scale_steps(feats2, samples2, CFG)[:n])

    # Labels known by t (as_of <= t) are the same in both worlds; later ones are NaN.
    prev_month = session_calendar.shift_month(month, -1)
    prev_months = session_calendar.months_between(session_calendar.shift_month(prev_month, -SEQUENCE_LOOKBACK_MONTHS), prev_month)
    _, prev = build_samples(features_for(daily, prev_months), daily, stocks, prev_month, CFG)
    both = pd.concat([prev, samples], ignore_index=True)
    both2 = pd.concat([prev, samples2], ignore_index=True)
    for as_of in (t, session_calendar.session_offset(t, -1)):
        labels = compute_labels(daily, both, CFG.label_horizon, as_of)
        labels2 = compute_labels(altered, both2, CFG.label_horizon, as_of)
        assert labels.equals(labels2)
        known = np.array([session_calendar.session_offset(d, CFG.label_horizon) <= as_of for d in both.trade_date])
        assert labels[~known].isna().all()
        assert labels[known & both.is_trading.to_numpy()].notna().any()
    # A known label ends exactly label_horizon sessions after its date.
    adj = daily.assign(a=daily.close * daily.adj_factor).set_index(["ts_code", "trade_date"])["a"]
    labels = compute_labels(daily, both, CFG.label_horizon, t)
    for i in np.flatnonzero(labels.notna().to_numpy())[:20]:
        row = both.iloc[i]
        end = session_calendar.session_offset(row.trade_date, CFG.label_horizon)
        if (row.ts_code, end) in adj.index:
            assert labels.iloc[i] == pytest.approx(adj[row.ts_code, end] / adj[row.ts_code, row.trade_date] - 1)



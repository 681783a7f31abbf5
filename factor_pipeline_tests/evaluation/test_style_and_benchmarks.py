import numpy as np
import pandas as pd
import pytest
from scipy import stats

from factor_pipeline.config import KNOWN_INDICES
from factor_pipeline.evaluation import benchmarks, style
from factor_pipeline.market import session_calendar


def _bars_and_table(n=30, seed=0):
    sessions = session_calendar.sessions_between(pd.Timestamp("2023-01-01"), pd.Timestamp("2024-04-30"))
    rng = np.random.default_rng(seed)
    codes = [f"{600000 + i}.SH" for i in range(n)]
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, (len(sessions), n)), axis=0))
    bars = pd.DataFrame(close, index=sessions, columns=codes).stack().rename("close").reset_index()
    bars.columns = ["trade_date", "ts_code", "close"]
    bars["adj_factor"] = 1.0
    bars["volume"] = rng.uniform(1e5, 1e6, len(bars))
    bars["float_shares"] = 1e7
    table = pd.DataFrame({"ts_code": codes, "log_float_mcap": rng.normal(22, 1, n), "reversal_20d": rng.normal(size=n),
                          "industry": ["Banks", "Steel", "Media"] * (n // 3)})
    return bars, table


def test_styles_by_their_definitions_and_nothing_after_the_rebalance_date():
    bars, table = _bars_and_table()
    d = session_calendar.rebalance_date("2024-03")
    beta = pd.Series(np.linspace(0.5, 1.5, len(table)), index=table["ts_code"])
    styles = style.style_frame(table, beta, bars, "2024-03")
    code = table["ts_code"].iloc[4]
    own = bars[bars["ts_code"] == code].set_index("trade_date")
    upto = own[own.index <= d]
    ret = upto["close"].pct_change().iloc[-20:]
    assert styles["volatility_20d"].iloc[4] == pytest.approx(ret.std(ddof=1))
    assert styles["turnover_20d"].iloc[4] == pytest.approx((upto["volume"].iloc[-20:] / 1e7).mean())
    near, far = session_calendar.rebalance_date("2024-02"), session_calendar.rebalance_date("2023-03")
    far_close = own[own.index <= far]["close"]
    expected = own.loc[near, "close"] / far_close.iloc[-1] - 1 if len(far_close) else np.nan
    assert styles["momentum_12_1"].iloc[4] == pytest.approx(expected, nan_ok=True)
    assert styles["beta"].iloc[4] == beta.iloc[4]
    # Halted for most of February and March: fewer than 20 returns in months m-1 and m, so no volatility (the
    # window does not reach back across the gap to the bars of d(m-12)).
    halted = bars.copy()
    code7 = table["ts_code"].iloc[7]
    halted.loc[(halted["ts_code"] == code7) & halted["trade_date"].between("2024-02-01", "2024-03-20"), "volume"] = 0.0
    assert np.isnan(style.style_frame(table, beta, halted, "2024-03")["volatility_20d"].iloc[7])
    changed = bars.copy()
    changed.loc[changed["trade_date"] > d, "close"] *= 3.0
    pd.testing.assert_frame_equal(style.style_frame(table, beta, changed, "2024-03"), styles)


def test_exposures_are_spearman_and_neutral_ic_removes_the_styles():
    bars, table = _bars_and_table(n=60, seed=2)
    styles = style.style_frame(table, pd.Series(1.0, index=table["ts_code"]), bars, "2024-03")
    rng = np.random.default_rng(5)
    factor = pd.Series(styles["reversal_20d"].to_numpy() + rng.normal(0, 0.5, len(table)))
    r = pd.Series(rng.normal(0, 0.05, len(table)))
    exposure = style.exposures(factor, styles)
    for name in ("size", "reversal_20d", "volatility_20d"):
        keep = styles[name].notna()
        assert exposure[name] == pytest.approx(stats.spearmanr(factor[keep], styles[name][keep])[0], abs=1e-12)
    ics = style.neutral_ics(factor, table["industry"], styles, r)
    assert ics["ic"] == pytest.approx(stats.pearsonr(factor, r)[0])
    # By hand: the residual on industry dummies and every style (a constant beta adds nothing).
    design = pd.get_dummies(table["industry"]).astype(float).to_numpy()
    cols = [styles[c].fillna(styles[c].median()).to_numpy() for c in styles.columns]
    x = np.column_stack([design, *cols])
    residual = factor.to_numpy() - x @ np.linalg.lstsq(x, factor.to_numpy(), rcond=None)[0]
    assert ics["ic_style_neutral"] == pytest.approx(stats.pearsonr(residual, r)[0], abs=1e-9)
    assert abs(stats.pearsonr(residual, styles["reversal_20d"])[0]) < 1e-9


@pytest.mark.parametrize("n, sizes", [(5000, [300, 500, 1000]), (400, [24, 40, 80]), (150, [9, 15, 30])])
def test_index_pools_take_the_index_rules_shares_of_the_market(n, sizes):
    rng = np.random.default_rng(n)
    table = pd.DataFrame({"ts_code": [f"{i:06d}.SZ" for i in range(n)], "log_float_mcap": rng.normal(22, 1, n)})
    masks = benchmarks.pools(table, KNOWN_INDICES)
    assert [int(masks[c].sum()) for c in KNOWN_INDICES] == sizes
    caps = table["log_float_mcap"]
    assert caps[masks["000300.SH"]].min() > caps[masks["000905.SH"]].max() > caps[masks["000852.SH"]].max()
    assert not (masks["000300.SH"] & masks["000905.SH"]).any()


def test_index_return_is_float_cap_weighted():
    r = np.array([0.1, -0.1, np.nan, 0.05])
    cap = np.log(np.array([3e9, 1e9, 5e9, 1e9]))
    assert benchmarks.index_return(r, cap) == pytest.approx((3 * 0.1 - 0.1 + 0.05) / 5)

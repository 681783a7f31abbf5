"""factor.py against independent computations: scipy's z-score, numpy least squares with another
parametrisation of the same regression, and pandas' own 20-row pct_change for the reversal."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from factor_pipeline.evaluation.factor_table import neutralize, reversal_20d, zscore


def test_zscore_matches_scipy_and_keeps_nan():
    rng = np.random.default_rng(1)
    values = pd.Series(rng.normal(3, 2, 50), index=[f"{i:06d}.SZ" for i in range(50)])
    values.iloc[[3, 17]] = np.nan
    z = zscore(values)
    expected = stats.zscore(values.to_numpy(), ddof=0, nan_policy="omit")
    np.testing.assert_allclose(z.to_numpy(), expected, equal_nan=True)
    assert z.index.equals(values.index)
    assert z.iloc[[3, 17]].isna().all()
    assert abs(z.mean()) < 1e-12 and z.std(ddof=0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "values",
    [
        [2.5, 2.5, 2.5, np.nan],  # no spread
        [0.1] * 7,  # "constant" whose mean carries rounding noise
        [4.0, np.nan],  # one value
    ],
)
def test_zscore_degenerate_cross_sections_give_zeros(values):
    s = pd.Series(values, dtype=float)
    z = zscore(s)
    assert (z[s.notna()] == 0.0).all()
    assert z[s.isna()].isna().all()


def test_zscore_all_nan_and_empty():
    assert zscore(pd.Series([np.nan, np.nan])).isna().all()
    assert len(zscore(pd.Series([], dtype=float))) == 0


def _neutralize_inputs(n=120, seed=2):
    rng = np.random.default_rng(seed)
    codes = [f"{600000 + i}.SH" for i in range(n)]
    industry = pd.Series(rng.choice(["Banks", "Steel", "Media", "Coal"], n), index=codes)
    log_mcap = pd.Series(rng.normal(23, 1, n), index=codes)
    effect = industry.map({"Banks": 1.0, "Steel": -0.5, "Media": 0.3, "Coal": 0.0})
    factor = pd.Series(0.8 * log_mcap + effect + rng.normal(0, 1, n), index=codes)
    return factor, industry, log_mcap


def test_neutralize_residual_is_orthogonal_to_industries_and_size():
    factor, industry, log_mcap = _neutralize_inputs()
    factor.iloc[5] = np.nan
    industry.iloc[9] = None
    log_mcap.iloc[11] = np.nan
    out = neutralize(factor, industry, log_mcap)

    assert out.index.equals(factor.index)
    # stats.neutralize's rule: a missing factor or industry comes back NaN, a missing size is the median.
    assert out.iloc[[5, 9]].isna().all() and np.isfinite(out.iloc[11])
    valid = out.notna()
    assert valid.sum() == len(out) - 2
    log_mcap = log_mcap.fillna(log_mcap.median())

    # Independent: intercept + (k - 1) dummies + log_mcap, a different basis of the same column space.
    ind = industry[valid]
    levels = sorted(ind.unique())
    design = np.column_stack(
        [np.ones(valid.sum())] + [(ind == lv).to_numpy(float) for lv in levels[1:]] + [log_mcap[valid].to_numpy()]
    )
    coef, *_ = np.linalg.lstsq(design, factor[valid].to_numpy(), rcond=None)
    resid = factor[valid].to_numpy() - design @ coef
    expected = (resid - resid.mean()) / resid.std(ddof=0)
    np.testing.assert_allclose(out[valid].to_numpy(), expected, atol=1e-10)

    # Orthogonality of the output itself to every dummy and to log_mcap.
    full = np.column_stack([(ind == lv).to_numpy(float) for lv in levels] + [log_mcap[valid].to_numpy()])
    np.testing.assert_allclose(full.T @ out[valid].to_numpy(), 0.0, atol=1e-8)
    assert out[valid].std(ddof=0) == pytest.approx(1.0)


def test_neutralize_aligns_on_index_not_position():
    factor, industry, log_mcap = _neutralize_inputs(seed=3)
    reference = neutralize(factor, industry, log_mcap)
    shuffled = neutralize(factor, industry.sample(frac=1, random_state=0), log_mcap.sample(frac=1, random_state=1))
    pd.testing.assert_series_equal(reference, shuffled)


def test_neutralize_rank_deficient_and_empty():
    # One industry with identical sizes: the design is rank deficient; the residual is the demeaned factor.
    codes = list("abcd")
    factor = pd.Series([1.0, 2.0, 3.0, 6.0], index=codes)
    out = neutralize(factor, pd.Series("Steel", index=codes), pd.Series(20.0, index=codes))
    np.testing.assert_allclose(out.to_numpy(), stats.zscore(factor.to_numpy()), atol=1e-10)
    empty = neutralize(factor, pd.Series(np.nan, index=codes, dtype=object), pd.Series(20.0, index=codes))
    assert empty.isna().all()


def _prices(seed=4):
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2024-01-02", periods=45)
    rows = []
    for code, n_days in (("000001.SZ", 45), ("000002.SZ", 21), ("000003.SZ", 20), ("000004.SZ", 44)):
        dates = days[-n_days:] if code != "000004.SZ" else days[:-1]  # 000004 does not trade on the last day
        prices = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, len(dates))))
        rows += [(code, d, p) for d, p in zip(dates, prices)]
    # 000005 is suspended for 10 sessions inside the window: traded days, not sessions, count.
    traded = days.delete(range(20, 30))
    prices = 5 * np.exp(np.cumsum(rng.normal(0, 0.02, len(traded))))
    rows += [("000005.SZ", d, p) for d, p in zip(traded, prices)]
    frame = pd.DataFrame(rows, columns=["ts_code", "trade_date", "adj_close"])
    return frame, days


def test_reversal_20d_against_pct_change():
    frame, days = _prices()
    d = days[-1]
    # Rows after the rebalance date must not be used.
    late = pd.DataFrame({"ts_code": ["000001.SZ"], "trade_date": [d + pd.Timedelta(days=3)], "adj_close": [999.0]})
    out = reversal_20d(pd.concat([frame, late]).sample(frac=1, random_state=0), d)

    independent = frame.sort_values(["ts_code", "trade_date"]).groupby("ts_code")["adj_close"].pct_change(20)
    last = frame.sort_values(["ts_code", "trade_date"]).assign(r=independent).groupby("ts_code").tail(1)
    expected = -last.set_index("ts_code")["r"].where(last.set_index("ts_code")["trade_date"] == d)
    pd.testing.assert_series_equal(out, expected.sort_index().rename("reversal_20d"), check_names=False)

    assert out.name == "reversal_20d"
    assert out.index.tolist() == [f"00000{i}.SZ" for i in range(1, 6)]
    assert np.isfinite(out["000001.SZ"]) and np.isfinite(out["000002.SZ"])  # exactly 21 traded days suffice
    assert np.isnan(out["000003.SZ"])  # 20 traded days
    assert np.isnan(out["000004.SZ"])  # did not trade on d
    s5 = frame[frame.ts_code == "000005.SZ"].adj_close.to_numpy()
    assert out["000005.SZ"] == pytest.approx(-(s5[-1] / s5[-21] - 1))


def test_reversal_20d_hand_case():
    days = pd.bdate_range("2024-03-01", periods=21)
    prices = np.linspace(10, 12, 21)
    frame = pd.DataFrame({"ts_code": "600000.SH", "trade_date": days, "adj_close": prices})
    out = reversal_20d(frame, days[-1])
    assert out["600000.SH"] == pytest.approx(-0.2)
    # On an earlier rebalance date the stock has only 20 traded days: undefined.
    assert np.isnan(reversal_20d(frame, days[-2])["600000.SH"])

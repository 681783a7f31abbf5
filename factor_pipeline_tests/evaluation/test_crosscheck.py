"""Every group, turnover, rank autocorrelation, IC and decay against alphalens-reloaded on the same factor and prices.

Prices are daily bars on XSHG sessions with suspensions and a delisting. alphalens' forward returns are the
forward-filled adjusted close ``h`` rows ahead over today's (computed here with pandas, independently of the
DuckDB ASOF join in sql/compute_forward_returns.sql); that is the rule of docs/metrics.md (a halted or delisted
stock keeps its last close) wherever the stock closes on the start date. Where it does not (a lagged return
starting on a day the stock is halted) docs/metrics.md gives no return, and the case built for it shows that.
"""

import numpy as np
import pandas as pd
import pytest
from alphalens import performance as al_perf
from alphalens import utils as al_utils

from factor_pipeline.evaluation import decay, groups
from factor_pipeline.evaluation.metrics import evaluate_month
from factor_pipeline.config import FactorConfig
from factor_pipeline.market import session_calendar

N_STOCKS = 60
N_GROUPS = 5
MONTHS = [f"2024-{m:02d}" for m in range(1, 8)]
FACTOR_MONTHS = MONTHS[:5]


def make_bars(seed=0, future_seed=None, cut=None):
    """Daily bars of 60 stocks over 2024-01..2024-11; stock 7 is halted on d(2024-03), stock 9 halted for a
    week mid-April, stock 11 delisted in May. With ``future_seed`` the prices after ``cut`` are redrawn."""
    sessions = session_calendar.sessions_between(pd.Timestamp("2023-12-01"), pd.Timestamp("2024-11-29"))
    rng = np.random.default_rng(seed)
    codes = [f"{600000 + i}.SH" for i in range(N_STOCKS)]
    steps = rng.normal(0, 0.02, (len(sessions), N_STOCKS))
    if future_seed is not None:
        later = sessions > cut
        steps[later] = np.random.default_rng(future_seed).normal(0, 0.02, (later.sum(), N_STOCKS))
    close = 10 * np.exp(np.cumsum(steps, axis=0))
    frame = pd.DataFrame(close, index=sessions, columns=codes).stack().rename("close").reset_index()
    frame.columns = ["trade_date", "ts_code", "close"]
    frame["adj_factor"] = np.where((frame["ts_code"] == codes[3]) & (frame["trade_date"] >= "2024-04-15"), 1.1, 1.0)
    frame["close"] = frame["close"] / frame["adj_factor"]  # an ex-dividend gap the adjustment undoes
    frame["volume"] = 1000.0
    halted = (frame["ts_code"] == codes[7]) & (frame["trade_date"] == session_calendar.rebalance_date("2024-03"))
    halted |= (frame["ts_code"] == codes[9]) & frame["trade_date"].between("2024-04-10", "2024-04-18")
    frame.loc[halted, "volume"] = 0.0
    frame = frame[~((frame["ts_code"] == codes[11]) & (frame["trade_date"] > "2024-05-15"))]
    return frame.reset_index(drop=True)


def factor_tables(bars, seed=1):
    """The factor on d(m): stocks trading that day, a signal of the next month's return plus noise."""
    rng = np.random.default_rng(seed)
    out = {}
    for month in FACTOR_MONTHS:
        d = session_calendar.rebalance_date(month)
        on_day = bars[(bars["trade_date"] == d) & (bars["volume"] > 0)]
        out[month] = pd.DataFrame(
            {"ts_code": on_day["ts_code"].to_numpy(), "pret": rng.normal(size=len(on_day)),
             "buyable": True, "industry": "Banks"}
        )
    return out


def price_matrix(bars):
    traded = bars[bars["volume"] > 0]
    adj = traded.assign(p=traded["close"] * traded["adj_factor"]).pivot(index="trade_date", columns="ts_code", values="p")
    return adj.reindex(session_calendar.sessions_between(bars["trade_date"].min(), bars["trade_date"].max())).ffill()


def al_factor_data(tables, prices, horizons):
    """alphalens factor_data with forward-return columns of forward-filled prices ``h`` sessions ahead."""
    frames = []
    for month, table in tables.items():
        d = session_calendar.rebalance_date(month)
        row = prices.index.get_loc(d)
        data = {"factor": table["pret"].to_numpy()}
        for h in horizons:
            data[f"{h}D"] = (prices.iloc[row + h] / prices.iloc[row] - 1).reindex(table["ts_code"]).to_numpy()
        index = pd.MultiIndex.from_arrays([[d] * len(table), table["ts_code"].to_numpy()], names=["date", "asset"])
        frames.append(pd.DataFrame(data, index=index))
    return pd.concat(frames)


def ours_decay(bars, tables):
    rows = []
    for month in MONTHS:
        start, end = session_calendar.rebalance_date(month), session_calendar.rebalance_date(session_calendar.shift_month(month, 1))
        history = {k: t for k, t in tables.items() if session_calendar.shift_month(month, -decay.HISTORY_MONTHS) <= k <= month}
        rows.append(decay.decay_rows(history, bars, month, (start, end), ["pret"]))
    return pd.concat(rows, ignore_index=True)


def test_decay_ic_and_rank_ic_agree_with_alphalens():
    bars = make_bars()
    tables = factor_tables(bars)
    ours = ours_decay(bars, tables)
    horizon_rows = ours[ours["lag_months"] == 0]
    data = al_factor_data(tables, price_matrix(bars), decay.HORIZONS)
    rank_ic = al_perf.factor_information_coefficient(data)
    checked = 0
    for row in horizon_rows.itertuples():
        d = session_calendar.rebalance_date(row.month)
        column = f"{row.horizon_sessions}D"
        pairs = data.loc[d].dropna(subset=[column])
        assert row.n_stocks == len(pairs)
        assert row.rank_ic == pytest.approx(rank_ic.loc[d, column], abs=1e-9)
        assert row.ic == pytest.approx(np.corrcoef(pairs["factor"], pairs[column])[0, 1], abs=1e-9)
        checked += 1
    # Every horizon of every factor month closes by d(2024-08), so each is written exactly once.
    assert checked == len(FACTOR_MONTHS) * len(decay.HORIZONS)
    assert not horizon_rows.duplicated(["month", "horizon_sessions"]).any()


def test_lagged_ic_uses_the_holding_month_and_no_return_without_a_close_on_its_start():
    bars = make_bars()
    tables = factor_tables(bars)
    ours = ours_decay(bars, tables)
    prices = price_matrix(bars)
    for lag in decay.LAGS:
        for row in ours[ours["lag_months"] == lag].itertuples():
            holding = session_calendar.shift_month(row.month, lag)
            start = session_calendar.rebalance_date(holding)
            end = session_calendar.rebalance_date(session_calendar.shift_month(holding, 1))
            r = (prices.loc[end] / prices.loc[start] - 1).reindex(tables[row.month]["ts_code"])
            # docs/metrics.md: a stock without a close on d(m) has no return from it (here stock 7 on d(2024-03)).
            traded = bars[(bars["trade_date"] == start) & (bars["volume"] > 0)]["ts_code"]
            r[~r.index.isin(traded)] = np.nan
            x = tables[row.month]["pret"].to_numpy()
            keep = np.isfinite(r.to_numpy())
            assert row.n_stocks == keep.sum()
            assert row.ic == pytest.approx(np.corrcoef(x[keep], r.to_numpy()[keep])[0, 1], abs=1e-9)
    halted = ours[(ours["month"] == "2024-02") & (ours["lag_months"] == 1)]
    assert halted["n_stocks"].iloc[0] == len(tables["2024-02"]) - 1  # stock 7, halted on d(2024-03), has no return


def test_decay_reads_no_return_after_its_horizon():
    bars = make_bars()
    tables = factor_tables(bars)
    cut = session_calendar.rebalance_date("2024-05")
    changed = make_bars(future_seed=99, cut=cut)
    before, after = ours_decay(bars, tables), ours_decay(changed, tables)
    closed = [
        (row.month, row.horizon_sessions)
        for row in before[before["lag_months"] == 0].itertuples()
        if decay.horizon_end(session_calendar.rebalance_date(row.month), row.horizon_sessions) <= cut
    ]
    assert closed
    key = ["month", "horizon_sessions"]
    b = before[before["lag_months"] == 0].set_index(key).loc[closed]
    a = after[after["lag_months"] == 0].set_index(key).loc[closed]
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(before["ic"], after["ic"])  # the future did change what it can reach


def _panels(bars, tables):
    prices = price_matrix(bars)
    out = {}
    for month, table in tables.items():
        start = session_calendar.rebalance_date(month)
        end = session_calendar.rebalance_date(session_calendar.shift_month(month, 1))
        panel = table.rename(columns={"pret": "factor"})
        panel["fwd_return"] = (prices.loc[end] / prices.loc[start] - 1).reindex(panel["ts_code"]).to_numpy()
        out[month] = panel
    return out


def test_groups_turnover_and_rank_autocorrelation_agree_with_alphalens():
    bars = make_bars()
    # One stock set every month, so that a group keeps its size and alphalens' turnover (new names over names)
    # is 0.5 * sum |dw|; the set shrinks to the stocks trading on every d(m).
    tables = factor_tables(bars)
    common = set.intersection(*(set(t["ts_code"]) for t in tables.values()))
    tables = {m: t[t["ts_code"].isin(common)].reset_index(drop=True) for m, t in tables.items()}
    panels = _panels(bars, tables)
    frames, previous = [], None
    for month, panel in panels.items():
        members = groups.group_members(panel, N_GROUPS)
        frames.append(groups.group_returns(panel, members, previous, N_GROUPS).assign(month=month))
        previous = members
    ours = pd.concat(frames, ignore_index=True)

    data = pd.concat(
        pd.DataFrame(
            {"factor": p["factor"].to_numpy(), "1D": p["fwd_return"].to_numpy()},
            index=pd.MultiIndex.from_arrays(
                [[session_calendar.rebalance_date(m)] * len(p), p["ts_code"].to_numpy()], names=["date", "asset"]
            ),
        )
        for m, p in panels.items()
    )
    data["factor_quantile"] = al_utils.quantize_factor(data, quantiles=N_GROUPS)
    mean, _ = al_perf.mean_return_by_quantile(data, by_date=True, demeaned=False)
    for row in ours.itertuples():
        d = session_calendar.rebalance_date(row.month)
        assert row.mean_return == pytest.approx(mean["1D"].loc[(row.group, d)], abs=1e-9)
        assert row.n == (data.loc[d]["factor_quantile"] == row.group).sum()
    for group in range(1, N_GROUPS + 1):
        turnover = al_perf.quantile_turnover(data["factor_quantile"], group, period=1)
        mine = ours[ours["group"] == group].set_index("month")["turnover"]
        for month in FACTOR_MONTHS[1:]:
            assert mine.loc[month] == pytest.approx(turnover.loc[session_calendar.rebalance_date(month)], abs=1e-9)
    autocorr = al_perf.factor_rank_autocorrelation(data, period=1)
    for before, month in zip(FACTOR_MONTHS, FACTOR_MONTHS[1:]):
        mine = decay.rank_autocorrelation(tables[month], tables[before], "pret")
        assert mine == pytest.approx(autocorr.loc[session_calendar.rebalance_date(month)], abs=1e-9)
    # The top group is the long portfolio of evaluate_month.
    for month, panel in panels.items():
        top = ours[(ours["month"] == month) & (ours["group"] == N_GROUPS)]
        long = evaluate_month(month, panel, None, FactorConfig(n_groups=N_GROUPS)).long_return
        assert top["mean_return"].iloc[0] == pytest.approx(long, abs=1e-12)


def test_groups_are_formed_before_returns_are_known():
    """A-share rule (docs/metrics.md): groups are formed on B(m) at d(m); a stock delisted with no close after d(m)
    stays in its group and is not averaged. alphalens drops it before binning, so its groups can differ."""
    panel = pd.DataFrame(
        {"ts_code": [f"{600000 + i}.SH" for i in range(11)], "factor": np.arange(11.0), "buyable": True,
         "fwd_return": np.r_[np.arange(10.0) / 100, np.nan], "industry": "Banks"}
    )
    members = groups.group_members(panel, N_GROUPS)
    ours = groups.group_returns(panel, members, None, N_GROUPS)
    assert ours["n"].tolist() == [3, 2, 2, 2, 2]  # eleven stocks: ceil(10/5) = 2 in the top group
    assert ours["mean_return"].iloc[-1] == pytest.approx(0.09)  # the delisted stock is in group 5, not averaged
    data = pd.DataFrame(
        {"factor": panel["factor"].to_numpy(), "1D": panel["fwd_return"].to_numpy()},
        index=pd.MultiIndex.from_arrays([[pd.Timestamp("2024-01-31")] * 11, panel["ts_code"]], names=["date", "asset"]),
    ).dropna()
    quantile = al_utils.quantize_factor(data, quantiles=N_GROUPS)
    assert (quantile == N_GROUPS).sum() == 2 and data.loc[quantile[quantile == N_GROUPS].index, "1D"].mean() == pytest.approx(0.085)

"""The evaluation and the report at the seed's scale: 5,000 names, 36 months.

    .venv/bin/python bench/bench_evaluation.py [--stocks 5000] [--months 36]

Builds a home with what the evaluation reads (daily bars, stock tables, the rebalance date's samples, factor
tables with pRet and both baselines) from a seeded random market, then times evaluation.store.evaluate_and_store
for every month and write_report: for the last month (the report a user reads, over every month) and for every
month (what a backfill writes). Prints one JSON object; the budget is 120 s for the evaluations plus the last report.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from factor_pipeline.config import profile_config
from factor_pipeline.evaluation import store
from factor_pipeline.market import session_calendar
from factor_pipeline.storage import Layout, write_parquet

FIRST = "2021-01"
HISTORY = 12  # 12-1 momentum reads d(m-12)


def build_home(home: Path, n: int, months: list[str]) -> Layout:
    layout = Layout(home)
    rng = np.random.default_rng(0)
    codes = np.array([f"{i:06d}.{'SH' if i % 2 else 'SZ'}" for i in range(n)])
    industries = np.array(["Banks", "Steel", "Media", "Coal", "Retail", "Utilities", "Computers", "Machinery"])[rng.integers(0, 8, n)]
    every = session_calendar.months_between(session_calendar.shift_month(months[0], -HISTORY), session_calendar.shift_month(months[-1], 1))
    sessions = session_calendar.sessions_between(session_calendar.month_sessions(every[0])[0], session_calendar.rebalance_date(every[-1]))
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, (len(sessions), n)), axis=0))
    volume = rng.lognormal(13, 1, (len(sessions), n))
    volume[rng.random(volume.shape) < 0.01] = 0.0  # suspensions
    float_shares = rng.lognormal(19, 1, n)
    frame = pd.DataFrame(
        {
            "ts_code": np.tile(codes, len(sessions)),
            "trade_date": np.repeat(sessions.values, n),
            "close": close.ravel(),
            "adj_factor": 1.0,
            "volume": volume.ravel(),
            "float_shares": np.tile(float_shares, len(sessions)),
        }
    )
    frame["month"] = frame["trade_date"].dt.strftime("%Y-%m")
    for month, rows in frame.groupby("month"):
        write_parquet(rows.drop(columns="month").reset_index(drop=True), layout.partition("raw_bars/daily", month))
        write_parquet(pd.DataFrame({"ts_code": codes, "name": codes, "industry": industries}), layout.partition("raw_bars/stocks", month))
    for month in months:
        d = session_calendar.rebalance_date(month)
        row = sessions.get_loc(d)
        trading = volume[row] > 0
        cap = np.log(close[row] * float_shares)
        reversal = -(close[row] / close[row - 20] - 1)
        table = pd.DataFrame(
            {
                "month": month, "rebalance_date": d, "ts_code": codes, "industry": industries,
                "buyable": trading & (rng.random(n) > 0.02), "log_float_mcap": cap,
                "pret": 0.3 * reversal + rng.normal(0, 0.05, n), "reversal_20d": reversal,
                "pret_gan_off": 0.2 * reversal + rng.normal(0, 0.05, n),
            }
        )[trading].reset_index(drop=True)
        write_parquet(table, layout.partition("factor", month))
        samples = pd.DataFrame({"trade_date": d, "ts_code": table["ts_code"], "market_beta": rng.normal(1, 0.3, len(table))})
        write_parquet(samples, layout.partition("samples", month))
    return layout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stocks", type=int, default=5000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--every-report", action="store_true", help="also time a report for every month")
    args = parser.parse_args()
    months = session_calendar.months_between(FIRST, session_calendar.shift_month(FIRST, args.months - 1))
    cfg = profile_config("full")
    with tempfile.TemporaryDirectory() as tmp:
        layout = build_home(Path(tmp), args.stocks, months)
        started = time.monotonic()
        for month in months:
            store.evaluate_and_store(layout, month, cfg, log=lambda _: None)
        evaluated = time.monotonic() - started
        for month in months[:-1] if args.every_report else []:
            store.write_report(layout, month, cfg)
        every = time.monotonic() - started - evaluated
        began = time.monotonic()
        store.write_report(layout, months[-1], cfg)
        report = time.monotonic() - began
    result = {
        "stocks": args.stocks,
        "months": args.months,
        "evaluate_seconds": round(evaluated, 1),
        "evaluate_seconds_per_month": round(evaluated / args.months, 2),
        "last_report_seconds": round(report, 1),
        "evaluated_and_reported_seconds": round(evaluated + report, 1),
        "budget_seconds": 120,
    }
    if args.every_report:
        result["every_month_report_seconds"] = round(every + report, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

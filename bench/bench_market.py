"""Benchmark of the synthetic market: the full profile's 5,000 stocks over 2017-01..2026-12.

Prints one JSON object: {"stocks" (names listed at the end), "sessions", "rows", "seconds", "peak_rss_mb"}. The budget is 60 s and
4 GiB peak RSS on a 2-core machine. Run: ``.venv/bin/python bench/bench_market.py``.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time

from factor_pipeline.market import session_calendar
from factor_pipeline.config import profile_config
from factor_pipeline.market.synthetic import generate_market


def main() -> None:
    market_cfg = dataclasses.replace(profile_config("full").market, n_stocks=5000, start="2017-01-03", end="2026-12-31")
    sessions = session_calendar.sessions_between(market_cfg.start, market_cfg.end)
    started = time.perf_counter()
    market = generate_market(market_cfg, sessions)
    seconds = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "stocks": int(market.stocks["delist_date"].isna().sum()),  # listed at the end = n_stocks
                "sessions": int(len(sessions)),
                "rows": int(len(market.daily)),
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(peak_rss_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()

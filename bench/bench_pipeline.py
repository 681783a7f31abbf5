"""One demo month end to end, from a fresh FACTOR_PIPELINE_HOME, through the CLI and the Dagster instance.

    .venv/bin/python bench/bench_pipeline.py [--month 2024-06]

Prints one JSON object: the wall time of `factor-pipeline backfill` for one month (which materialises
the upstream months its training window needs, and trains its checkpoint), the number of runs, the time
of a second, warm month that reuses the checkpoint, and the peak RSS of the children.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def backfill(home: Path, first: str, last: str, profile: str = "demo", **env_extra: str) -> tuple[float, str]:
    """Wall seconds and stdout of one CLI backfill into ``home`` on the embedded market."""
    env = {**os.environ, "FACTOR_PIPELINE_HOME": str(home), "FACTOR_PIPELINE_PROFILE": profile,
           "FACTOR_PIPELINE_SOURCE": "synthetic", "DAGSTER_HOME": str(home / "dagster"), **env_extra}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "factor_pipeline.pipeline.cli", "backfill", "--from", first, "--to", last,
         "--executor", "in_process"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-3000:])
    return time.monotonic() - started, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--month", default="2024-06")
    args = parser.parse_args()
    following = f"{args.month[:5]}{int(args.month[5:]) + 1:02d}"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cold, out = backfill(home, args.month, args.month)
        warm, _ = backfill(home, following, following)
        runs = sum(1 for line in out.splitlines() if line.startswith("[backfill") and ": ok" in line)
    print(json.dumps({
        "profile": "demo",
        "month": args.month,
        "cold_month_seconds": round(cold, 1),
        "cold_month_runs": runs,
        "warm_next_month_seconds": round(warm, 1),
        "children_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()

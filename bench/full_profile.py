"""The full profile end to end through the pipeline: ``factor-pipeline backfill`` at the seed's scale on the
embedded market, with wall time per asset, peak memory and the factor's quality.

    .venv/bin/python bench/full_profile.py [--from 2023-06] [--to 2024-05] [--home /tmp/full-profile]
        [--summarise-only] [--out bench/results/<date>/full-profile.json]

The run is ``FACTOR_PIPELINE_PROFILE=full factor-pipeline backfill --executor in_process`` into its own home
(5,000 names, the seed's GRU(128,128) + MLP(256,64,64), lr 1e-4, 50 epochs with patience 10, the 400-session
window, one model per retrain). Twelve evaluated months need pRet for thirteen, so three June/December
retrains. Memory is sampled every 2 s over every process that carries the home in its environment (the
command, dagster-daemon and each run it launches). ``--summarise-only`` reads a home that a run left.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factor_pipeline.evaluation import metrics  # noqa: E402


def _rss_mib(pid: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample_memory(marker: bytes, stop: threading.Event, peaks: dict) -> None:
    """Peak total and peak single-process RSS (MiB) of the processes whose environment holds ``marker``."""
    while not stop.wait(2.0):
        total = largest = 0.0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if marker not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    continue
                rss = _rss_mib(pid)
            except OSError:  # gone, or not ours to read
                continue
            total, largest = total + rss, max(largest, rss)
        peaks["total_mib"] = max(peaks.get("total_mib", 0.0), total)
        peaks["largest_process_mib"] = max(peaks.get("largest_process_mib", 0.0), largest)


def run_backfill(home: Path, first: str, last: str) -> dict:
    env = {**os.environ, "FACTOR_PIPELINE_PROFILE": "full", "FACTOR_PIPELINE_HOME": str(home),
           "DAGSTER_HOME": str(home / "dagster")}
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    peaks: dict = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(f"FACTOR_PIPELINE_HOME={home}".encode(), stop, peaks))
    sampler.start()
    started = time.time()
    command = [str(ROOT / ".venv" / "bin" / "factor-pipeline"), "backfill", "--from", first, "--to", last, "--executor", "in_process"]
    with open(home / "backfill.log", "w") as log:
        code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    stop.set()
    sampler.join()
    return {"command": " ".join(["FACTOR_PIPELINE_PROFILE=full", *command[1:]]), "exit_code": code,
            "wall_seconds": round(time.time() - started, 1), "peak_rss": {k: round(v) for k, v in peaks.items()}}


def asset_times(home: Path) -> dict:
    """Seconds per asset, summed over the runs' steps, from the home's Dagster instance."""
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    import dagster as dg

    seconds: dict[str, float] = defaultdict(float)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        for run in runs:
            for step in instance.get_run_step_stats(run.run_id):
                if step.start_time and step.end_time:
                    seconds[step.step_key] += step.end_time - step.start_time
        statuses = sorted({str(run.status.value) for run in runs})
    return {"runs": len(runs), "run_statuses": statuses, "seconds_per_asset": {k: round(v, 1) for k, v in sorted(seconds.items())}}


def quality(home: Path) -> dict:
    """The newest report's truth_corr and IC for pRet and the 20-day reversal, and their paired difference."""
    latest = home / "reports" / "latest.json"
    if not latest.exists():
        return {"error": f"no report under {home}"}
    month = json.loads(latest.read_text())["month"]
    report = json.loads((latest.parent / month / "summary.json").read_text())
    pret, reversal = report["summary"], report["baselines"]["20-day reversal"]
    out = {"months": f"{pret['first_month']}..{pret['last_month']}", "n_months": pret["n_months"]}
    for name, figures in (("pret", pret), ("reversal_20d", reversal)):
        out[name] = {"truth_corr": figures["truth_corr"], "ic_mean": figures["ic_mean"], "icir": figures["icir"]}
    if "truth_corr_by_month" in reversal:
        out["pret_minus_reversal_truth_corr"] = metrics.paired_difference(
            pd.Series(pret["truth_corr_by_month"]), pd.Series(reversal["truth_corr_by_month"])
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="first", default="2023-06")
    parser.add_argument("--to", dest="last", default="2024-05")
    parser.add_argument("--home", default="/tmp/full-profile")
    parser.add_argument("--summarise-only", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    home = Path(args.home).resolve()
    result = {} if args.summarise_only else run_backfill(home, args.first, args.last)
    result.update(asset_times(home))
    result["quality"] = quality(home)
    text = json.dumps(result, indent=1, default=float)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

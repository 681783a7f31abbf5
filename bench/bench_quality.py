"""Factor quality on the embedded market: truth_corr first, then IC, Rank IC, ICIR and efficiency, per GAN mode.

    .venv/bin/python bench/bench_quality.py [--from 2023-01] [--to 2024-12] [--profile demo]

Backfills the range once with GAN mode `augment` (whose runs also train the GAN-off GRU and compute the
20-day reversal beside pRet, on the same universe and the same checkpoint dates) and once with mode
`transform` (reusing the bars, features and samples of the first run, which do not depend on the mode).
The market is never tuned to favour a mode. Every factor is reported with truth_corr (its monthly
correlation with truth.expected_return, docs/metrics.md) and IC, each as mean and standard error over months,
and pRet is compared with the 20-day reversal on paired monthly differences. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
from pathlib import Path

import pandas as pd

import bench_pipeline
from factor_pipeline.evaluation import metrics

SHARED = ["source", "calendar", "raw_bars", "features", "samples"]


def backfill(home: Path, mode: str, first: str, last: str, profile: str) -> float:
    return bench_pipeline.backfill(home, first, last, profile, FACTOR_PIPELINE_GAN_MODE=mode)[0]


def _rounded(stats: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in stats.items()}


def figures(ic: pd.Series, rank_ic: pd.Series, oracle: pd.Series, truth_corr: pd.Series) -> dict:
    return {
        "truth_corr": _rounded(metrics.mean_and_se(truth_corr)),
        "ic": _rounded(metrics.mean_and_se(ic)),
        "months": int(ic.notna().sum()),
        "ic_mean": round(float(ic.mean()), 4),
        "rank_ic_mean": round(float(rank_ic.mean()), 4),
        "icir": round(float(ic.mean() / ic.std(ddof=1)), 3),
        "efficiency": round(float(ic.mean() / oracle.mean()), 3),
    }


def read(home: Path, first: str, last: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    def load(name):
        files = sorted((home / "eval" / name).glob("*.parquet"))
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        return frame[(frame["month"] >= first) & (frame["month"] <= last)]

    return load("ic"), load("baselines")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="first", default="2023-01")
    parser.add_argument("--to", dest="last", default="2024-12")
    parser.add_argument("--profile", default="demo")
    args = parser.parse_args()
    out = {"profile": args.profile, "range": f"{args.first}..{args.last}", "factors": {}, "seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        augment_home, transform_home = Path(tmp) / "augment", Path(tmp) / "transform"
        out["seconds"]["augment"] = round(backfill(augment_home, "augment", args.first, args.last, args.profile), 1)
        ic, baselines = read(augment_home, args.first, args.last)
        oracle = ic.set_index("month")["oracle_ic"]
        out["oracle_ic_mean"] = round(float(oracle.mean()), 4)
        out["factors"]["pRet, GAN augment"] = figures(ic["ic"], ic["rank_ic"], oracle, ic["truth_corr"])
        monthly = {"pRet, GAN augment": ic.set_index("month")}
        for column, label in [("pret_gan_off", "pRet, GAN off"), ("reversal_20d", "20-day reversal")]:
            rows = baselines[baselines["factor"] == column].set_index("month")
            out["factors"][label] = figures(rows["ic"], rows["rank_ic"], oracle.reindex(rows.index), rows["truth_corr"])
            monthly[label] = rows
        for name in SHARED:
            if (augment_home / name).exists():
                shutil.copytree(augment_home / name, transform_home / name)
        out["seconds"]["transform"] = round(backfill(transform_home, "transform", args.first, args.last, args.profile), 1)
        ic_t, _ = read(transform_home, args.first, args.last)
        out["factors"]["pRet, GAN transform"] = figures(
            ic_t["ic"], ic_t["rank_ic"], ic_t.set_index("month")["oracle_ic"], ic_t["truth_corr"]
        )
        monthly["pRet, GAN transform"] = ic_t.set_index("month")
    reversal = monthly.pop("20-day reversal")
    out["minus_20d_reversal"] = {
        label: {
            metric: _rounded(metrics.paired_difference(rows[metric], reversal[metric]))
            for metric in ("truth_corr", "ic")
        }
        for label, rows in monthly.items()
    }
    out["children_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

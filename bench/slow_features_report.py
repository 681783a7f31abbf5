"""Tables of bench/slow_features.py runs: each run against "base" on paired months, and per-epoch reads.

    .venv/bin/python bench/slow_features_report.py [--base RUN] bench/results/2026-12-03/slow_features_*.json

    .venv/bin/python bench/slow_features_report.py --pool 'NAME=run,run;NAME=run' FILE...

Runs from several files join by name, so give runs of different scales different names; RUN ("base" unless
given) is the row every other is paired with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factor_pipeline.evaluation import metrics  # noqa: E402


def _read(run: dict, effect: str) -> str:
    """A run's read of one planted effect; "n/a" on a market that does not plant it (a variant)."""
    return f"{run['reads'][effect]:.2f}" if effect in run["reads"] else "n/a"


def main(paths: list[str], baseline: str = "base") -> None:
    runs = {}
    for path in paths:
        runs.update(json.loads(Path(path).read_text()))
    base = pd.Series(runs[baseline]["monthly"])
    print("| run | options | truth_corr | minus base (paired) | minus reversal (paired) | IC | reversal read | episodes read | epochs chosen |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, run in runs.items():
        s = run["summary"]
        tc, rev = s["pret"]["truth_corr"], s["pret_minus_reversal"]["truth_corr"]
        diff = metrics.paired_difference(pd.Series(run["monthly"]), base) if name != baseline else None
        chosen = [[m["chosen"] for m in f["members"]] if "members" in f else f["chosen"] for f in run["fits"].values()]
        print(
            f"| {name} | {', '.join(f'{k}={v}' for k, v in {**run.get('scale', {}), **run['opts']}.items()) or 'the default'} | {tc['mean']:.3f} ± {tc['se']:.3f} | "
            + (f"{diff['mean']:+.3f} ± {diff['se']:.3f}" if diff else "")
            + f" | {rev['mean']:+.3f} ± {rev['se']:.3f} | {s['pret']['ic']['mean']:.4f} | {_read(run, 'reversal')} | "
            f"{_read(run, 'episodes')} | {chosen} |"
        )
    for name, run in runs.items():
        curves = [f["curve"] for f in run["fits"].values() if f.get("curve")]
        if not curves:
            continue
        print(f"\nPer epoch, {name} (mean over the {len(curves)} training months of the six held-out months' reads):\n")
        print("| epoch | steps | val IC | truth_corr | reversal | episodes | attention |")
        print("|---|---|---|---|---|---|---|")
        n = min(len(c) for c in curves)
        for e in range(n):
            row = pd.DataFrame([c[e] for c in curves]).mean(numeric_only=True)
            print(f"| {e + 1} | {int(row['steps'])} | {row['val_ic']:.3f} | {row['truth_corr']:.3f} | {row['reversal']:.2f} | {row['episodes']:.2f} | {row['attention']:.2f} |")


def pooled(paths: list[str], groups: list[str]) -> None:
    """One row per group "NAME=run,run,...": the runs (seeds of one point, on one market) averaged month by
    month, then paired with that market's 20-day reversal."""
    runs = {}
    for path in paths:
        runs.update(json.loads(Path(path).read_text()))
    print("| point | seeds | truth_corr | reversal | pRet - reversal (paired) | reads: reversal / episodes / attention |")
    print("|---|---|---|---|---|---|")
    for group in groups:
        name, _, members = group.partition("=")
        chosen = [runs[m] for m in members.split(",")]
        truth = pd.concat([pd.Series(r["monthly"]) for r in chosen], axis=1).mean(axis=1)
        reversal = pd.Series(chosen[0]["baselines_monthly"]["reversal_20d"])
        tc, rev, diff = metrics.mean_and_se(truth), metrics.mean_and_se(reversal), metrics.paired_difference(truth, reversal)
        reads = {k: sum(r["reads"][k] for r in chosen) / len(chosen) for k in ("reversal", "episodes", "attention")}
        print(f"| {name} | {len(chosen)} | {tc['mean']:.3f} ± {tc['se']:.3f} | {rev['mean']:.3f} ± {rev['se']:.3f} | "
              f"{diff['mean']:+.3f} ± {diff['se']:.3f} | {reads['reversal']:.2f} / {reads['episodes']:.2f} / {reads['attention']:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--base", default="base", help="the run every other is paired with")
    parser.add_argument("--pool", default=None, help="'NAME=run,run;NAME=run': a point's seeds averaged")
    args = parser.parse_args()
    if args.pool:
        pooled(args.files, args.pool.split(";"))
    else:
        main(args.files, args.base)

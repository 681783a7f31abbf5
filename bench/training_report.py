"""Markdown table of bench_training.py results: one row per option, seeds pooled.

    .venv/bin/python bench/training_report.py bench/results/training_*.json

For an option run with several seeds, the monthly values are averaged over its seeds first; the mean and
its standard error are then taken over months (METRICS.md), and "seed sd" is the spread of the per-seed
means, the part of the noise that more months cannot remove. Differences against the 20-day reversal are
paired by month. truth_corr of the baselines does not depend on the option and is listed once.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def _se(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def _cell(mean: float, se: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def rows(result: dict) -> list[dict]:
    out = []
    for name, runs in result["options"].items():
        truth = pd.DataFrame({r["seed"]: pd.Series(r["monthly"]) for r in runs}).mean(axis=1)
        ic = pd.DataFrame({r["seed"]: pd.Series(r["monthly_ic"]) for r in runs}).mean(axis=1)
        reversal_ic = pd.Series(runs[0].get("reversal_monthly_ic", {}), dtype=float)
        reversal_truth = pd.Series(runs[0].get("reversal_monthly", {}), dtype=float)
        seed_means = [r["pret"]["truth_corr"]["mean"] for r in runs]
        row = {
            "option": name,
            "seeds": len(runs),
            "months": int(truth.notna().sum()),
            "truth_corr": _cell(truth.mean(), _se(truth)),
            "seed sd": f"{np.std(seed_means, ddof=1):.3f}" if len(runs) > 1 else "",
            "IC": _cell(ic.mean(), _se(ic), 4),
            "seconds / run": f"{np.mean([r['seconds'] for r in runs]):.0f}",
        }
        if len(reversal_ic):
            d_ic, d_truth = (ic - reversal_ic).dropna(), (truth - reversal_truth).dropna()
            row["truth_corr - reversal"] = _cell(d_truth.mean(), _se(d_truth))
            row["IC - reversal"] = _cell(d_ic.mean(), _se(d_ic), 4)
        elif len(runs) == 1:  # results written before the monthly baselines were stored
            paired = runs[0]["pret_minus_reversal"]
            row["truth_corr - reversal"] = _cell(paired["truth_corr"]["mean"], paired["truth_corr"]["se"])
            row["IC - reversal"] = _cell(paired["ic"]["mean"], paired["ic"]["se"], 4)
        out.append(row)
    return out


def baselines(result: dict) -> list[dict]:
    first = next(iter(result["options"].values()))[0]
    return [
        {
            "factor": name,
            "truth_corr": _cell(first[name]["truth_corr"]["mean"], first[name]["truth_corr"]["se"]),
            "IC": _cell(first[name]["ic"]["mean"], first[name]["ic"]["se"], 4),
        }
        for name in ("reversal_20d", "abnormal_turnover", "low_volatility")
    ]


def main() -> None:
    for path in sys.argv[1:]:
        result = json.loads(Path(path).read_text())
        first = next(iter(result["options"].values()))[0]
        print(f"### {result['variant']} market, {result['profile']} profile, {result['months']} ({Path(path).name})\n")
        print(f"oracle IC {first['oracle_ic']['mean']:.3f}\n")
        print(pd.DataFrame(rows(result)).to_markdown(index=False))
        print()
        print(pd.DataFrame(baselines(result)).to_markdown(index=False))
        print()


if __name__ == "__main__":
    main()

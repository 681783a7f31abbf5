"""Markdown table of bench_training.py results: one row per option, its seeds pooled across result files.

    .venv/bin/python bench/training_report.py [--against=OPTION] bench/results/training_*.json

Files of the same market variant and months are pooled: an option's runs (one per seed) are gathered from
all of them. Its monthly values are averaged over its seeds first; the mean and its standard error are then
taken over months (docs/metrics.md). "seed sd" is the spread of the per-seed means, the part of the noise that
more months cannot remove. "- seed" is the paired monthly difference against the seed's training (its seeds
pooled the same way), "IC - reversal" the paired difference against the 20-day reversal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from factor_pipeline.evaluation.metrics import mean_and_se  # noqa: E402


def _cell(values: pd.Series, digits: int = 3) -> str:
    return f"{values.mean():+.{digits}f} ± {mean_and_se(values)['se']:.{digits}f}".lstrip("+")


def _pooled(runs: list[dict], key: str) -> pd.Series:
    return pd.DataFrame({r["seed"]: pd.Series(r[key], dtype=float) for r in runs}).mean(axis=1)


def load(paths: list[str]) -> dict[tuple, dict]:
    """{(variant, months): {"options": {name: [runs]}, "reversal": monthly truth_corr, "reversal_ic": ..., "first": run}}"""
    groups: dict[tuple, dict] = {}
    for path in paths:
        result = json.loads(Path(path).read_text())
        group_of(result, groups.setdefault((result["variant"], result["months"], result["profile"]), {"options": {}}))
    return groups


def group_of(result: dict, group: dict | None = None) -> dict:
    """One bench_training result pooled into ``group`` (a new one when None): its runs by option."""
    group = {"options": {}} if group is None else group
    for name, runs in result["options"].items():
        group["options"].setdefault(name, []).extend(runs)
        for run in runs:
            group.setdefault("first", run)
            if "reversal_monthly" in run:
                group["reversal"] = pd.Series(run["reversal_monthly"], dtype=float)
                group["reversal_ic"] = pd.Series(run["reversal_monthly_ic"], dtype=float)
    return group


def table(group: dict, against: str | None = None) -> pd.DataFrame:
    options = group["options"]
    seed = options.get("seed")
    other = options.get(against) if against else None
    rows = []
    for name, runs in options.items():
        truth, ic = _pooled(runs, "monthly"), _pooled(runs, "monthly_ic")
        means = [r["pret"]["truth_corr"]["mean"] for r in runs]
        row = {
            "option": name,
            "seeds": len(runs),
            "months": int(truth.notna().sum()),
            "truth_corr": _cell(truth),
            "seed sd": f"{np.std(means, ddof=1):.3f}" if len(runs) > 1 else "",
            "truth_corr - seed": _cell(truth - _pooled(seed, "monthly")) if seed and name != "seed" else "",
            "IC": _cell(ic, 4),
            "IC - reversal": _cell(ic - group["reversal_ic"], 4) if "reversal_ic" in group else "",
            **(
                {
                    f"truth_corr - {against}": _cell(truth - _pooled(other, "monthly")) if name != against else "",
                    f"IC - {against}": _cell(ic - _pooled(other, "monthly_ic"), 4) if name != against else "",
                }
                if other
                else {}
            ),
            "s / run": f"{np.mean([r['seconds'] for r in runs]):.0f}",
        }
        rows.append(row)
    return pd.DataFrame(rows)


def baselines(group: dict) -> pd.DataFrame:
    first = group["first"]
    return pd.DataFrame(
        [
            {
                "factor": name,
                "truth_corr": f"{first[name]['truth_corr']['mean']:.3f} ± {first[name]['truth_corr']['se']:.3f}",
                "IC": f"{first[name]['ic']['mean']:.4f} ± {first[name]['ic']['se']:.4f}",
            }
            for name in ("reversal_20d", "abnormal_turnover", "low_volatility")
        ]
    )


def main() -> None:
    args = sys.argv[1:]
    against = None
    if args and args[0].startswith("--against="):  # a second paired column against this option
        against, args = args[0].split("=", 1)[1], args[1:]
    for (variant, months, profile), group in load(args).items():
        print(f"### {variant} market, {profile} profile, {months} (oracle IC {group['first']['oracle_ic']['mean']:.3f})\n")
        print(table(group, against).to_markdown(index=False))
        print()
        print(baselines(group).to_markdown(index=False))
        print()


if __name__ == "__main__":
    main()

"""Factor quality of model.precision=bf16 against fp32 on the embedded market, same months, same data.

    .venv/bin/python bench/bench_precision_quality.py [--from 2023-01] [--to 2024-12] [--profile demo]

Backfills the range with FACTOR_PIPELINE_PRECISION=fp32, then again with bf16 (reusing the bars, features
and samples, which do not depend on the precision). Reports per precision the mean truth_corr and IC with
their standard errors over the months, the paired monthly differences bf16 - fp32 with their standard
errors (the test the default is decided by: bf16 qualifies when the truth_corr difference is within one
standard error, or positive), and the
agreement of the two factors: the mean over months of the cross-sectional correlation of pRet.
Where the CPU has no native bf16 the second run is fp32 again (precision.py falls back) and says so.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import bench_pipeline
from factor_pipeline.evaluation.metrics import mean_and_se

SHARED = ["source", "calendar", "raw_bars", "features", "samples"]


def _read(home: Path, table: str, first: str, last: str) -> pd.DataFrame:
    files = sorted((home / table).rglob("*.parquet"))
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return frame[(frame["month"] >= first) & (frame["month"] <= last)]


def _mean_se(values: pd.Series) -> tuple[float, float]:
    out = mean_and_se(values)
    return out["mean"], out["se"]


def _checkpoint_precisions(home: Path) -> list[str]:
    return sorted({json.loads(p.read_text()).get("precision", "?") for p in home.rglob("checkpoints/*.json")})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="first", default="2023-01")
    parser.add_argument("--to", dest="last", default="2024-12")
    parser.add_argument("--profile", default="demo")
    args = parser.parse_args()
    out = {"profile": args.profile, "range": f"{args.first}..{args.last}", "gan_mode": "the profile's", "seconds": {}}
    ics, truth, factors = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            home = Path(tmp) / precision
            if precision == "bf16":
                for name in SHARED:
                    if (Path(tmp) / "fp32" / name).exists():
                        shutil.copytree(Path(tmp) / "fp32" / name, home / name)
            seconds, _ = bench_pipeline.backfill(
                home, args.first, args.last, args.profile, FACTOR_PIPELINE_PRECISION=precision
            )
            out["seconds"][precision] = round(seconds, 1)
            out[f"checkpoints_{precision}_ran_in"] = _checkpoint_precisions(home)
            ic_table = _read(home, "eval/ic", args.first, args.last).set_index("month").sort_index()
            ics[precision], truth[precision] = ic_table["ic"], ic_table["truth_corr"]
            factors[precision] = _read(home, "factor", args.first, args.last)
    for precision, ic in ics.items():
        mean, se = _mean_se(ic)
        truth_mean, truth_se = _mean_se(truth[precision])
        out[precision] = {"months": int(ic.notna().sum()), "truth_corr_mean": round(truth_mean, 4),
                          "truth_corr_se": round(truth_se, 4), "ic_mean": round(mean, 4), "ic_se": round(se, 4)}
    # truth_corr first (docs/metrics.md): the low-noise measure the default is decided by, on paired months.
    truth_diff, truth_diff_se = _mean_se(truth["bf16"] - truth["fp32"])
    out["truth_corr_difference_bf16_minus_fp32"] = {"mean": round(truth_diff, 4), "se": round(truth_diff_se, 4)}
    diff_mean, diff_se = _mean_se(ics["bf16"] - ics["fp32"])
    out["ic_difference_bf16_minus_fp32"] = {"mean": round(diff_mean, 4), "se": round(diff_se, 4)}
    out["bf16_quality_holds"] = bool(abs(truth_diff) <= truth_diff_se or truth_diff >= 0)
    merged = factors["fp32"].merge(factors["bf16"], on=["month", "ts_code"], suffixes=("_fp32", "_bf16"))
    corr = merged.groupby("month").apply(lambda g: np.corrcoef(g["pret_fp32"], g["pret_bf16"])[0, 1], include_groups=False)
    out["pret_correlation_bf16_vs_fp32"] = {"mean": round(float(corr.mean()), 4), "min": round(float(corr.min()), 4)}
    out["children_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

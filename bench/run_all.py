"""Run every benchmark in bench/ in its own process, then write the run's tables under bench/results/<date>/:
bench.json and bench.md, and the training suite's suite/ (the date is the run's start, UTC).

Each bench_*.py prints one JSON object on its last stdout line. Speed figures are ratios measured in the
same run on the same machine (against a float32 matmul peak, or a straightforward pandas/PyTorch
baseline doing the same work), because absolute times on shared machines drift.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
# Options a benchmark takes to write its own tables into the run's directory.
OUT_OPTIONS = {"bench_training_suite": lambda run_dir: ["--out", str(run_dir / "suite")]}
ORDER = ["bench_market", "bench_features", "bench_model", "bench_step", "bench_pipeline", "bench_evaluation", "bench_training_suite", "bench_gpu"]
# Run only when named (`python bench/run_all.py bench_quality`): together they take ~35 minutes, and the
# hour that `make bench` has goes to the training suite, which measures the GAN modes and the factor on
# the same pure functions over more months and options.
ON_REQUEST = ["bench_quality", "bench_precision_quality", "bench_training"]
NEEDS_CUDA = {"bench_gpu"}  # recorded as skipped on a machine without one


def machine() -> dict:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def run(name: str, args: list[str]) -> dict:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *args], capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:], "wall_seconds": elapsed}
    text = proc.stdout.strip()
    try:
        result = json.loads(text)
    except json.JSONDecodeError:
        result = json.loads(text.splitlines()[-1])
    result["wall_seconds"] = round(elapsed, 1)
    return result


def project_full_backfill(benchmarks: dict) -> dict | None:
    """A full-scale backfill 2019-02..2026-02 (85 months, 5,000 stocks, seed settings) on this machine.

    14 retrains (June and December), plus features and samples for the 85 months and ~20 months of history
    before them; per precision measured by bench_model. The full profile trains one GRU per retrain (GAN
    off, no ablation); with a GAN mode and FACTOR_PIPELINE_GAN_OFF_BASELINE=1 each retrain trains two.
    """
    projection = benchmarks.get("bench_model", {}).get("full_retrain_projection")
    feats = benchmarks.get("bench_features", {})
    if not projection:
        return None
    per_month = None
    for row in feats.get("results", []):
        if row.get("stocks") == 5000:
            per_month = row["ours_total_s"]
    retrains = 14
    features_hours = (85 + 20) * per_month / 3600 if per_month else 0.0
    out = {"months": 85, "retrains": retrains, "assumes": "50 epochs, no early stop"}
    for name, figures in projection.items():
        if not isinstance(figures, dict):
            continue
        gru, with_gan = figures["gru_minutes"] / 60, figures["total_minutes"] / 60
        out[name] = {
            "cpu_hours_full_profile": round(retrains * gru + features_hours, 1),
            "cpu_hours_with_gan_and_ablation": round(retrains * (with_gan + gru) + features_hours, 1),
        }
    return out


def to_markdown(results: dict) -> str:
    lines = ["# Benchmark results\n", f"Machine: {json.dumps(results['machine'])}\n"]
    for name, figures in results["benchmarks"].items():
        lines.append(f"\n## {name}\n")
        lines.append("| figure | value |\n|---|---|")
        for key, value in _flatten(figures):
            lines.append(f"| {key} | {value} |")
    return "\n".join(lines) + "\n"


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _flatten(value, f"{prefix}{key}." if not isinstance(value, (int, float, str, bool, type(None))) else f"{prefix}{key}")
    elif isinstance(obj, list):
        yield prefix.rstrip("."), json.dumps(obj)
    else:
        yield prefix.rstrip("."), f"{obj:.4g}" if isinstance(obj, float) else obj


def main() -> None:
    only = sys.argv[1:]
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "benchmarks": {}}
    run_dir = RESULTS / time.strftime("%Y-%m-%d", time.gmtime())
    for name in (ORDER + [n for n in ON_REQUEST if n in only]):
        if (BENCH / f"{name}.py").exists() and (not only or name in only):
            if name in NEEDS_CUDA and not results["machine"]["cuda"]:
                results["benchmarks"][name] = {"skipped": "no CUDA device: the GPU figure is still to be measured"}
                continue
            print(f"running {name} ...", flush=True)
            results["benchmarks"][name] = run(name, OUT_OPTIONS.get(name, lambda _: [])(run_dir))
            print(json.dumps(results["benchmarks"][name])[:400], flush=True)
    results["full_backfill_projection"] = project_full_backfill(results["benchmarks"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "bench.json").write_text(json.dumps(results, indent=2))
    (run_dir / "bench.md").write_text(to_markdown(results))
    print(f"wrote {run_dir / 'bench.json'} and bench.md")


if __name__ == "__main__":
    main()

"""The pipeline's training on one GPU, fp32 and bf16: step, retrain, peak GPU memory, and a smoke backfill.

    .venv/bin/python bench/bench_gpu.py                      # CUDA, the full profile's shapes, < 5 minutes
    .venv/bin/python bench/bench_gpu.py --device cpu --tiny  # the same logic in seconds, for tests

Per precision, in one process: the full profile's retrain data (5,000 stocks x 80 dates x 40 sessions x 21
channels, the 18 features and the profile's step channels; random values: speed does not depend on them) is
put on the device; a fraction of an epoch is timed with the pipeline's own step inside its own training run
(gru.training_run: deterministic kernels, cuBLAS's workspace setting, the pipeline's TF32 defaults), --dates
training dates after two warm-up steps and as many validation dates, and projected to the full retrain
(64 training + 16 validation dates, 50 epochs, no early stop); peak memory is torch.cuda.max_memory_allocated
(peak RSS on CPU). Then, when the projection fits in what is left of --budget-s, the retrain is run for real
through model.train_gru (every epoch, patience disabled) and its wall time reported beside the projection.
The achieved matmul FLOP rate is compared with a torch.mm peak of the same precision measured in the same run.
With --smoke-backfill, a smoke-profile backfill then runs end to end through the CLI on the device
(FACTOR_PIPELINE_DEVICE), and its wall time and the checkpoint sidecars' device and precisions are reported.
Prints one JSON object; record it in bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import SEQ_LEN, gru_flops_per_sample, matmul_peak_gflops  # noqa: E402

from factor_pipeline.config import ModelConfig, profile_config  # noqa: E402
from factor_pipeline.features.daily import N_FEATURES as WINDOW_FEATURES  # noqa: E402
from factor_pipeline.model import precision  # noqa: E402
from factor_pipeline.model.gru import train_gru, training_run, training_step  # noqa: E402

# The model's input channels as the full profile builds them (model.inputs.model_input).
N_FEATURES = WINDOW_FEATURES + len(profile_config("full").model.step_channels)
REPO = Path(__file__).resolve().parent.parent

FULL = {"stocks": 5000, "dates": 80, "epochs": 50, "gru_hidden": (128, 128), "mlp_hidden": (256, 64, 64)}
TINY = {"stocks": 64, "dates": 10, "epochs": 2, "gru_hidden": (16, 16), "mlp_hidden": (32, 16, 16)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process-wide on CPU


def _reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def synthetic_days(shape: dict, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((shape["stocks"], SEQ_LEN, N_FEATURES), dtype=np.float32),
         rng.standard_normal(shape["stocks"]).astype(np.float32))
        for _ in range(shape["dates"])
    ]


def time_fraction(cfg: ModelConfig, days, device, prec, n_dates: int) -> dict:
    """Seconds per training step and per validation date, medians over n_dates after two warm-ups."""
    tensors = [(torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)) for X, y in days]
    n_val = max(1, round(len(days) * cfg.val_fraction))
    train, val = tensors[:-n_val], tensors[-n_val:]
    train_s, val_s = [], []
    with training_run(cfg, N_FEATURES, SEQ_LEN, 0, device) as (model, optimizer, _):
        for i in range(min(n_dates, len(train)) + 2):
            X, y = train[i % len(train)]
            start = time.perf_counter()
            training_step(model, optimizer, X, y, prec)
            _sync(device)
            train_s.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad(), precision.autocast(prec):
            for i in range(min(n_dates, len(val)) + 1):
                start = time.perf_counter()
                model(val[i % len(val)][0])
                _sync(device)
                val_s.append(time.perf_counter() - start)
    return {"train_step_s": statistics.median(train_s[2:]), "val_date_s": statistics.median(val_s[1:]),
            "n_train": len(train), "n_val": n_val, "timed_dates": min(n_dates, len(train))}


def run_precision(name: str, shape: dict, days, device, args, deadline: float) -> dict:
    prec = precision.resolve(name, device, log=lambda line: print(line, file=sys.stderr))
    if prec.effective != name:
        return {**prec.describe(), "skipped": "falls back to fp32 on this device"}
    cfg = dataclasses.replace(
        ModelConfig(), gru_hidden=shape["gru_hidden"], mlp_hidden=shape["mlp_hidden"], max_epochs=shape["epochs"],
        patience=shape["epochs"] + 1, device=device.type, precision=name,
    )
    _reset_peak(device)
    fraction = time_fraction(cfg, days, device, prec, args.dates)
    epoch_s = fraction["n_train"] * fraction["train_step_s"] + fraction["n_val"] * fraction["val_date_s"]
    fwd, train_flops = gru_flops_per_sample(N_FEATURES, cfg.gru_hidden, cfg.mlp_hidden)
    gflops = shape["stocks"] * train_flops / fraction["train_step_s"] / 1e9
    out = {
        **prec.describe(),
        "train_step_s": round(fraction["train_step_s"], 5),
        "val_date_s": round(fraction["val_date_s"], 5),
        "timed": f"{fraction['timed_dates']} training steps and validation dates after warm-up",
        "epoch_s_projected": round(epoch_s, 3),
        "retrain_s_projected": round(shape["epochs"] * epoch_s, 1),
        "train_gflops": round(gflops, 1),
        "peak_memory_mb_fraction": round(_peak_memory_mb(device), 1),
    }
    remaining = deadline - time.monotonic()
    if args.full_retrain and out["retrain_s_projected"] * 1.3 < remaining:
        _reset_peak(device)
        start = time.perf_counter()
        result = train_gru(days[: fraction["n_train"]], days[fraction["n_train"]:], cfg, N_FEATURES, seed=cfg.seed)
        _sync(device)
        out["retrain_s_measured"] = round(time.perf_counter() - start, 1)
        out["retrain_epochs_run"] = result.epochs_run
        out["peak_memory_mb_retrain"] = round(_peak_memory_mb(device), 1)
    else:
        out["retrain_s_measured"] = None
        out["retrain_not_run"] = f"projected {out['retrain_s_projected']} s x 1.3 > {remaining:.0f} s left of --budget-s"
    return out


def smoke_backfill(device) -> dict:
    """A smoke-profile backfill (a June retrain) through the CLI on ``device``: wall time and what the sidecars say."""
    with tempfile.TemporaryDirectory(prefix="bench-gpu-home-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTOR_PIPELINE_", "DAGSTER_"))}
        env.update(FACTOR_PIPELINE_HOME=home, DAGSTER_HOME=f"{home}/dagster", FACTOR_PIPELINE_PROFILE="smoke",
                   FACTOR_PIPELINE_DEVICE=device.type, FACTOR_PIPELINE_PRECISION="bf16")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "factor_pipeline.pipeline.cli", "backfill", "--from", "2024-05",
                               "--to", "2024-07", "--executor", "in_process"], cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        sidecars = [json.loads(p.read_text()) for p in sorted(Path(home, "checkpoints").glob("*.json"))]
        return {
            "returncode": proc.returncode, "wall_s": round(wall, 1), "output_tail": proc.stdout[-600:] + proc.stderr[-1500:],
            "checkpoints": [{k: side.get(k) for k in ("checkpoint_id", "device", "precision", "recurrent_precision")} for side in sidecars],
        }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="a reduced shape, for a dry run of the logic")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--dates", type=int, default=16, help="training steps (and validation dates) timed")
    parser.add_argument("--budget-s", type=float, default=270.0, help="stop starting full retrains after this")
    parser.add_argument("--no-full-retrain", dest="full_retrain", action="store_false")
    parser.add_argument("--smoke-backfill", action="store_true", help="then a smoke backfill through the CLI on the device")
    args = parser.parse_args(argv)
    started = time.monotonic()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available (use --device cpu --tiny for a dry run)")
    shape = TINY if args.tiny else FULL
    n = 1024 if args.tiny else 8192
    peaks = {"fp32": matmul_peak_gflops(device, n=n)}
    if "bf16" in args.precisions.split(","):
        peaks["bf16"] = matmul_peak_gflops(device, n=n, dtype=torch.bfloat16)
    days = synthetic_days(shape)
    results = {}
    for name in args.precisions.split(","):
        results[name] = run_precision(name, shape, days, device, args, started + args.budget_s)
        if name in peaks and "train_gflops" in results[name]:
            results[name]["ratio_to_matmul_peak_same_precision"] = round(results[name]["train_gflops"] / peaks[name], 3)
            results[name]["ratio_to_fp32_matmul_peak"] = round(results[name]["train_gflops"] / peaks["fp32"], 3)
    report = {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "shape": {**shape, "mode": "tiny (dry run)" if args.tiny else "full scale (the seed's settings)"},
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "matmul_peak_gflops": {k: round(v, 1) for k, v in peaks.items()},
        "results": results,
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        "smoke_backfill": smoke_backfill(device) if args.smoke_backfill else None,
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

"""One full-scale retrain on one GPU, fp32 and bf16: time, peak GPU memory, ratio to the cuBLAS matmul peak.

    .venv/bin/python bench/bench_gpu.py                      # CUDA, the seed's settings, < 5 minutes
    .venv/bin/python bench/bench_gpu.py --device cpu --tiny  # the same logic in seconds, for tests

Per precision, in one process: the seed's full-scale retrain data (5,000 stocks x 80 dates x 40 x 18,
random values: speed does not depend on them) is put on the device; a fraction of an epoch is timed
(--dates training dates after two warm-up steps, and as many validation dates) and projected to the
full retrain (64 training + 16 validation dates, 50 epochs, no early stop); peak memory is
torch.cuda.max_memory_allocated (peak RSS on CPU). Then, when the projection fits in what is left of
--budget-s, the retrain is run for real through model.train_gru (every epoch, patience disabled) and
its wall time reported beside the projection. The achieved matmul FLOP rate is compared with a
torch.mm peak of the same precision measured in the same run (TF32 off: fp32 means fp32).
Prints one JSON object; record it in bench/results/.
"""

from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # train_gru asks for deterministic kernels

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import N_FEATURES, SEQ_LEN, gru_flops_per_sample, matmul_peak_gflops  # noqa: E402

from factor_pipeline.model import precision
from factor_pipeline.config import ModelConfig  # noqa: E402
from factor_pipeline.model.gru import build_model, train_gru, training_step  # noqa: E402

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
    torch.manual_seed(0)
    model = build_model(cfg, N_FEATURES).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    tensors = [(torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)) for X, y in days]
    n_val = max(1, round(len(days) * cfg.val_fraction))
    train, val = tensors[:-n_val], tensors[-n_val:]
    train_s, val_s = [], []
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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="a reduced shape, for a dry run of the logic")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--dates", type=int, default=16, help="training steps (and validation dates) timed")
    parser.add_argument("--budget-s", type=float, default=270.0, help="stop starting full retrains after this")
    parser.add_argument("--no-full-retrain", dest="full_retrain", action="store_false")
    args = parser.parse_args(argv)
    started = time.monotonic()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available (use --device cpu --tiny for a dry run)")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
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
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

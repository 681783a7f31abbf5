"""The full profile's training step as the pipeline runs it, against the floor that its arithmetic sets.

    .venv/bin/python bench/bench_step.py [--threads 1] [--precisions fp32,bf16] [--steps 4] [--batch 3900]
    .venv/bin/python bench/bench_step.py --profile bf16   # also: where one step's time goes, by kind of op

The shapes are the full profile's (config.profile_config("full")): GRU(128,128) + MLP(256,64,64) on windows
of 40 sessions x (18 features + the step channels) = 21 channels, one date of ``--batch`` names per step
(3,900: the eligible names of a 5,000-name market), the window's training and validation dates. Per precision,
three ways of running the same step alternate step by step, so all see the same machine load:
- ``pipeline``: as train_gru runs it: inside gru.training_run (deterministic kernels, no NaN fill, freed
  activations reused);
- ``nan_fill``: the same with torch's fill of uninitialised memory on, as the pipeline ran before;
- ``plain``: outside deterministic mode (how the earlier benches timed it);
- ``split_ops``: as ``pipeline``, but with several threads splitting each operation (PyTorch's intra-op
  threads, as the pipeline ran before) instead of each thread taking a share of the batch (gru_split.py).
The floor is the step's matmul FLOPs (bench_model.gru_flops_per_sample) at the matmul peak of the same precision
and threads, measured in this run on the step's own GEMM shapes: no step can be faster than its matmuls.
An epoch is projected as training dates x step + validation dates x forward pass. The machine (CPU model,
bf16/AMX flags, threads, load average) is recorded with the figures. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import SEQ_LEN, gru_flops_per_sample  # noqa: E402
from run_all import machine  # noqa: E402

from factor_pipeline.config import profile_config  # noqa: E402
from factor_pipeline.features.daily import N_FEATURES  # noqa: E402
from factor_pipeline.model import gru, precision  # noqa: E402
from factor_pipeline.model.training import purge_gap, training_dates  # noqa: E402

MODES = ("pipeline", "nan_fill", "plain", "split_ops")
# How a profiled op's self time is classed (aten names); the rest of the step's wall time is Python and dispatch.
KINDS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"),
    "gate arithmetic": ("sigmoid", "tanh", "aten::mul", "aten::add", "aten::sub", "aten::lerp", "aten::addcmul",
                        "aten::div", "aten::relu", "threshold_backward", "aten::sum", "aten::mean", "aten::sqrt",
                        "aten::neg", "aten::pow", "aten::square", "aten::_foreach", "aten::lerp_", "aten::addcdiv"),
    "copies and casts": ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::cat", "aten::contiguous"),
    "allocation": ("aten::empty", "aten::zeros", "aten::fill_", "aten::zero_", "aten::ones", "aten::new_"),
}


def full_shape(batch: int) -> dict:
    cfg = profile_config("full")
    n_dates = len(training_dates("2024-06", cfg))
    n_val = max(1, round(n_dates * cfg.model.val_fraction))
    return {
        "batch": batch, "channels": N_FEATURES + len(cfg.model.step_channels), "gru_hidden": cfg.model.gru_hidden,
        "mlp_hidden": cfg.model.mlp_hidden, "n_train": n_dates - n_val - purge_gap(cfg), "n_val": n_val,
        "max_epochs": cfg.model.max_epochs,
    }


@contextlib.contextmanager
def running(mode: str, cfg, shape: dict, device):
    """(model, optimizer) of one way of running the step (MODES)."""
    if mode == "plain":
        torch.manual_seed(0)
        model = gru.build_model(cfg, shape["channels"])
        yield model, gru.optimizer_for(model, cfg)
        return
    with gru.training_run(cfg, shape["channels"], SEQ_LEN, 0, device) as (model, optimizer, _):
        torch.utils.deterministic.fill_uninitialized_memory = mode == "nan_fill"
        model.split_batch = mode != "split_ops"
        yield model, optimizer


def time_precision(name: str, shape: dict, steps: int, device) -> dict:
    cfg = profile_config("full").model
    prec = precision.resolve(name, device)
    if prec.effective != name:
        return {**prec.describe(), "skipped": "falls back to fp32 on this CPU"}
    X = torch.randn(shape["batch"], SEQ_LEN, shape["channels"])
    y = torch.randn(shape["batch"])
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    with contextlib.ExitStack() as stack:
        runs = {mode: stack.enter_context(running(mode, cfg, shape, device)) for mode in MODES}
        for i in range(steps + 1):  # the first round warms up
            for mode, (model, optimizer) in runs.items():
                torch.utils.deterministic.fill_uninitialized_memory = mode == "nan_fill"
                start = time.perf_counter()
                gru.training_step(model, optimizer, X, y, prec)
                if i:
                    times[mode].append(time.perf_counter() - start)
        model = runs["pipeline"][0].eval()
        with torch.no_grad(), precision.autocast(prec):
            model(X)
            start = time.perf_counter()
            for _ in range(2):
                model(X)
            forward_s = (time.perf_counter() - start) / 2
    step = {mode: statistics.median(ts) for mode, ts in times.items()}
    return {**prec.describe(), "step_s": {m: round(s, 4) for m, s in step.items()}, "forward_s": round(forward_s, 4),
            "steps_timed": steps, "epoch_s": {m: round(shape["n_train"] * s + shape["n_val"] * forward_s, 1) for m, s in step.items()}}


def step_matmul_peak(shape: dict, dtype, reps: int = 5) -> float:
    """GFLOP/s of the step's largest GEMM shape ([batch x (channels + H)] @ [(channels + H) x 4H] of layer 2)."""
    hidden = shape["gru_hidden"][-1]
    a = torch.randn(shape["batch"], 2 * hidden, dtype=dtype)
    b = torch.randn(2 * hidden, 4 * hidden, dtype=dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    for _ in range(5):
        fn()
    return (time.perf_counter() - start) / 5


def where_time_goes(name: str, shape: dict, device) -> dict:
    """One step under the torch profiler: self time by kind of op, and the rest of the wall time."""
    from torch.profiler import ProfilerActivity, profile

    cfg = profile_config("full").model
    prec = precision.resolve(name, device)
    X, y = torch.randn(shape["batch"], SEQ_LEN, shape["channels"]), torch.randn(shape["batch"])
    with running("pipeline", cfg, shape, device) as (model, optimizer):
        gru.training_step(model, optimizer, X, y, prec)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            gru.training_step(model, optimizer, X, y, prec)
            wall = time.perf_counter() - start
    by_kind = dict.fromkeys([*KINDS, "other ops"], 0.0)
    for event in prof.key_averages():
        kind = next((k for k, names in KINDS.items() if any(n in event.key for n in names)), "other ops")
        by_kind[kind] += event.self_cpu_time_total / 1e6
    by_kind["Python, dispatch and waits"] = max(0.0, wall - sum(by_kind.values()))
    return {"precision": prec.effective, "step_wall_s": round(wall, 4), "seconds": {k: round(v, 4) for k, v in by_kind.items()},
            "share": {k: round(v / wall, 3) for k, v in by_kind.items()}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per way of running it, after one warm-up")
    parser.add_argument("--batch", type=int, default=3900, help="names per date (3,900: the eligible of 5,000)")
    parser.add_argument("--profile", default="", help="a precision whose step to break down by kind of op")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    shape = full_shape(args.batch)
    _, train_flops = gru_flops_per_sample(shape["channels"], shape["gru_hidden"], shape["mlp_hidden"])
    step_gflop = shape["batch"] * train_flops / 1e9
    flags = precision._cpu_flags()
    report = {
        "machine": {**machine(), "threads": args.threads, "loadavg": [round(v, 2) for v in os.getloadavg()],
                    "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags},
        "shape": shape, "step_gflop": round(step_gflop, 1), "results": {},
    }
    for name in args.precisions.split(","):
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        result = time_precision(name, shape, args.steps, device)
        if "step_s" in result:
            peak = step_matmul_peak(shape, dtype)
            floor = step_gflop / peak
            result["matmul_peak_gflops"] = round(peak, 1)
            result["floor_step_s"] = round(floor, 4)
            result["floor_epoch_s"] = round(shape["n_train"] * floor + shape["n_val"] * floor / 3, 1)
            result["step_over_floor"] = {m: round(s / floor, 2) for m, s in result["step_s"].items()}
        report["results"][name] = result
    if args.profile:
        report["where_time_goes"] = where_time_goes(args.profile, shape, device)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

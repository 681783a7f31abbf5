"""Throughput of the GRU factor model and of the GAN's alternating step, printed as one JSON object.

    .venv/bin/python bench/bench_model.py [--device cpu|cuda] [--threads N] [--steps 3] [--precisions fp32,bf16]

fp32 and bf16 (model.precision) are measured in the same process, step by step in alternation, so that
both see the same machine load; a bf16 that would fall back to fp32 here is skipped and listed. The
full-scale retrain is also measured directly, one fresh process per precision: all 80 dates resident,
a fraction of an epoch timed, and the process's peak RSS (and peak GPU memory on CUDA).

FLOPs are counted analytically, matmuls only (2 per multiply-add):
- GRU forward per sample = T * sum over layers of 2 * 3H * (I + H), plus 2 * in * out per MLP layer;
  training = 3 x forward (the backward pass does two matmuls, input and weight gradients, per
  forward matmul). Gate arithmetic, the loss and Adam are not counted.
- GAN alternating step per batch sample = 3 x G forward (G's forward + backward)
  + 9 x D forward (D step: real and fake, forward + backward; G step: forward + backward through D).
The ratio compares achieved GFLOP/s with the best of several 2048 x 2048 float32 torch.mm in the same
process. On a shared machine every figure moves with the other load (see "loadavg").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from factor_pipeline.model import precision
from factor_pipeline.config import GanConfig, ModelConfig
from factor_pipeline.features.daily import N_FEATURES
from factor_pipeline.model.gan import alternating_step, build_gan
from factor_pipeline.model.gru import GRUFactorModel, training_step
from factor_pipeline.model.gru_cpu import reuse_freed_memory

SEQ_LEN = 40
FULL_STOCKS, FULL_DATES, FULL_EPOCHS = 5000, 80, 50


def gru_flops_per_sample(n_features, gru_hidden, mlp_hidden, seq_len=SEQ_LEN) -> tuple[float, float]:
    """(forward, training) matmul FLOPs for one sample."""
    forward, width = 0, n_features
    for h in gru_hidden:
        forward += seq_len * 2 * 3 * h * (width + h)
        width = h
    for h in (*mlp_hidden, 1):
        forward += 2 * width * h
        width = h
    return float(forward), 3.0 * forward


def gan_flops_per_sample(cfg: GanConfig, n_features=N_FEATURES, seq_len=SEQ_LEN) -> float:
    """Matmul/conv FLOPs of one alternating step, per batch sample."""
    h = cfg.generator_hidden
    in_size = cfg.noise_dim + (n_features if cfg.mode == "transform" else 0)
    g = seq_len * (2 * 4 * h * (in_size + h) + 2 * h * n_features) + 2 * h
    c1, c2 = cfg.discriminator_channels
    t2, f2 = (seq_len + 1) // 2, (n_features + 1) // 2
    flat = c2 * t2 * f2 + int(cfg.mode == "augment")
    d = 2 * 9 * c1 * seq_len * n_features + 2 * 9 * c1 * c2 * t2 * f2 + 2 * flat * 64 + 2 * 64
    return float(3 * g + 9 * d)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _times(fn, device, reps, warmup=1) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - start)
    return out


def matmul_peak_gflops(device, n=2048, reps=5, dtype=torch.float32) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / min(_times(lambda: torch.mm(a, b), device, reps)) / 1e9


def summarise(times, samples, flops_per_sample, peak):
    """Figures from the median step (robust to a stray slow step), and the best step for reference."""
    median, best = statistics.median(times), min(times)
    gflops = samples * flops_per_sample / median / 1e9
    return {
        "step_s_median": round(median, 4),
        "step_s_best": round(best, 4),
        "samples_per_s": round(samples / median, 1),
        "gflops": round(gflops, 2),
        "ratio_to_matmul_peak": round(gflops / peak, 3),
        "ratio_to_matmul_peak_best_step": round(samples * flops_per_sample / best / 1e9 / peak, 3),
    }


def _interleaved(fns: dict, device, reps: int, warmup: int = 1) -> dict:
    """Median-ready step times of several settings, alternated step by step so that each sees the same load."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def gru_step_fn(model, optimizer, X, y, prec):
    return lambda: training_step(model, optimizer, X, y, prec)


def gan_step_fn(gan_cfg, device, prec, batch):
    torch.manual_seed(0)
    generator, discriminator = (m.to(device) for m in build_gan(gan_cfg))
    opt_g = torch.optim.Adam(generator.parameters(), lr=gan_cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=gan_cfg.lr, betas=(0.5, 0.999))
    real = torch.randn(batch, SEQ_LEN, N_FEATURES, device=device)
    real_y = torch.randn(batch, device=device)
    z = torch.randn(batch, SEQ_LEN, gan_cfg.noise_dim, device=device)

    def step():
        with precision.autocast(prec):
            alternating_step(generator, discriminator, opt_g, opt_d, real, real_y, z, None)

    return step


def retrain_memory(prec_name: str, device, steps: int = 2) -> dict:
    """Peak memory of a full-scale retrain: all 80 dates x 5,000 windows resident, as train_gru holds them,
    a few training steps (with the freed-memory reuse of train_gru) and validation dates; run in a fresh
    process so that its peak is its own. The step times are a measured fraction of an epoch."""
    cfg = ModelConfig()
    prec = precision.resolve(prec_name, device)
    n_val = round(FULL_DATES * cfg.val_fraction)
    days = [
        (torch.randn(FULL_STOCKS, SEQ_LEN, N_FEATURES, device=device), torch.randn(FULL_STOCKS, device=device))
        for _ in range(FULL_DATES)
    ]
    torch.manual_seed(0)
    model = GRUFactorModel(N_FEATURES, cfg.gru_hidden, cfg.mlp_hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    train_s, val_s = [], []
    with reuse_freed_memory():
        for X, y in days[: steps + 1]:
            start = time.perf_counter()
            gru_step_fn(model, optimizer, X, y, prec)()
            _sync(device)
            train_s.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad(), precision.autocast(prec):
            for X, _ in days[-n_val:][: steps + 1]:
                start = time.perf_counter()
                model(X)
                _sync(device)
                val_s.append(time.perf_counter() - start)
    train_med, val_med = statistics.median(train_s[1:]), statistics.median(val_s[1:])
    epoch_s = (FULL_DATES - n_val) * train_med + n_val * val_med
    out = {
        **prec.describe(),
        "measured": f"{steps} training + {steps} validation dates of {FULL_DATES} (after one warm-up each)",
        "train_step_s_median": round(train_med, 3),
        "val_date_s_median": round(val_med, 3),
        "epoch_s": round(epoch_s, 1),
        "retrain_minutes_50_epochs": round(FULL_EPOCHS * epoch_s / 60, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "data_mb": round(sum(X.numel() * 4 + y.numel() * 4 for X, y in days) / 2**20, 1),
    }
    if device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=3, help="timed GRU training steps per setting")
    parser.add_argument("--batch", type=int, default=FULL_STOCKS, help="samples per date batch")
    parser.add_argument("--gan-steps", type=int, default=20)
    parser.add_argument("--gan-batches", default="128,512", help="GAN batch sizes to measure (the config's is 128)")
    parser.add_argument("--precisions", default="fp32,bf16", help="bf16 falls back to fp32 where not native")
    parser.add_argument("--no-retrain-memory", action="store_true", help="skip the full-scale retrain processes")
    parser.add_argument("--retrain-memory", metavar="PRECISION", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.retrain_memory:
        print(json.dumps(retrain_memory(args.retrain_memory, device)))
        return {}
    torch.manual_seed(0)
    loadavg_start = os.getloadavg()
    precs = {}
    for name in args.precisions.split(","):
        prec = precision.resolve(name, device, log=lambda line: print(line, file=sys.stderr))
        if prec.effective == name:  # a bf16 that fell back would only measure fp32 twice
            precs[name] = prec
    skipped = sorted(set(args.precisions.split(",")) - set(precs))

    peak = matmul_peak_gflops(device)
    peak_bf16 = matmul_peak_gflops(device, dtype=torch.bfloat16) if "bf16" in precs else None
    cfg = ModelConfig()  # the full profile: GRU(128, 128) + MLP(256, 64, 64)
    fwd_flops, train_flops = gru_flops_per_sample(N_FEATURES, cfg.gru_hidden, cfg.mlp_hidden)
    X = torch.randn(args.batch, SEQ_LEN, N_FEATURES, device=device)
    y = torch.randn(args.batch, device=device)
    models = {}
    for name in precs:
        torch.manual_seed(0)
        models[name] = GRUFactorModel(N_FEATURES, cfg.gru_hidden, cfg.mlp_hidden).to(device)
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=cfg.lr) for name, m in models.items()}
    steps = {name: gru_step_fn(models[name], optimizers[name], X, y, precs[name]) for name in precs}

    training = {}
    if device.type == "cpu":
        # train_gru runs inside reuse_freed_memory(); the default malloc is shown for comparison (fp32)
        training["fp32_default_malloc"] = _times(steps["fp32"], device, args.steps)
        with reuse_freed_memory():
            training.update(_interleaved(steps, device, args.steps))
    else:
        training.update(_interleaved(steps, device, args.steps))
    peak = max(peak, matmul_peak_gflops(device))  # re-measured: the best seen is the machine's peak
    train = {k: summarise(v, args.batch, train_flops, peak) for k, v in training.items() if v}

    for model in models.values():
        model.eval()

    def infer(name):
        def run():
            with torch.inference_mode(), precision.autocast(precs[name]):
                models[name](X)

        return run

    infer_times = _interleaved({name: infer(name) for name in precs}, device, max(args.steps, 3))
    inference = {k: summarise(v, args.batch, fwd_flops, peak) for k, v in infer_times.items()}

    gan_cfg = GanConfig(mode="augment")  # the full profile's GAN settings, in augment mode
    gan_fns = {
        f"{name}_batch{batch}": gan_step_fn(gan_cfg, device, precs[name], batch)
        for batch in (int(b) for b in args.gan_batches.split(","))
        for name in precs
    }
    gan_times = _interleaved(gan_fns, device, args.gan_steps, warmup=3)
    gan = {}
    for key, times in gan_times.items():
        batch = int(key.rsplit("batch", 1)[1])
        gan[key] = summarise(times, batch, gan_flops_per_sample(gan_cfg), peak)
        if key.startswith("bf16") and peak_bf16:
            gan[key]["ratio_to_bf16_matmul_peak"] = round(gan[key]["gflops"] / peak_bf16, 3)

    train_samples = FULL_STOCKS * FULL_DATES * (1 - cfg.val_fraction)
    val_samples = FULL_STOCKS * FULL_DATES * cfg.val_fraction
    projection = {
        "what": f"{FULL_STOCKS} stocks x {FULL_DATES} dates, {1 - cfg.val_fraction:.0%} train, "
        f"{FULL_EPOCHS} epochs (no early stop) + validation, + {gan_cfg.steps} GAN steps at batch {gan_cfg.batch_size}",
    }
    for name in precs:
        epoch_s = train_samples / train[name]["samples_per_s"] + val_samples / inference[name]["samples_per_s"]
        gan_s = gan_cfg.steps * gan[f"{name}_batch{gan_cfg.batch_size}"]["step_s_median"] if f"{name}_batch{gan_cfg.batch_size}" in gan else 0.0
        projection[name] = {
            "epoch_s": round(epoch_s, 1),
            "gru_minutes": round(FULL_EPOCHS * epoch_s / 60, 1),
            "gan_s": round(gan_s, 1),
            "total_minutes": round((FULL_EPOCHS * epoch_s + gan_s) / 60, 1),
        }
    speedup = {}
    if "fp32" in precs and "bf16" in precs:
        speedup = {
            "gru_train_step": round(train["fp32"]["step_s_median"] / train["bf16"]["step_s_median"], 2),
            "gru_inference": round(inference["fp32"]["step_s_median"] / inference["bf16"]["step_s_median"], 2),
            **{
                f"gan_step_batch{b}": round(gan[f"fp32_batch{b}"]["step_s_median"] / gan[f"bf16_batch{b}"]["step_s_median"], 2)
                for b in (int(b) for b in args.gan_batches.split(","))
            },
            "full_retrain": round(projection["fp32"]["total_minutes"] / projection["bf16"]["total_minutes"], 2),
        }
    loadavg_end = os.getloadavg()

    retrain = {}
    if not args.no_retrain_memory:
        for name in precs:
            cmd = [sys.executable, __file__, "--device", args.device, "--retrain-memory", name]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            retrain[name] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"error": proc.stderr[-1000:]}
        retrain["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]

    report = {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loadavg_start": [round(v, 2) for v in loadavg_start],
        "loadavg_end": [round(v, 2) for v in loadavg_end],
        "precisions": {name: p.describe() for name, p in precs.items()},
        "precisions_skipped": skipped,
        "matmul_peak_gflops": round(peak, 1),
        "bf16_matmul_peak_gflops": round(peak_bf16, 1) if peak_bf16 else None,
        "flop_counting": "matmuls only; GRU train = 3x forward; GAN step = 3 G fwd + 9 D fwd per sample; "
        "ratios against the float32 peak unless named bf16",
        "gru": {
            "batch": args.batch,
            "forward_mflop_per_sample": round(fwd_flops / 1e6, 2),
            "train_mflop_per_sample": round(train_flops / 1e6, 2),
            "train": train,
            "inference": inference,
        },
        "gan_step": {"mflop_per_sample": round(gan_flops_per_sample(gan_cfg) / 1e6, 2), **gan},
        "speedup_bf16_over_fp32": speedup,
        "full_retrain_projection": projection,
        "full_retrain_measured_fraction": retrain,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report, indent=2))
    return report


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cpus)"
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()

"""Throughput of the GRU factor model and of the GAN's alternating step, printed as one JSON object.

    .venv/bin/python bench/bench_model.py [--device cpu|cuda] [--threads N] [--steps 3]

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
import time

import torch

from factor_pipeline.config import GanConfig, ModelConfig
from factor_pipeline.gan import alternating_step, build_gan
from factor_pipeline.model import GRUFactorModel, ic_loss, reuse_freed_memory

SEQ_LEN, N_FEATURES = 40, 18
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


def matmul_peak_gflops(device, n=2048, reps=5) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    return 2 * n**3 / min(_times(lambda: torch.mm(a, b), device, reps)) / 1e9


def bench_gru_training(model, optimizer, X, y, device, steps):
    def step():
        loss = ic_loss(model(X), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _times(step, device, steps)


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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=3, help="timed GRU training steps per setting")
    parser.add_argument("--batch", type=int, default=FULL_STOCKS, help="samples per date batch")
    parser.add_argument("--gan-steps", type=int, default=20)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    loadavg_start = os.getloadavg()

    peak = matmul_peak_gflops(device)
    cfg = ModelConfig()  # the full profile: GRU(128, 128) + MLP(256, 64, 64)
    fwd_flops, train_flops = gru_flops_per_sample(N_FEATURES, cfg.gru_hidden, cfg.mlp_hidden)
    model = GRUFactorModel(N_FEATURES, cfg.gru_hidden, cfg.mlp_hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    X = torch.randn(args.batch, SEQ_LEN, N_FEATURES, device=device)
    y = torch.randn(args.batch, device=device)

    training = {}
    if device.type == "cpu":
        # train_gru runs inside reuse_freed_memory(); the default malloc is shown for comparison
        training["default_malloc"] = bench_gru_training(model, optimizer, X, y, device, args.steps)
        with reuse_freed_memory():
            training["reuse_freed_memory"] = bench_gru_training(model, optimizer, X, y, device, args.steps)
    else:
        training["cuda"] = bench_gru_training(model, optimizer, X, y, device, args.steps)
    peak = max(peak, matmul_peak_gflops(device))  # re-measured: the best seen is the machine's peak
    train = {k: summarise(v, args.batch, train_flops, peak) for k, v in training.items() if v}
    main_setting = "reuse_freed_memory" if "reuse_freed_memory" in train else "cuda"

    model.eval()
    with torch.inference_mode():
        infer_times = _times(lambda: model(X), device, max(args.steps, 3))
    infer = summarise(infer_times, args.batch, fwd_flops, peak)

    gan_cfg = GanConfig(mode="augment")  # the full profile's GAN settings, in augment mode
    generator, discriminator = (m.to(device) for m in build_gan(gan_cfg))
    opt_g = torch.optim.Adam(generator.parameters(), lr=gan_cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=gan_cfg.lr, betas=(0.5, 0.999))
    bs = gan_cfg.batch_size
    real = torch.randn(bs, SEQ_LEN, N_FEATURES, device=device)
    real_y = torch.randn(bs, device=device)
    z = torch.randn(bs, SEQ_LEN, gan_cfg.noise_dim, device=device)
    gan_times = _times(
        lambda: alternating_step(generator, discriminator, opt_g, opt_d, real, real_y, z, None),
        device,
        args.gan_steps,
        warmup=3,
    )
    gan = summarise(gan_times, bs, gan_flops_per_sample(gan_cfg), peak)

    train_samples = FULL_STOCKS * FULL_DATES * (1 - cfg.val_fraction)
    val_samples = FULL_STOCKS * FULL_DATES * cfg.val_fraction
    epoch_s = train_samples / train[main_setting]["samples_per_s"] + val_samples / infer["samples_per_s"]
    gan_s = gan_cfg.steps * gan["step_s_median"]

    report = {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loadavg_start": [round(v, 2) for v in loadavg_start],
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "matmul_peak_gflops": round(peak, 1),
        "flop_counting": "matmuls only; GRU train = 3x forward; GAN step = 3 G fwd + 9 D fwd per sample",
        "gru": {
            "batch": args.batch,
            "forward_mflop_per_sample": round(fwd_flops / 1e6, 2),
            "train_mflop_per_sample": round(train_flops / 1e6, 2),
            "train": train,
            "train_setting_used_for_projection": main_setting,
            "inference": infer,
        },
        "gan_step": {"batch": bs, "mflop_per_sample": round(gan_flops_per_sample(gan_cfg) / 1e6, 2), **gan},
        "full_retrain_projection": {
            "what": f"{FULL_STOCKS} stocks x {FULL_DATES} dates, {1 - cfg.val_fraction:.0%} train, "
            f"{FULL_EPOCHS} epochs (no early stop) + validation, + {gan_cfg.steps} GAN steps",
            "epoch_s": round(epoch_s, 1),
            "gru_hours": round(FULL_EPOCHS * epoch_s / 3600, 2),
            "gan_s": round(gan_s, 1),
            "total_hours": round((FULL_EPOCHS * epoch_s + gan_s) / 3600, 2),
        },
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

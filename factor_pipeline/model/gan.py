"""The GAN stage: an LSTM generator and a CNN discriminator over 40 x 18 windows (docs/method.md: Model).

Losses are the seed's [seed]:
    L_G = -E_z[log D(G(z))]
    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
written on logits with ``logsigmoid`` (log(1 - sigmoid(l)) = logsigmoid(-l)), so they stay finite
for any logit. How the generator reaches the GRU is not published [reconstruction]; ``GanConfig.mode``
picks one of two readings:

- ``augment``: G maps noise to a labelled sequence and learns the joint law of (window, label), the
  label being the caller's z-scored forward return; D sees the label as an extra input.
- ``transform``: G reads a real window plus noise and returns x + residual_scale * tanh(delta); D
  tells real windows from processed ones. ``transform`` applies G with z = 0.

Stopping rule [reconstruction of "until convergence"]: after a warm-up, every CHECK_EVERY steps the
discriminator's accuracy on real-vs-fake, averaged over the last ACC_WINDOW steps, is compared with
0.5; when it stays within 0.5 +- ACC_BAND for EQUILIBRIUM_CHECKS checks in a row, D can no longer
tell the two apart and training stops ("equilibrium"); otherwise it runs cfg.steps ("max_steps").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from factor_pipeline.config import GanConfig
from factor_pipeline.features.daily import N_FEATURES
from factor_pipeline.model.gru import deterministic
from factor_pipeline.model.checkpoints import CheckpointError, cpu_state, load_checkpoint, save_checkpoint
from factor_pipeline.model.precision import autocast
from factor_pipeline.model.precision import resolve as resolve_precision

SEQ_LEN = 40
CHECK_EVERY = 10
ACC_WINDOW = 50
ACC_BAND = 0.05
EQUILIBRIUM_CHECKS = 5
BETAS = (0.5, 0.999)  # the usual GAN choice: less momentum keeps the two players from overshooting


class SequenceGenerator(nn.Module):
    """An LSTM over the noise sequence (and, in transform mode, the real window beside it).

    augment:   G(z)    -> (sequence [B, T, F], label [B])
    transform: G(z, x) -> (x + residual_scale * tanh(delta) [B, T, F], label [B] (unused))
    """

    def __init__(
        self,
        mode: str,
        noise_dim: int,
        hidden: int,
        n_features: int = N_FEATURES,
        residual_scale: float = 0.1,
    ):
        super().__init__()
        if mode not in ("augment", "transform"):
            raise ValueError(f"generator mode {mode!r} is not augment or transform")
        self.mode = mode
        self.residual_scale = residual_scale
        in_size = noise_dim + (n_features if mode == "transform" else 0)
        self.lstm = nn.LSTM(in_size, hidden, batch_first=True)
        # LSTM states are small at initialisation (|h| ~ 0.1); normalising them lets the outputs start
        # near the unit scale of the z-scored data instead of spending the step budget growing weights.
        self.norm = nn.LayerNorm(hidden)
        self.to_features = nn.Linear(hidden, n_features)
        self.to_label = nn.Linear(hidden, 1)

    def forward(self, z: torch.Tensor, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode == "transform":
            if x is None:
                raise ValueError("a transform-mode generator needs the real window x")
            z = torch.cat([x, z], dim=-1)
        h = self.norm(self.lstm(z)[0])
        out = self.to_features(h)
        if self.mode == "transform":
            out = x + self.residual_scale * torch.tanh(out)
        return out, self.to_label(h[:, -1]).squeeze(-1)


class SequenceDiscriminator(nn.Module):
    """A small CNN reading the window as a one-channel [T, F] image (+ the label) -> one logit."""

    def __init__(
        self,
        channels: Sequence[int] = (16, 32),
        with_label: bool = False,
        seq_len: int = SEQ_LEN,
        n_features: int = N_FEATURES,
    ):
        super().__init__()
        c1, c2 = channels
        self.with_label = with_label
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        flat = c2 * ((seq_len + 1) // 2) * ((n_features + 1) // 2)
        # The label joins after the convolutions; the hidden layer lets it interact with the window.
        self.head = nn.Sequential(nn.Linear(flat + int(with_label), 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(x.unsqueeze(1))
        if self.with_label:
            h = torch.cat([h, label.unsqueeze(-1)], dim=-1)
        return self.head(h).squeeze(-1)


def generator_loss(d_fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))]."""
    return -F.logsigmoid(d_fake_logits).mean()


def discriminator_loss(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))]."""
    return -F.logsigmoid(d_real_logits).mean() - F.logsigmoid(-d_fake_logits).mean()


@dataclass
class GanResult:
    generator_state: dict
    discriminator_state: dict
    steps_run: int
    stop_reason: str  # "equilibrium" or "max_steps"
    g_loss: list[float] = field(default_factory=list)
    d_loss: list[float] = field(default_factory=list)


def build_gan(cfg: GanConfig, n_features: int = N_FEATURES, seq_len: int = SEQ_LEN):
    if cfg.mode not in ("augment", "transform"):
        raise ValueError(f"gan.mode={cfg.mode!r}: there is no GAN to build (expected augment or transform)")
    generator = SequenceGenerator(
        cfg.mode, cfg.noise_dim, cfg.generator_hidden, n_features, cfg.transform_residual_scale
    )
    discriminator = SequenceDiscriminator(cfg.discriminator_channels, cfg.mode == "augment", seq_len, n_features)
    return generator, discriminator


def alternating_step(generator, discriminator, opt_g, opt_d, real_x, real_y, z, source_x):
    """One D update then one G update on the same generated batch; returns (d_loss, g_loss, d_accuracy).

    ``real_y`` is the label batch (augment) or None; ``source_x`` the windows G processes (transform)
    or None.
    """
    fake_x, fake_y = generator(z, source_x)
    with_label = discriminator.with_label
    real_logits = discriminator(real_x, real_y if with_label else None)
    fake_logits = discriminator(fake_x.detach(), fake_y.detach() if with_label else None)
    d_loss = discriminator_loss(real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    g_loss = generator_loss(discriminator(fake_x, fake_y if with_label else None))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()  # also fills D's grads; harmless, opt_d.zero_grad clears them next step
    opt_g.step()

    with torch.no_grad():
        accuracy = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
    return d_loss.item(), g_loss.item(), accuracy.item()


def train_gan(
    X: np.ndarray,
    y: np.ndarray | None,
    cfg: GanConfig,
    seed: int,
    log: Callable[[str], None] | None = None,
    precision: str = "fp32",
    progress: Callable[[int, int], None] | None = None,
) -> GanResult:
    """Alternate D and G updates on batches drawn with a seeded generator; see the module doc for the stop.

    In transform mode G processes a second, independently drawn batch of real windows, so D never
    sees a window next to its own processed version. ``progress(step, cfg.steps)`` is called every CHECK_EVERY steps.
    """
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
    n, seq_len, n_features = X_t.shape
    y_t = None
    if cfg.mode == "augment":
        if y is None:
            raise ValueError("augment mode learns (sequence, label) pairs: pass the z-scored labels y")
        y_t = torch.as_tensor(np.asarray(y, dtype=np.float32))
    device = torch.device("cpu")  # the GAN is small; CPU keeps it deterministic and cheap
    prec = resolve_precision(precision, device, log)  # bf16: about 1.5x faster steps where native
    with deterministic(device, seed), autocast(prec):
        generator, discriminator = build_gan(cfg, n_features, seq_len)
        opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=BETAS)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=BETAS)
        rng = torch.Generator().manual_seed(seed)
        warmup = max(ACC_WINDOW, cfg.steps // 4)  # an untrained D also scores 0.5: don't read that as equilibrium
        g_hist, d_hist, acc_hist = [], [], []
        in_band, stop_reason = 0, "max_steps"
        for step in range(1, cfg.steps + 1):
            idx = torch.randint(n, (cfg.batch_size,), generator=rng)
            z = torch.randn(cfg.batch_size, seq_len, cfg.noise_dim, generator=rng)
            source = X_t[torch.randint(n, (cfg.batch_size,), generator=rng)] if cfg.mode == "transform" else None
            d_loss, g_loss, acc = alternating_step(
                generator, discriminator, opt_g, opt_d, X_t[idx], None if y_t is None else y_t[idx], z, source
            )
            d_hist.append(d_loss)
            g_hist.append(g_loss)
            acc_hist.append(acc)
            if step % CHECK_EVERY == 0:
                moving = float(np.mean(acc_hist[-ACC_WINDOW:]))
                if progress:
                    progress(step, cfg.steps)
                if step >= warmup:
                    in_band = in_band + 1 if abs(moving - 0.5) <= ACC_BAND else 0
                if log and step % (5 * CHECK_EVERY) == 0:
                    log(f"gan step {step}: D loss {d_loss:.4f}, G loss {g_loss:.4f}, D accuracy (avg) {moving:.3f}")
                if in_band >= EQUILIBRIUM_CHECKS:
                    stop_reason = "equilibrium"
                    break
    if log:
        log(f"gan stopped after {len(d_hist)} steps ({stop_reason})")
    return GanResult(cpu_state(generator), cpu_state(discriminator), len(d_hist), stop_reason, g_hist, d_hist)


def _generator(result_or_state, cfg: GanConfig) -> SequenceGenerator:
    """A generator in eval mode from a GanResult, load_gan's state, or a bare generator state dict."""
    if isinstance(result_or_state, GanResult):
        state = result_or_state.generator_state
    elif "generator" in result_or_state:
        state = result_or_state["generator"]
    else:
        state = result_or_state
    generator, _ = build_gan(cfg, n_features=state["to_features.weight"].shape[0])
    generator.load_state_dict(state)
    return generator.eval()


def generate(
    result_or_state, cfg: GanConfig, n: int, seed: int, seq_len: int = SEQ_LEN, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Augment mode: n generated (sequence float32 [n, T, F], label float32 [n]) pairs."""
    if cfg.mode != "augment":
        raise ValueError(f"generate needs gan.mode='augment', not {cfg.mode!r}")
    generator = _generator(result_or_state, cfg)
    rng = torch.Generator().manual_seed(seed)
    seqs, labels = [], []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            z = torch.randn(min(batch_size, n - start), seq_len, cfg.noise_dim, generator=rng)
            seq, label = generator(z)
            seqs.append(seq)
            labels.append(label)
    if not seqs:
        n_features = generator.to_features.out_features
        return np.zeros((0, seq_len, n_features), np.float32), np.zeros(0, np.float32)
    return torch.cat(seqs).numpy(), torch.cat(labels).numpy()


def transform(result_or_state, cfg: GanConfig, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Transform mode: G applied to real windows with z = 0 (deterministic), float32, same shape as X."""
    if cfg.mode != "transform":
        raise ValueError(f"transform needs gan.mode='transform', not {cfg.mode!r}")
    X = np.asarray(X, dtype=np.float32)
    generator = _generator(result_or_state, cfg)
    out = np.empty_like(X)
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            x = torch.from_numpy(X[start : start + batch_size])
            z = x.new_zeros(*x.shape[:2], cfg.noise_dim)
            out[start : start + len(x)] = generator(z, x)[0].numpy()
    return out


def _lag1_autocorrelation(X: np.ndarray) -> np.ndarray:
    """Per feature: the lag-1 autocorrelation of each sample's own series, averaged over samples."""
    a = X.astype(np.float64) - X.mean(axis=1, keepdims=True, dtype=np.float64)
    num = (a[:, 1:] * a[:, :-1]).sum(axis=1)
    den = (a * a).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        acf = np.where(den > 0, num / den, np.nan)  # a constant series has no autocorrelation
    return np.nanmean(acf, axis=0) if len(acf) else np.full(X.shape[-1], np.nan)


def similarity_table(X_real: np.ndarray, X_fake: np.ndarray, feature_names: Sequence[str]) -> pd.DataFrame:
    """Per feature: mean, std and lag-1 autocorrelation along the window, real vs generated."""
    table = {"feature": list(feature_names)}
    for label, X in (("real", X_real), ("generated", X_fake)):
        X = np.asarray(X, dtype=np.float64)
        table[f"mean_{label}"] = X.mean(axis=(0, 1))
        table[f"std_{label}"] = X.std(axis=(0, 1))
        table[f"acf1_{label}"] = _lag1_autocorrelation(X)
    columns = ["feature"] + [f"{s}_{l}" for s in ("mean", "std", "acf1") for l in ("real", "generated")]
    return pd.DataFrame(table)[columns]


def save_gan(path: Path, result: GanResult, sidecar: dict) -> None:
    """Both networks in one .pt + a .json sidecar, with the checkpoint conventions of checkpoints.py."""
    state = {"generator": result.generator_state, "discriminator": result.discriminator_state}
    save_checkpoint(path, state, {**sidecar, "steps_run": result.steps_run, "stop_reason": result.stop_reason})


def load_gan(path: Path, expected: dict | None = None) -> tuple[dict, dict]:
    """({"generator": ..., "discriminator": ...}, sidecar); CheckpointError as load_checkpoint."""
    state, sidecar = load_checkpoint(path, expected)
    if set(state) != {"generator", "discriminator"}:
        raise CheckpointError(f"{Path(path).with_suffix('.pt')}: not a GAN checkpoint (keys {sorted(state)})")
    return state, sidecar

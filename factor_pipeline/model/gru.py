"""The GRU encoder that turns a stock's 40 x 18 window into the factor pRet (METHOD.md: Model).

GRU(128, 128) -> MLP(256, 64, 64) -> pRet, trained with the negative within-date IC as the loss, one
batch per date, Adam, early stopping on the validation IC [seed/verified]. Checkpoints are a ``.pt``
file of weights plus a ``.json`` sidecar that says what produced them.

On CPU the GRU layers run through ``_GRULayerCPU``, a hand-written forward/backward over the whole
sequence (the cuDNN recipe: input projections for all steps in one matmul, one matmul per step for
the recurrence, fused gate arithmetic, weight gradients accumulated in the backward loop). It
computes exactly ``nn.GRU``'s function with ``nn.GRU``'s parameters, so checkpoints are plain
``nn.GRU`` state dicts and CUDA uses cuDNN through ``nn.GRU`` itself. On the 2-core dev machine a
full-size training step (5,000 samples) runs at ~70% of the float32 matmul peak on one thread, where
autograd through ``nn.GRU`` reaches 47-61% (its per-step gate concatenations and large temporaries
cost more than the arithmetic); ``train_gru`` also keeps freed activations for reuse while it runs
(``reuse_freed_memory``). bench/bench_model.py measures all of this.

With ``model.precision = "bf16"`` (precision.py) training and prediction run under autocast, and on CPU
the layers run through ``gru_bf16.GRULayerCPUBF16``: bfloat16 matmul operands, float32 state and gates.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import math
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from factor_pipeline.model import precision
from factor_pipeline.config import ModelConfig
from factor_pipeline.model.gru_bf16 import GRULayerCPUBF16
from factor_pipeline.storage import atomic_path, write_json

IC_EPS = 1e-8  # keeps the IC finite (and its gradient bounded) when a date's predictions are constant
MIN_DATE_SIZE = 2  # a cross-section needs two stocks for a correlation; smaller dates are skipped


# --------------------------------------------------------------------------------------------------
# The fused CPU GRU layer

_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input  # g * s * (1 - s) in one pass, into out
_tanh_backward = torch.ops.aten.tanh_backward.grad_input  # g * (1 - t^2) in one pass, into out


class _GRULayerCPU(torch.autograd.Function):
    """One GRU layer over a time-major sequence [T, B, I] -> all hidden states [T, B, H], h0 = 0.

    PyTorch's gate order and equations (r, z, n):
        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        T, B, _ = x.shape
        H = w_hh.shape[1]
        x2 = x.reshape(T * B, -1)
        # Input projections of every step in two large matmuls, written straight into the buffers
        # that then hold the activations r|z and n. Both r|z biases can be added up front; b_hn
        # cannot, since r multiplies it.
        rz = torch.addmm(b_ih[: 2 * H] + b_hh[: 2 * H], x2, w_ih[: 2 * H].t()).view(T, B, 2 * H)
        n = torch.addmm(b_ih[2 * H :], x2, w_ih[2 * H :].t()).view(T, B, H)
        hs = x.new_empty(T + 1, B, H)  # hs[t] is the state before step t
        hs[0].zero_()
        ghn = x.new_empty(T, B, H)  # W_hn h + b_hn, kept for the backward pass
        w_rz, w_n, b_n = w_hh[: 2 * H].t(), w_hh[2 * H :].t(), b_hh[2 * H :]
        for t in range(T):
            rz[t].addmm_(hs[t], w_rz).sigmoid_()
            torch.addmm(b_n, hs[t], w_n, out=ghn[t])
            # tanh(a) = 2 sigmoid(2a) - 1: PyTorch's CPU sigmoid is about 4x faster than its tanh
            n[t].addcmul_(rz[t, :, :H], ghn[t]).mul_(2).sigmoid_().mul_(2).sub_(1)
            torch.lerp(n[t], hs[t], rz[t, :, H:], out=hs[t + 1])  # n + z * (h - n)
        ctx.save_for_backward(x, w_ih, w_hh, hs, rz, n, ghn)
        return hs[1:]

    @staticmethod
    def backward(ctx, d_out):
        x, w_ih, w_hh, hs, rz, n, ghn = ctx.saved_tensors
        T, B, H = n.shape
        d_w_ih, d_w_hh = torch.zeros_like(w_ih), torch.zeros_like(w_hh)
        d_b_ih, d_b_hh = x.new_zeros(3 * H), x.new_zeros(3 * H)
        d_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        # Per-step buffers, reused so that the whole loop stays in cache and allocates nothing large.
        d_gi = x.new_empty(B, 3 * H)  # grads of the gate pre-activations, input side: r | z | n
        d_ghn = x.new_empty(B, H)  # grad of W_hn h + b_hn (the hidden-side n term is scaled by r)
        dh_z = x.new_empty(B, H)
        dh = d_out[T - 1].clone()
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                dh += d_out[t]
            r, z = rz[t, :, :H], rz[t, :, H:]
            d_rz, d_n = d_gi[:, : 2 * H], d_gi[:, 2 * H :]
            torch.mul(dh, z, out=dh_z)
            _tanh_backward(dh - dh_z, n[t], grad_input=d_n)  # dh * (1 - z) through tanh
            torch.mul(d_n, ghn[t], out=d_gi[:, :H])  # through r * (W_hn h + b_hn)
            torch.sub(hs[t], n[t], out=d_gi[:, H : 2 * H]).mul_(dh)  # dh * (h - n)
            _sigmoid_backward(d_rz, rz[t], grad_input=d_rz)
            torch.mul(d_n, r, out=d_ghn)
            d_w_ih.addmm_(d_gi.t(), x[t])
            d_w_hh[: 2 * H].addmm_(d_rz.t(), hs[t])
            d_w_hh[2 * H :].addmm_(d_ghn.t(), hs[t])
            d_b_ih += d_gi.sum(0)
            d_b_hh[2 * H :] += d_ghn.sum(0)
            if d_x is not None:
                torch.mm(d_gi, w_ih, out=d_x[t])
            torch.addmm(dh_z, d_rz, w_hh[: 2 * H], out=dh).addmm_(d_ghn, w_hh[2 * H :])
        d_b_hh[: 2 * H] = d_b_ih[: 2 * H]  # r and z biases enter both sides identically
        return d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh


# --------------------------------------------------------------------------------------------------
# The model and its loss


class GRUFactorModel(nn.Module):
    """Stacked GRU layers; the last step's hidden state -> MLP -> one number per sample (pRet)."""

    def __init__(
        self,
        n_features: int = 18,
        gru_hidden: Sequence[int] = (128, 128),
        mlp_hidden: Sequence[int] = (256, 64, 64),
        dropout: float = 0.0,
        head_side: int = 0,
        skip: tuple[int, int, int] | None = None,
    ):
        super().__init__()
        # ``skip`` = (first channel, number of channels, steps): a linear read of those channels over the
        # whole window, added to the output (ModelConfig.linear_skip); None keeps the seed's model.
        self.skip_channels = skip
        self.skip = nn.Linear(skip[1] * skip[2], 1, bias=False) if skip else None
        # The last ``head_side`` input channels are per-sample side inputs (constant along the window):
        # they skip the GRU and join its final state at the MLP.
        self.head_side = head_side
        n_features -= head_side
        # One single-layer nn.GRU per layer, so that layers may differ in width; they hold the
        # parameters (standard names) and run the CUDA path.
        sizes = [n_features, *gru_hidden]
        self.grus = nn.ModuleList(nn.GRU(i, h, batch_first=True) for i, h in zip(sizes[:-1], sizes[1:]))
        layers: list[nn.Module] = []
        width = sizes[-1] + head_side
        for hidden in mlp_hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout > 0:  # only when asked: a Dropout module would shift the seed's state-dict keys
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.fused_cpu = True  # False: autograd through nn.GRU on CPU too (the reference, for tests)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> the last layer's final hidden state [B, H]."""
        if x.device.type == "cpu" and self.fused_cpu:
            # Under bf16 autocast the fused layer takes bfloat16 matmul operands itself (gru_bf16.py).
            bf16 = precision.autocast_dtype("cpu") == torch.bfloat16
            layer = GRULayerCPUBF16 if bf16 else _GRULayerCPU
            h = x.transpose(0, 1).contiguous()  # time-major, so each step is one contiguous slice
            for gru in self.grus:
                h = layer.apply(h, gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)
            return h[-1]
        h = x
        for gru in self.grus:
            h, h_n = gru(h)
        return h_n[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head_side:
            sequence, side = x[..., : -self.head_side], x[:, -1, -self.head_side :]
            h = self.mlp[:-1](torch.cat([self.encode(sequence), side], dim=-1))
        else:
            h = self.mlp[:-1](self.encode(x))
        # The 64 -> 1 output layer stays float32 even under autocast: bfloat16's 8-bit mantissa would
        # tie hundreds of the 5,000 pRet values a date ranks, and the layer costs nothing.
        with torch.autocast(h.device.type, enabled=False):
            out = self.mlp[-1](h.to(self.mlp[-1].weight.dtype)).squeeze(-1)
            if self.skip is not None:
                first, count, _ = self.skip_channels
                read = x[..., first : first + count].reshape(len(x), -1).to(self.skip.weight.dtype)
                out = out + self.skip(read).squeeze(-1)
            return out


def ic_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative Pearson correlation of one date's predictions and labels."""
    p = pred - pred.mean()
    t = target - target.mean()
    # Normalising each side separately keeps the gradient finite when the predictions are constant.
    p = p / (p.square().sum() + IC_EPS).sqrt()
    t = t / (t.square().sum() + IC_EPS).sqrt()
    return -(p * t).sum()


def pearson_ic(pred: np.ndarray, target: np.ndarray) -> float:
    """Pearson IC in float64; 0 when either side is constant (the IC is then undefined)."""
    p = np.asarray(pred, dtype=np.float64) - np.mean(pred)
    t = np.asarray(target, dtype=np.float64) - np.mean(target)
    denom = math.sqrt(float(p @ p) * float(t @ t))
    return float(p @ t) / denom if denom > 0 else 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device='cuda' but CUDA is not available; use 'auto' or 'cpu'")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


@contextlib.contextmanager
def deterministic(device: torch.device, seed: int):
    """Deterministic kernels and a seeded global RNG inside the block; both restored on exit.

    The global RNG is forked (not just reseeded) so that training never disturbs the caller's random
    state. On CUDA, cuBLAS is only deterministic with CUBLAS_WORKSPACE_CONFIG set, which is the
    caller's environment: there the switch warns instead of raising.
    """
    was_enabled = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_enabled, warn_only=was_warn_only)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


@contextlib.contextmanager
def reuse_freed_memory():
    """Inside the block, glibc malloc keeps large freed blocks for reuse instead of unmapping them.

    A full-size CPU training step allocates and frees ~1.5 GB of activations. By default each block
    is a fresh mmap whose pages then fault in one at a time, which costs about a fifth of the step;
    served from the heap, they are reused. On exit malloc's defaults come back and the heap is
    trimmed, so the process does not keep its peak footprint. Best effort: it helps when the thread
    allocates from glibc's main arena (the usual case for the main thread), and is a no-op where
    malloc is not glibc's.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield
    finally:
        for param, value in _GLIBC_DEFAULTS.items():
            mallopt(param, value)
        malloc_trim(0)


def cpu_state(module: nn.Module) -> dict:
    """A detached CPU copy of a module's weights (safe to keep while training goes on)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


# --------------------------------------------------------------------------------------------------
# Training and prediction


@dataclass
class TrainResult:
    state_dict: dict
    epochs_run: int
    best_epoch: int  # 1-based
    best_val_ic: float
    train_loss: list[float] = field(default_factory=list)
    val_ic: list[float] = field(default_factory=list)
    precision: dict = field(default_factory=dict)  # precision.Precision.describe(): what was asked, what ran


def split_dates(dates: Sequence, val_fraction: float) -> tuple[list, list]:
    """Time-ordered split: the last ``val_fraction`` of the sorted unique dates validate."""
    unique = sorted(set(dates))
    if len(unique) < 2:
        raise ValueError(f"need at least two dates for a train/validation split, got {len(unique)}")
    n_val = min(max(1, round(len(unique) * val_fraction)), len(unique) - 1)
    return unique[:-n_val], unique[-n_val:]


SEQUENCE_FEATURES = 18  # the daily features of a window; channels beyond them are side inputs


def build_model(cfg: ModelConfig, n_features: int, seq_len: int = 40) -> GRUFactorModel:
    sequence = SEQUENCE_FEATURES + len(cfg.step_channels)  # the window's channels, then the step channels
    head_side = n_features - sequence if cfg.side_at == "head" and n_features > sequence else 0
    skip = (SEQUENCE_FEATURES, len(cfg.step_channels), seq_len) if cfg.linear_skip and cfg.step_channels else None
    return GRUFactorModel(n_features, cfg.gru_hidden, cfg.mlp_hidden, cfg.dropout, head_side, skip)


def optimizer_for(model: nn.Module, cfg: ModelConfig) -> torch.optim.Optimizer:
    # Plain Adam without decay is the seed's optimiser; AdamW's decoupled decay is the measured option.
    if cfg.weight_decay > 0:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def _to_tensors(days, device):
    out = []
    for X, y in days:
        if len(X) >= MIN_DATE_SIZE:
            out.append(
                (
                    torch.as_tensor(np.asarray(X, dtype=np.float32), device=device),
                    torch.as_tensor(np.asarray(y, dtype=np.float32), device=device),
                )
            )
    return out


def _validation_ic(model: nn.Module, days) -> float:
    with torch.no_grad():
        ics = [pearson_ic(model(X).double().cpu().numpy(), y.double().cpu().numpy()) for X, y in days]
    return float(np.mean(ics))


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor, prec: str) -> torch.Tensor:
    """One optimiser step on one date's cross-section (the forward pass in ``prec``); returns the loss."""
    with precision.autocast(prec):
        pred = model(X)
    loss = ic_loss(pred, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train_gru(
    train_days: list[tuple[np.ndarray, np.ndarray]],
    val_days: list[tuple[np.ndarray, np.ndarray]],
    cfg: ModelConfig,
    n_features: int,
    seed: int,
    log: Callable[[str], None] | None = None,
    fixed_epochs: int | None = None,
) -> TrainResult:
    """Train on one date per batch; keep the weights of the epoch with the best validation IC.

    ``fixed_epochs``: train exactly that many epochs and keep the last weights, with no validation
    (``val_days`` may be empty): the refit on every date (ModelConfig.refit).
    """
    device = resolve_device(cfg.device)
    train = _to_tensors(train_days, device)
    val = _to_tensors(val_days, device)
    if fixed_epochs is not None:
        return _train_fixed(train, cfg, n_features, seed, fixed_epochs, device, log)
    if not train or not val:
        raise ValueError(
            f"train_gru needs at least one training and one validation date with >= {MIN_DATE_SIZE} samples "
            f"(got {len(train)} and {len(val)})"
        )
    prec = precision.resolve(cfg.precision, device, log)
    with deterministic(device, seed), reuse_freed_memory():
        model = build_model(cfg, n_features, train[0][0].shape[1]).to(device)  # initialised from the seeded global RNG
        optimizer = optimizer_for(model, cfg)
        order_rng = torch.Generator().manual_seed(seed)  # date order, independent of the init stream
        best_state, best_epoch, best_ic = cpu_state(model), 0, -math.inf
        train_loss, val_ic = [], []
        stale = 0
        for epoch in range(1, cfg.max_epochs + 1):
            model.train()
            total = 0.0
            for i in torch.randperm(len(train), generator=order_rng).tolist():
                X, y = train[i]
                total += training_step(model, optimizer, X, y, prec).item()
            model.eval()
            train_loss.append(total / len(train))
            with precision.autocast(prec):
                val_ic.append(_validation_ic(model, val))
            if log:
                log(f"epoch {epoch}: train loss {train_loss[-1]:.4f}, val IC {val_ic[-1]:.4f}")
            if val_ic[-1] > best_ic:
                best_state, best_epoch, best_ic, stale = cpu_state(model), epoch, val_ic[-1], 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    if log:
                        log(f"early stop after epoch {epoch}: no better val IC for {cfg.patience} epochs")
                    break
    return TrainResult(best_state, len(val_ic), best_epoch, best_ic, train_loss, val_ic, prec.describe())


def _train_fixed(train, cfg: ModelConfig, n_features: int, seed: int, epochs: int, device, log) -> TrainResult:
    """train_gru's loop (same initialisation, date order and steps) for a fixed number of epochs, no validation."""
    if not train or epochs < 1:
        raise ValueError(f"a fixed-epoch fit needs dates and at least one epoch (got {len(train)} dates, {epochs} epochs)")
    prec = precision.resolve(cfg.precision, device, log)
    with deterministic(device, seed), reuse_freed_memory():
        model = build_model(cfg, n_features, train[0][0].shape[1]).to(device)
        optimizer = optimizer_for(model, cfg)
        order_rng = torch.Generator().manual_seed(seed)
        train_loss = []
        for epoch in range(1, epochs + 1):
            model.train()
            total = 0.0
            for i in torch.randperm(len(train), generator=order_rng).tolist():
                X, y = train[i]
                total += training_step(model, optimizer, X, y, prec).item()
            train_loss.append(total / len(train))
            if log:
                log(f"refit epoch {epoch}: train loss {train_loss[-1]:.4f}")
        model.eval()
        return TrainResult(cpu_state(model), epochs, epochs, math.nan, train_loss, [], prec.describe())


ENSEMBLE_PREFIX = "member"


def pack_ensemble(states: Sequence[dict]) -> dict:
    """One flat state dict holding several members' weights (``member<i>.<name>``); one member stays as it is."""
    if len(states) == 1:
        return dict(states[0])
    return {f"{ENSEMBLE_PREFIX}{i}.{k}": v for i, state in enumerate(states) for k, v in state.items()}


def unpack_ensemble(state: dict) -> list[dict]:
    if not any(k.startswith(ENSEMBLE_PREFIX) for k in state):
        return [state]
    members: dict[int, dict] = {}
    for key, value in state.items():
        head, name = key.split(".", 1)
        members.setdefault(int(head[len(ENSEMBLE_PREFIX) :]), {})[name] = value
    return [members[i] for i in sorted(members)]


def _standardised(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / std if std > 0 else np.zeros_like(values)


def predict(state_dict: dict, X: np.ndarray, cfg: ModelConfig, n_features: int, batch_size: int = 4096) -> np.ndarray:
    """pRet for every sample of X [N, T, F], float64 [N].

    An ensemble's pRet is the mean of its members' predictions, each z-scored over X first: the IC loss
    fixes neither a member's scale nor its offset, so raw outputs would weight members arbitrarily. X is
    therefore meant to be one date's cross-section, as the pipeline passes it.
    """
    members = unpack_ensemble(state_dict)
    if len(members) > 1:
        return np.mean([_standardised(_predict_one(m, X, cfg, n_features, batch_size)) for m in members], axis=0)
    return _predict_one(members[0], X, cfg, n_features, batch_size)


def _predict_one(state_dict: dict, X: np.ndarray, cfg: ModelConfig, n_features: int, batch_size: int) -> np.ndarray:
    device = resolve_device(cfg.device)
    model = build_model(cfg, n_features, X.shape[1])
    model.load_state_dict(state_dict)
    model.to(device).eval()
    out = np.empty(len(X), dtype=np.float64)
    with torch.inference_mode(), precision.autocast(precision.resolve(cfg.precision, device)):
        for start in range(0, len(X), batch_size):
            batch = torch.as_tensor(np.asarray(X[start : start + batch_size], dtype=np.float32), device=device)
            out[start : start + len(batch)] = model(batch).double().cpu().numpy()
    return out


# --------------------------------------------------------------------------------------------------
# Checkpoints: <path>.pt (weights) + <path>.json (sidecar)


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupt, or was made for a different configuration."""


def _jsonable(obj):
    """What ``obj`` reads back as from JSON (tuples become lists), for comparing with a sidecar."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def save_checkpoint(path: Path, state_dict: dict, sidecar: dict) -> None:
    """Weights first, then the sidecar (with the weights' SHA-256): a sidecar never names absent weights."""
    pt, js = Path(path).with_suffix(".pt"), Path(path).with_suffix(".json")
    buffer = io.BytesIO()  # saving to a buffer keeps the temporary file name out of the zip archive
    torch.save(state_dict, buffer)
    data = buffer.getvalue()
    with atomic_path(pt) as tmp:
        tmp.write_bytes(data)
    write_json({**sidecar, "weights_sha256": hashlib.sha256(data).hexdigest()}, js)


def load_checkpoint(path: Path, expected: dict | None = None) -> tuple[dict, dict]:
    """(state_dict, sidecar); CheckpointError naming the file and the reason for any problem."""
    pt, js = Path(path).with_suffix(".pt"), Path(path).with_suffix(".json")
    if not js.is_file():
        raise CheckpointError(f"{js}: checkpoint sidecar is missing")
    try:
        sidecar = json.loads(js.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{js}: checkpoint sidecar is unreadable or corrupt ({exc})") from exc
    if not isinstance(sidecar, dict):
        raise CheckpointError(f"{js}: checkpoint sidecar is not a JSON object")
    if expected:
        want = _jsonable(expected)
        differing = sorted(k for k in want if sidecar.get(k) != want[k])
        if differing:
            raise CheckpointError(
                f"{js}: checkpoint was made with different {', '.join(differing)} "
                f"(stored {[sidecar.get(k) for k in differing]}, expected {[want[k] for k in differing]})"
            )
    if not pt.is_file():
        raise CheckpointError(f"{pt}: checkpoint weights are missing")
    data = pt.read_bytes()
    digest = sidecar.get("weights_sha256")
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise CheckpointError(f"{pt}: checkpoint weights are truncated or corrupt (SHA-256 differs from the sidecar)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises zip, pickle and runtime errors alike for a damaged file
        raise CheckpointError(f"{pt}: checkpoint weights cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{pt}: checkpoint does not hold a state dict")
    return state, sidecar


def package_versions() -> dict:
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


"""The GRU encoder that turns a stock's 40 x 18 window into the factor pRet (docs/method.md: Model).

GRU(128, 128) -> MLP(256, 64, 64) -> pRet, trained with the negative within-date IC as the loss, one
batch per date, Adam, early stopping on the validation IC [seed/verified]. Checkpoints
(checkpoints.py) are a ``.pt`` file of weights plus a ``.json`` sidecar that says what produced them.

On CPU the GRU layers run through ``gru_cpu.GRULayerCPU``, a hand-written forward/backward that computes
exactly ``nn.GRU``'s function with its parameters, so checkpoints are plain ``nn.GRU`` state dicts and
CUDA uses cuDNN through ``nn.GRU`` itself; ``train_gru`` also keeps freed activations for reuse while it
runs (``gru_cpu.reuse_freed_memory``).

With ``model.precision = "bf16"`` (precision.py) training and prediction run under autocast, and on CPU
the layers run through ``gru_bf16.GRULayerCPUBF16``: bfloat16 matmul operands, float32 state and gates.
With several CPU threads, each thread runs a share of the batch through the layer (``gru_split``) instead of
every operation being split across the threads.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from factor_pipeline.config import ModelConfig
from factor_pipeline.features.daily import N_FEATURES
from factor_pipeline.model import precision
from factor_pipeline.model.checkpoints import cpu_state, unpack_ensemble
from factor_pipeline.model.gru_bf16 import GRULayerCPUBF16
from factor_pipeline.model.gru_cpu import GRULayerCPU, reuse_freed_memory
from factor_pipeline.model.gru_split import GRULayerSplit, share_bounds
from factor_pipeline.stats import pearson, zscore

IC_EPS = 1e-8  # keeps the IC finite (and its gradient bounded) when a date's predictions are constant
MIN_DATE_SIZE = 2  # a cross-section needs two stocks for a correlation; smaller dates are skipped
# cuBLAS's deterministic workspace setting (NVIDIA's documented value; ":16:8" uses less memory, runs slower).
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def gru_stack(n_features: int, gru_hidden: Sequence[int]) -> nn.ModuleList:
    """One single-layer nn.GRU per layer, so that layers may differ in width; they hold the parameters
    (standard names) and run the CUDA path."""
    sizes = [n_features, *gru_hidden]
    return nn.ModuleList(nn.GRU(i, h, batch_first=True) for i, h in zip(sizes[:-1], sizes[1:]))


def mlp_head(width: int, mlp_hidden: Sequence[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for hidden in mlp_hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout > 0:  # only when asked: a Dropout module would shift the seed's state-dict keys
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class GRUFactorModel(nn.Module):
    """Stacked GRU layers; the last step's hidden state -> MLP -> one number per sample (pRet)."""

    def __init__(
        self,
        n_features: int = N_FEATURES,
        gru_hidden: Sequence[int] = (128, 128),
        mlp_hidden: Sequence[int] = (256, 64, 64),
        dropout: float = 0.0,
    ):
        super().__init__()
        self.grus = gru_stack(n_features, gru_hidden)
        self.mlp = mlp_head(gru_hidden[-1], mlp_hidden, dropout)
        self.fused_cpu = True  # False: autograd through nn.GRU on CPU too (the reference, for tests)
        self.split_batch = True  # False: several CPU threads split each operation instead (the bench's comparison)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> the last layer's final hidden state [B, H]."""
        if x.device.type == "cpu" and self.fused_cpu:
            # Under bf16 autocast the fused layer takes bfloat16 matmul operands itself (gru_bf16.py).
            bf16 = precision.autocast_dtype("cpu") == torch.bfloat16
            layer = GRULayerCPUBF16 if bf16 else GRULayerCPU
            h = x.transpose(0, 1).contiguous()  # time-major, so each step is one contiguous slice
            # With several threads, each takes a share of the batch rather than a share of every operation.
            shares = len(share_bounds(h.shape[1], torch.get_num_threads())) if self.split_batch else 1
            for gru in self.grus:
                weights = (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)
                h = GRULayerSplit.apply(h, *weights, layer, shares) if shares > 1 else layer.apply(h, *weights)
            return h[-1]
        # On CUDA the recurrence runs in float32 outside autocast (precision.Precision.recurrent says why).
        cuda = x.device.type == "cuda"
        h = x.float() if cuda else x
        with torch.autocast("cuda", enabled=False) if cuda else contextlib.nullcontext():
            for gru in self.grus:
                h, h_n = gru(h)
        return h_n[-1]

    def output(self, h: torch.Tensor) -> torch.Tensor:
        """The MLP's last hidden layer [B, 64] -> pRet [B]."""
        # The 64 -> 1 output layer stays float32 even under autocast: bfloat16's 8-bit mantissa would
        # tie hundreds of the 5,000 pRet values a date ranks, and the layer costs nothing.
        with torch.autocast(h.device.type, enabled=False):
            return self.mlp[-1](h.to(self.mlp[-1].weight.dtype)).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.mlp[:-1](self.encode(x)))


def ic_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative Pearson correlation of one date's predictions and labels."""
    p = pred - pred.mean()
    t = target - target.mean()
    # Normalising each side separately keeps the gradient finite when the predictions are constant.
    p = p / (p.square().sum() + IC_EPS).sqrt()
    t = t / (t.square().sum() + IC_EPS).sqrt()
    return -(p * t).sum()


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
    """Deterministic kernels and a seeded global RNG inside the block; all three switches restored on exit.

    The global RNG is forked (not just reseeded) so that training never disturbs the caller's random
    state. Deterministic mode would also fill every uninitialised tensor with NaN
    (``torch.utils.deterministic.fill_uninitialized_memory``): the fused layers write every element they
    allocate before reading it, so the fill only costs time (about a sixth of a full-size step) and is
    switched off. On CUDA, cuBLAS is deterministic only with CUBLAS_WORKSPACE_CONFIG set before its first use
    (the pipeline's resource sets it: ``PipelineResource.prepare_device``); there the switch warns instead of raising.
    """
    was_enabled = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    was_filling = torch.utils.deterministic.fill_uninitialized_memory
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.utils.deterministic.fill_uninitialized_memory = False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_enabled, warn_only=was_warn_only)
            torch.utils.deterministic.fill_uninitialized_memory = was_filling


@dataclass
class TrainResult:
    state_dict: dict
    epochs_run: int
    best_epoch: int  # 1-based
    best_val_ic: float
    train_loss: list[float] = field(default_factory=list)
    val_ic: list[float] = field(default_factory=list)
    precision: dict = field(default_factory=dict)  # precision.Precision.describe(): what was asked, what ran


Build = Callable[[ModelConfig, int, int], nn.Module]  # (cfg, input channels, window steps) -> a model


def build_model(cfg: ModelConfig, n_features: int, seq_len: int = 40) -> GRUFactorModel:
    """The production model; ``seq_len`` is unused here and kept for models that read the window's length."""
    return GRUFactorModel(n_features, cfg.gru_hidden, cfg.mlp_hidden, cfg.dropout)


def optimizer_for(model: nn.Module, cfg: ModelConfig) -> torch.optim.Optimizer:
    # Plain Adam without decay is the seed's optimiser; AdamW's decoupled decay is the measured option.
    if cfg.weight_decay > 0:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def to_tensors(days, device):
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
        ics = [pearson(model(X).double().cpu().numpy(), y.double().cpu().numpy()) for X, y in days]
    # A date whose predictions are constant ranks nobody: it counts as no skill, not as a missing date.
    return float(np.mean(np.nan_to_num(ics, nan=0.0)))


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor, prec: str) -> torch.Tensor:
    """One optimiser step on one date's cross-section (the forward pass in ``prec``); returns the loss."""
    with precision.autocast(prec):
        pred = model(X)
    loss = ic_loss(pred, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, days, order_rng: torch.Generator, prec) -> float:
    """One pass over ``days`` (tensors, one date per step) in the order ``order_rng`` draws; the mean loss."""
    model.train()
    total = 0.0
    for i in torch.randperm(len(days), generator=order_rng).tolist():
        X, y = days[i]
        total += training_step(model, optimizer, X, y, prec).item()
    model.eval()
    return total / len(days)


@contextlib.contextmanager
def training_run(cfg: ModelConfig, n_features: int, seq_len: int, seed: int, device, build: Build = build_model):
    """(model, optimizer, date-order generator) of one seeded fit, inside deterministic kernels and the
    freed-memory reuse; the model is initialised from the seeded global RNG, the date order from its own."""
    with deterministic(device, seed), reuse_freed_memory():
        model = build(cfg, n_features, seq_len).to(device)
        yield model, optimizer_for(model, cfg), torch.Generator().manual_seed(seed)


def train_gru(
    train_days: list[tuple[np.ndarray, np.ndarray]],
    val_days: list[tuple[np.ndarray, np.ndarray]],
    cfg: ModelConfig,
    n_features: int,
    seed: int,
    log: Callable[[str], None] | None = None,
    build: Build = build_model,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train on one date per batch; keep the weights of the epoch with the best validation IC.

    ``progress(epoch, max_epochs, validation IC)`` is called after each epoch.
    """
    device = resolve_device(cfg.device)
    train = to_tensors(train_days, device)
    val = to_tensors(val_days, device)
    if not train or not val:
        raise ValueError(
            f"train_gru needs at least one training and one validation date with >= {MIN_DATE_SIZE} samples "
            f"(got {len(train)} and {len(val)})"
        )
    prec = precision.resolve(cfg.precision, device, log)
    with training_run(cfg, n_features, train[0][0].shape[1], seed, device, build) as (model, optimizer, order_rng):
        best_state, best_epoch, best_ic = cpu_state(model), 0, -math.inf
        train_loss, val_ic = [], []
        stale = 0
        for epoch in range(1, cfg.max_epochs + 1):
            train_loss.append(train_epoch(model, optimizer, train, order_rng, prec))
            with precision.autocast(prec):
                val_ic.append(_validation_ic(model, val))
            if log:
                log(f"epoch {epoch}: train loss {train_loss[-1]:.4f}, val IC {val_ic[-1]:.4f}")
            if progress:
                progress(epoch, cfg.max_epochs, val_ic[-1])
            if val_ic[-1] > best_ic:
                best_state, best_epoch, best_ic, stale = cpu_state(model), epoch, val_ic[-1], 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    if log:
                        log(f"early stop after epoch {epoch}: no better val IC for {cfg.patience} epochs")
                    break
    return TrainResult(best_state, len(val_ic), best_epoch, best_ic, train_loss, val_ic, prec.describe())


def predict(
    state_dict: dict, X: np.ndarray, cfg: ModelConfig, n_features: int, batch_size: int = 4096, build: Build = build_model
) -> np.ndarray:
    """pRet for every sample of X [N, T, F], float64 [N].

    An ensemble's pRet is the mean of its members' predictions, each z-scored over X first: the IC loss
    fixes neither a member's scale nor its offset, so raw outputs would weight members arbitrarily. X is
    therefore meant to be one date's cross-section, as the pipeline passes it.
    """
    members = unpack_ensemble(state_dict)
    if len(members) > 1:
        return np.mean([zscore(_predict_one(m, X, cfg, n_features, batch_size, build)) for m in members], axis=0)
    return _predict_one(members[0], X, cfg, n_features, batch_size, build)


def _predict_one(state_dict: dict, X: np.ndarray, cfg: ModelConfig, n_features: int, batch_size: int, build: Build) -> np.ndarray:
    device = resolve_device(cfg.device)
    model = build(cfg, n_features, X.shape[1])
    model.load_state_dict(state_dict)
    model.to(device).eval()
    out = np.empty(len(X), dtype=np.float64)
    with torch.inference_mode(), precision.autocast(precision.resolve(cfg.precision, device)):
        for start in range(0, len(X), batch_size):
            batch = torch.as_tensor(np.asarray(X[start : start + batch_size], dtype=np.float32), device=device)
            out[start : start + len(batch)] = model(batch).double().cpu().numpy()
    return out



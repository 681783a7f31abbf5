"""Reduced precision for the GRU and the GAN: ``model.precision`` = ``fp32`` or ``bf16``.

``bf16`` runs matmuls and convolutions in bfloat16 (torch.autocast) where the hardware does bfloat16
arithmetic natively: CPUs with AVX512-BF16 or AMX, and CUDA devices that report bf16 support. Elsewhere
bfloat16 is emulated and slower than float32, so the request falls back to ``fp32`` with a log line.
The recurrent state, the gate arithmetic, the loss, the optimiser and the weights stay float32; only
the operands of the matmuls are rounded (the fused CPU GRU in gru_cpu.py does this explicitly, since
autocast does not see inside its autograd Function).

What was asked and what ran are both reported (``describe``), in checkpoint sidecars and asset
metadata, because a checkpoint is reproducible only for the precision it was trained in.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16")
_CPUINFO = Path("/proc/cpuinfo")
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set[str]:
    try:
        for line in _CPUINFO.read_text(encoding="utf-8").splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def cpu_bf16_support() -> str | None:
    """The CPU feature that makes bfloat16 native here ("avx512_bf16", "amx_bf16"), or None.

    torch.backends.cpu.get_cpu_capability() reports the vector ISA torch dispatches to but not whether
    it has the bf16 dot-product instructions (an AVX512 Skylake lacks them), so the CPU flags decide,
    and oneDNN's own check is the fallback where /proc/cpuinfo is unavailable.
    """
    flags = _cpu_flags()
    for flag in reversed(_NATIVE_BF16_FLAGS):  # prefer naming AMX when both are present
        if flag in flags:
            return flag
    if not flags and hasattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported"):
        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return "onednn"
        except RuntimeError:
            pass
    return None


def cuda_bf16_support(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass(frozen=True)
class Precision:
    requested: str
    effective: str  # what actually runs: "bf16" only where native, else "fp32"
    device: str
    reason: str

    @property
    def bf16(self) -> bool:
        return self.effective == "bf16"

    @property
    def recurrent(self) -> str:
        """What the GRU layers run in. On CUDA, autocast would hand nn.GRU to cuDNN's RNN autocast wrapper,
        which casts to float16 whatever dtype autocast asks for (and float16 gradients of an IC loss underflow
        without a GradScaler), so there the layers run in float32 outside autocast and only the MLP is bf16."""
        return "bf16" if self.bf16 and self.device == "cpu" else "fp32"

    def describe(self) -> dict:
        return {
            "precision_requested": self.requested,
            "precision": self.effective,
            "precision_reason": self.reason,
            "recurrent_precision": self.recurrent,
            "device": self.device,
        }


def resolve(requested: str, device: torch.device, log: Callable[[str], None] | None = None) -> Precision:
    """What ``requested`` becomes on ``device``; logs a line when bf16 falls back to fp32."""
    if requested not in PRECISIONS:
        raise ValueError(f"model.precision={requested!r} is not one of {PRECISIONS}")
    if requested == "fp32":
        return Precision("fp32", "fp32", device.type, "requested")
    if device.type == "cuda":
        native = "cuda bf16" if cuda_bf16_support(device) else None
    else:
        native = cpu_bf16_support()
    if native:
        return Precision("bf16", "bf16", device.type, f"native ({native})")
    reason = f"no native bf16 on this {device.type} (no AVX512-BF16/AMX, or a GPU without bf16): running fp32"
    if log:
        log(f"model.precision=bf16 falls back to fp32: {reason}")
    return Precision("bf16", "fp32", device.type, reason)


def autocast(precision: Precision):
    """The autocast context for ``precision`` (a no-op context for fp32)."""
    if not precision.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=precision.device, dtype=torch.bfloat16)


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The lower precision that autocast is applying on ``device_type`` right now, or None."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None

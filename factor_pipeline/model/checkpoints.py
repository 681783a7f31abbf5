"""Checkpoints: a ``.pt`` file of weights (loaded with ``weights_only=True``) beside a ``.json`` sidecar that
says what produced them; an ensemble is one state dict with a prefix per member."""

from __future__ import annotations

import hashlib
import io
import json
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from factor_pipeline.storage import atomic_path, write_json


def cpu_state(module: nn.Module) -> dict:
    """A detached CPU copy of a module's weights (safe to keep while training goes on)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


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

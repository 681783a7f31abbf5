"""Checkpoints: weights and sidecar written atomically, read back only when intact and as expected."""


from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from factor_pipeline.model.gru import GRUFactorModel
from factor_pipeline.model.checkpoints import (
    CheckpointError,
    load_checkpoint,
    package_versions,
    save_checkpoint,
)

from factor_pipeline_tests.model.test_gru import SMOKE


def test_package_versions():
    versions = package_versions()
    assert set(versions) == {"torch", "numpy", "pandas", "python"}
    assert versions["torch"] == torch.__version__


@pytest.fixture
def checkpoint(tmp_path):
    state = GRUFactorModel(18, (8, 8), (8,)).state_dict()
    sidecar = {"model": dataclasses.asdict(SMOKE), "versions": package_versions()}
    path = tmp_path / "ckpt" / "2024-06"
    save_checkpoint(path, state, sidecar)
    return path, state, sidecar


def test_checkpoint_round_trip(checkpoint):
    path, state, sidecar = checkpoint
    assert sorted(p.name for p in path.parent.iterdir()) == ["2024-06.json", "2024-06.pt"]  # no temp files left
    loaded, meta = load_checkpoint(path, expected={"model": dataclasses.asdict(SMOKE)})
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert meta["versions"] == sidecar["versions"] and len(meta["weights_sha256"]) == 64
    model = GRUFactorModel(18, (8, 8), (8,))
    model.load_state_dict(loaded)  # loads into the architecture that made it


def test_checkpoint_config_mismatch(checkpoint):
    path, _, _ = checkpoint
    other = dataclasses.asdict(dataclasses.replace(SMOKE, gru_hidden=(32, 32)))
    with pytest.raises(CheckpointError, match="different model") as err:
        load_checkpoint(path, expected={"model": other})
    assert str(path.with_suffix(".json")) in str(err.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_damaged_weights_raise_checkpoint_error(checkpoint, damage):
    path, _, _ = checkpoint
    pt = path.with_suffix(".pt")
    data = pt.read_bytes()
    if damage == "truncate":
        pt.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        pt.write_bytes(b"not a checkpoint" * 10)
    else:
        pt.write_bytes(data[:-200] + bytes(b ^ 0xFF for b in data[-200:]))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(pt) in str(err.value)


def test_damaged_weights_without_hash_still_raise(checkpoint):
    """A sidecar without the hash (hand-written) still gets a CheckpointError, not a raw torch error."""
    path, _, _ = checkpoint
    js, pt = path.with_suffix(".json"), path.with_suffix(".pt")
    meta = json.loads(js.read_text())
    del meta["weights_sha256"]
    js.write_text(json.dumps(meta))
    pt.write_bytes(pt.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cannot be read") as err:
        load_checkpoint(path)
    assert str(pt) in str(err.value)


@pytest.mark.parametrize("missing", [".pt", ".json"])
def test_missing_file_raises_checkpoint_error(checkpoint, missing):
    path, _, _ = checkpoint
    path.with_suffix(missing).unlink()
    with pytest.raises(CheckpointError, match="missing") as err:
        load_checkpoint(path)
    assert str(path.with_suffix(missing)) in str(err.value)


def test_corrupt_sidecar_raises_checkpoint_error(checkpoint):
    path, _, _ = checkpoint
    path.with_suffix(".json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)

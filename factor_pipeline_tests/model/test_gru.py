"""The GRU factor model: shapes, the fused CPU GRU, the IC loss, training, determinism, checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from factor_pipeline.config import ModelConfig
from factor_pipeline.model import gru
from factor_pipeline.model.gru import GRUFactorModel, ic_loss, predict, resolve_device, train_gru
from factor_pipeline.model.checkpoints import save_checkpoint

SMOKE = ModelConfig(gru_hidden=(16, 16), mlp_hidden=(32, 16, 16), lr=3e-3, max_epochs=6, patience=3, device="cpu")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def planted_days(n_dates=20, n=200, seed=0, signal=True):
    """Random windows; the label rewards rises of feature 3 over its last steps (nonlinear in x) + noise."""
    rng = np.random.default_rng(seed)
    days = []
    for _ in range(n_dates):
        X = rng.standard_normal((n, 40, 18)).astype(np.float32)
        f = X[:, :, 3]
        y = 0.5 * rng.standard_normal(n)
        if signal:
            y += (f[:, -1] > f[:, -2]) + 0.5 * (f[:, -2] > f[:, -3])
        days.append((X, y.astype(np.float32)))
    return days


@pytest.fixture(scope="module")
def trained():
    days = planted_days()
    logs = []
    result = train_gru(days[:16], days[16:], SMOKE, n_features=18, seed=1, log=logs.append)
    return days, result, logs


def test_forward_shape_and_layers():
    model = GRUFactorModel(18, (16, 24), (32, 8))
    out = model(torch.randn(7, 40, 18))
    assert out.shape == (7,)
    assert [g.hidden_size for g in model.grus] == [16, 24]
    linears = [m for m in model.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(24, 32), (32, 8), (8, 1)]


def test_ic_loss_is_negative_pearson():
    rng = np.random.default_rng(3)
    p, t = rng.standard_normal(500), rng.standard_normal(500)
    t = t + 0.7 * p
    loss = ic_loss(torch.tensor(p, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)).item()
    assert loss == pytest.approx(-np.corrcoef(p, t)[0, 1], abs=1e-5)
    assert loss < -0.3


def test_ic_loss_sign_and_affine_invariance():
    t = torch.randn(300)
    p = t + 0.5 * torch.randn(300)
    base = ic_loss(p, t).item()
    assert ic_loss(t, t).item() == pytest.approx(-1.0, abs=1e-5)
    assert ic_loss(-t, t).item() == pytest.approx(1.0, abs=1e-5)
    assert ic_loss(3.0 * p + 5.0, t).item() == pytest.approx(base, abs=1e-5)
    assert ic_loss(0.5 * p - 2.0, t).item() == pytest.approx(base, abs=1e-5)
    assert ic_loss(-2.0 * p + 1.0, t).item() == pytest.approx(-base, abs=1e-5)


def test_ic_loss_constant_prediction_is_finite():
    p = torch.full((50,), 0.3, requires_grad=True)
    loss = ic_loss(p, torch.randn(50))
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(p.grad).all()


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


def test_training_learns_planted_signal(trained):
    days, result, logs = trained
    assert result.best_val_ic > 0.2
    assert result.epochs_run == len(result.val_ic) == len(result.train_loss)
    assert result.best_val_ic == max(result.val_ic)
    assert result.best_epoch == int(np.argmax(result.val_ic)) + 1
    assert result.train_loss[-1] < result.train_loss[0]
    assert logs[0].startswith("epoch 1: train loss ") and "val IC" in logs[0]


def test_returned_weights_are_the_best_epoch(trained):
    days, result, _ = trained
    ics = [np.corrcoef(predict(result.state_dict, X, SMOKE, 18), y)[0, 1] for X, y in days[16:]]
    assert np.mean(ics) == pytest.approx(result.best_val_ic, abs=1e-4)


def test_predict_shape_dtype_and_batching(trained):
    days, result, _ = trained
    X = days[0][0][:50]
    full = predict(result.state_dict, X, SMOKE, 18)
    small = predict(result.state_dict, X, SMOKE, 18, batch_size=7)
    assert full.shape == (50,) and full.dtype == np.float64
    np.testing.assert_allclose(full, small, rtol=1e-5, atol=1e-6)
    assert full.std() > 0


def test_early_stopping_on_noise():
    days = planted_days(n_dates=6, n=100, seed=5, signal=False)
    cfg = dataclasses.replace(SMOKE, max_epochs=10, patience=2)
    result = train_gru(days[:4], days[4:], cfg, 18, seed=0)
    assert result.epochs_run < cfg.max_epochs
    assert result.epochs_run == result.best_epoch + cfg.patience


def test_training_is_deterministic_and_leaves_global_state(tmp_path):
    days = planted_days(n_dates=5, n=80, seed=2)
    cfg = dataclasses.replace(SMOKE, max_epochs=2)
    rng_before = torch.get_rng_state()
    det_before = torch.are_deterministic_algorithms_enabled()
    a = train_gru(days[:4], days[4:], cfg, 18, seed=11)
    b = train_gru(days[:4], days[4:], cfg, 18, seed=11)
    c = train_gru(days[:4], days[4:], cfg, 18, seed=12)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.are_deterministic_algorithms_enabled() == det_before
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.val_ic == b.val_ic and a.train_loss == b.train_loss
    assert not all(torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)
    save_checkpoint(tmp_path / "a", a.state_dict, {"seed": 11})
    save_checkpoint(tmp_path / "b", b.state_dict, {"seed": 11})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_deterministic_mode_does_not_fill_new_memory_with_nan_and_restores_the_switch():
    """The fused layers write every element they allocate, so the NaN fill of deterministic mode is pure cost."""
    before = torch.utils.deterministic.fill_uninitialized_memory
    with gru.deterministic(torch.device("cpu"), seed=0):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
    assert torch.utils.deterministic.fill_uninitialized_memory is before
    torch.utils.deterministic.fill_uninitialized_memory = not before
    try:
        with gru.deterministic(torch.device("cpu"), seed=0):
            assert torch.utils.deterministic.fill_uninitialized_memory is False
        assert torch.utils.deterministic.fill_uninitialized_memory is (not before)
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = before

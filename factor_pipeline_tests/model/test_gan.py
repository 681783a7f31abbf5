"""The GAN stage: losses against hand-computed values, shapes, training in both modes, persistence."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from factor_pipeline.config import GanConfig
from factor_pipeline.model.gan import (
    SequenceDiscriminator,
    SequenceGenerator,
    discriminator_loss,
    generate,
    generator_loss,
    load_gan,
    save_gan,
    similarity_table,
    train_gan,
    transform,
)
from factor_pipeline.model.checkpoints import CheckpointError, save_checkpoint

SMOKE = GanConfig(mode="augment", steps=30, noise_dim=8, generator_hidden=16, discriminator_channels=(4, 8), batch_size=64)
NAMES = [f"f{i}" for i in range(18)]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def ar1_windows(n=400, phi=0.8, seed=0):
    """Standardised AR(1) windows: real data with temporal structure, plus a label tied to the last step."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, 40, 18))
    X = np.empty_like(e)
    X[:, 0] = e[:, 0]
    for t in range(1, 40):
        X[:, t] = phi * X[:, t - 1] + math.sqrt(1 - phi**2) * e[:, t]
    y = X[:, -1, 0] + rng.standard_normal(n)
    return X.astype(np.float32), ((y - y.mean()) / y.std()).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    return ar1_windows()


@pytest.fixture(scope="module")
def augment_result(data):
    X, y = data
    return train_gan(X, y, SMOKE, seed=3)


def test_losses_at_zero_logits():
    zero = torch.zeros(10)
    assert generator_loss(zero).item() == pytest.approx(math.log(2))
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))


def test_losses_at_known_probabilities():
    # D(x) = 0.75 for the real batch, D(G(z)) = 0.25 for the fake batch
    real = torch.full((4,), math.log(3.0))
    fake = torch.full((4,), -math.log(3.0))
    assert discriminator_loss(real, fake).item() == pytest.approx(-2 * math.log(0.75), rel=1e-6)
    assert generator_loss(fake).item() == pytest.approx(-math.log(0.25), rel=1e-6)
    mixed = torch.tensor([0.0, math.log(3.0)])  # mean of -log 0.5 and -log 0.75
    assert generator_loss(mixed).item() == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2, rel=1e-6)


def test_losses_are_stable_at_extreme_logits():
    big = torch.tensor([100.0, -100.0], requires_grad=True)
    g = generator_loss(big)
    d_wrong = discriminator_loss(torch.tensor([-100.0]), torch.tensor([100.0]))
    d_right = discriminator_loss(torch.tensor([100.0]), torch.tensor([-100.0]))
    assert g.item() == pytest.approx(50.0, rel=1e-6)  # (0 + 100) / 2
    assert d_wrong.item() == pytest.approx(200.0, rel=1e-6)
    assert 0.0 <= d_right.item() < 1e-30
    g.backward()
    assert torch.isfinite(big.grad).all()
    assert big.grad[1].item() == pytest.approx(-0.5)


def test_generator_and_discriminator_shapes():
    z = torch.randn(5, 40, 8)
    seq, label = SequenceGenerator("augment", 8, 16)(z)
    assert seq.shape == (5, 40, 18) and label.shape == (5,)
    x = torch.randn(5, 40, 18)
    out, _ = SequenceGenerator("transform", 8, 16, residual_scale=0.1)(z, x)
    assert out.shape == x.shape
    assert (out - x).abs().max().item() <= 0.1 + 1e-6  # a bounded residual on the real window
    assert SequenceDiscriminator((4, 8))(x).shape == (5,)
    assert SequenceDiscriminator((4, 8), with_label=True)(x, label).shape == (5,)
    with pytest.raises(ValueError):
        SequenceGenerator("transform", 8, 16)(z)


def test_train_augment_runs_and_is_deterministic(data, augment_result):
    X, y = data
    a = augment_result
    assert a.steps_run == len(a.g_loss) == len(a.d_loss) == SMOKE.steps
    assert a.stop_reason == "max_steps"
    assert np.isfinite(a.g_loss).all() and np.isfinite(a.d_loss).all()
    b = train_gan(X, y, SMOKE, seed=3)
    assert a.g_loss == b.g_loss and a.d_loss == b.d_loss
    for mine, theirs in ((a.generator_state, b.generator_state), (a.discriminator_state, b.discriminator_state)):
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    c = train_gan(X, y, SMOKE, seed=4)
    assert c.d_loss != a.d_loss


def test_generate_shapes_finite_and_seeded(augment_result):
    seq, label = generate(augment_result, SMOKE, 70, seed=1)
    assert seq.shape == (70, 40, 18) and seq.dtype == np.float32
    assert label.shape == (70,) and label.dtype == np.float32
    assert np.isfinite(seq).all() and np.isfinite(label).all()
    again, _ = generate(augment_result, SMOKE, 70, seed=1)
    other, _ = generate(augment_result, SMOKE, 70, seed=2)
    assert np.array_equal(seq, again) and not np.array_equal(seq, other)
    assert generate(augment_result, SMOKE, 0, seed=1)[0].shape == (0, 40, 18)
    with pytest.raises(ValueError):
        generate(augment_result, dataclasses.replace(SMOKE, mode="transform"), 5, seed=1)


def test_train_transform_and_apply(data):
    X, _ = data
    cfg = dataclasses.replace(SMOKE, mode="transform")
    a = train_gan(X, None, cfg, seed=5)
    b = train_gan(X, None, cfg, seed=5)
    assert a.d_loss == b.d_loss and np.isfinite(a.g_loss).all()
    out = transform(a, cfg, X[:33])
    assert out.shape == (33, 40, 18) and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.array_equal(out, transform(b, cfg, X[:33]))  # z = 0: no randomness
    diff = np.abs(out - X[:33])
    assert 0 < diff.max() <= cfg.transform_residual_scale + 1e-6


def test_equilibrium_stop(data):
    """With a negligible residual, processed windows are real ones: D stays at chance and training stops."""
    X, _ = data
    cfg = dataclasses.replace(SMOKE, mode="transform", steps=300, transform_residual_scale=1e-6)
    result = train_gan(X, None, cfg, seed=0)
    assert result.stop_reason == "equilibrium"
    assert result.steps_run < cfg.steps


def test_bad_arguments(data):
    X, y = data
    with pytest.raises(ValueError, match="labels"):
        train_gan(X, None, SMOKE, seed=0)
    with pytest.raises(ValueError):
        train_gan(X, y, dataclasses.replace(SMOKE, mode="off"), seed=0)


def test_similarity_table(data):
    X, _ = data
    noise = np.random.default_rng(1).standard_normal(X.shape).astype(np.float32) * 2 + 1
    table = similarity_table(X, noise, NAMES)
    assert list(table.columns) == [
        "feature",
        "mean_real",
        "mean_generated",
        "std_real",
        "std_generated",
        "acf1_real",
        "acf1_generated",
    ]
    assert list(table["feature"]) == NAMES
    np.testing.assert_allclose(table["mean_real"], X.mean(axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(table["std_generated"], noise.std(axis=(0, 1)), rtol=1e-5)
    assert (table["mean_generated"].between(0.9, 1.1)).all()
    # AR(1) with phi 0.8 (a 40-step sample's estimate is biased a little down) vs white noise
    assert (table["acf1_real"] > 0.6).all()
    assert (table["acf1_generated"].abs() < 0.1).all()


def test_save_load_round_trip(tmp_path, augment_result):
    path = tmp_path / "gan" / "abc"
    save_gan(path, augment_result, {"gan": dataclasses.asdict(SMOKE)})
    state, meta = load_gan(path, expected={"gan": dataclasses.asdict(SMOKE)})
    assert meta["steps_run"] == augment_result.steps_run and meta["stop_reason"] == "max_steps"
    g = augment_result.generator_state
    assert all(torch.equal(state["generator"][k], g[k]) for k in g)
    assert np.array_equal(generate(state, SMOKE, 10, seed=1)[0], generate(augment_result, SMOKE, 10, seed=1)[0])
    with pytest.raises(CheckpointError, match="different gan"):
        load_gan(path, expected={"gan": dataclasses.asdict(dataclasses.replace(SMOKE, noise_dim=4))})
    path.with_suffix(".pt").write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_gan(path)


def test_load_gan_rejects_a_model_checkpoint(tmp_path):
    path = tmp_path / "model"
    save_checkpoint(path, {"w": torch.zeros(2)}, {})
    with pytest.raises(CheckpointError, match="not a GAN checkpoint"):
        load_gan(path)

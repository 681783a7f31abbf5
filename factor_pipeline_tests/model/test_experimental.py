"""The options measured and rejected, kept for the bench in model/experimental.py: side inputs, linear reads,
the refit, a shorter window; and the production model and fingerprints unchanged by their leaving."""

import numpy as np
import pandas as pd
import pytest
import torch

from factor_pipeline.config import RETIRED_MODEL_FIELDS, ConfigError, profile_config, seed_training
from factor_pipeline.model import checkpoints, gru, training
from factor_pipeline.model import experimental as exp
from factor_pipeline.model.experimental import experimental
from factor_pipeline_tests.model.test_training_options import _tiny_batches


def test_retired_options_keep_the_production_fingerprint_and_the_experimental_model_matches_production(torch_one_thread):
    cfg = profile_config("smoke")
    assert all(not hasattr(cfg.model, name) for name in RETIRED_MODEL_FIELDS)
    assert {k: cfg.to_dict()["model"][k] for k in RETIRED_MODEL_FIELDS} == RETIRED_MODEL_FIELDS
    # At their production values the experimental config fingerprints, trains and predicts as production.
    at_production = experimental(cfg)
    assert at_production.fingerprint() == cfg.fingerprint() and at_production.to_dict() == cfg.to_dict()
    assert experimental(cfg, refit=True).fingerprint() != cfg.fingerprint()
    train, val = _tiny_batches(0), _tiny_batches(1, n_dates=2)
    small = cfg.replace(model={"max_epochs": 2, "patience": 2})
    ours, _ = training.train_members(train, val, small)
    theirs, _ = exp.train_members(train, val, experimental(small))
    assert [torch.equal(a, b) for a, b in zip(ours.values(), theirs.values())] == [True] * len(ours)
    np.testing.assert_array_equal(gru.predict(ours, val[0][0], small.model, 18), exp.predict(theirs, val[0][0], small))


def test_experimental_options_are_typed_and_validated():
    with pytest.raises(ConfigError, match="inputs"):
        experimental(profile_config("smoke"), inputs="raw")
    with pytest.raises(ConfigError, match="side_at"):
        experimental(profile_config("smoke"), side_at="tail")
    with pytest.raises(TypeError):
        profile_config("smoke").replace(model={"refit": True})  # production has no such field


def test_scale_steps_appends_all_eleven_step_channels_as_stored():
    X = np.zeros((2, 40, 18), np.float32)
    steps = np.arange(2 * 40 * 11, dtype=np.float32).reshape(2, 40, 11)
    out = exp.model_input(X, steps, None, experimental(profile_config("smoke"), inputs="scale_steps"))
    assert out.shape == (2, 40, 29) and np.array_equal(out[..., 18:], steps)


def test_scale_inputs_add_the_side_columns_at_every_step():
    from factor_pipeline.features.samples import SIDE_COLUMNS

    cfg = experimental(seed_training(profile_config("smoke")), inputs="scale_all")
    X = np.zeros((3, 40, 18), dtype=np.float32)
    side = np.arange(3 * len(SIDE_COLUMNS), dtype=np.float32).reshape(3, -1)
    samples = pd.DataFrame(side, columns=list(SIDE_COLUMNS))
    out = exp.model_input(X, None, samples, cfg)
    assert out.shape == (3, 40, 18 + len(SIDE_COLUMNS))
    assert np.array_equal(out[:, 7, 18:], side) and np.array_equal(out[:, 0, 18:], side)
    # "scale" leaves out the price and size levels, whose window statistics identify a stock.
    state = exp.model_input(X, None, samples, cfg.replace(model={"inputs": "scale"}))
    levels = {"close", "open", "high", "low", "vwap", "volume", "amount"}
    kept = [i for i, c in enumerate(SIDE_COLUMNS) if c.split("_", 1)[1] not in levels]
    assert state.shape == (3, 40, 18 + 22) and len(kept) == 22
    assert np.array_equal(state[:, 5, 18:], side[:, kept])
    assert exp.model_input(X, None, samples, seed_training(profile_config("smoke"))) is X
    with pytest.raises(Exception, match="side inputs"):
        exp.model_input(X, None, pd.DataFrame(index=range(3)), cfg)


def test_side_inputs_at_the_head_skip_the_gru():
    cfg = experimental(seed_training(profile_config("smoke")), inputs="scale", side_at="head")
    net = exp.build(cfg.model, 18 + 22)
    assert net.grus[0].input_size == 18 and net.head_side == 22
    x = torch.randn(5, 40, 18 + 22)
    out = net(x)
    # Side channels are read at the last step only: changing them earlier changes nothing.
    earlier = x.clone()
    earlier[:, :-1, 18:] = 0.0
    assert torch.equal(net(earlier), out)
    changed = x.clone()
    changed[:, -1, 18:] += 1.0
    assert not torch.allclose(net(changed), out)
    assert exp.build(cfg.replace(model={"side_at": "gru"}).model, 40).grus[0].input_size == 40


def test_linear_skip_reads_the_step_channels_over_the_whole_window(torch_one_thread):
    cfg = experimental(profile_config("smoke"), step_channels=("ret",), linear_skip=True)
    net = exp.build(cfg.model, 19, seq_len=40)
    assert net.skip is not None and net.skip.in_features == 40
    assert exp.build(cfg.replace(model={"linear_skip": False}).model, 19).skip is None
    x = torch.randn(4, 40, 19)
    with torch.no_grad():
        net.skip.weight.zero_()
        base = net(x)
        net.skip.weight[0, 39] = 2.0  # the last step of the step channel
        assert torch.allclose(net(x) - base, 2.0 * x[:, 39, 18], atol=1e-6)


def test_refit_trains_each_member_again_on_every_date_for_the_chosen_epochs(torch_one_thread):
    base = profile_config("smoke").replace(model={"max_epochs": 3, "patience": 2})
    cfg = experimental(base, refit=True, ensemble=2)
    train, val = _tiny_batches(0), _tiny_batches(1, n_dates=2)
    every = train + _tiny_batches(2, n_dates=1) + val  # training, purged and validation dates
    with pytest.raises(ValueError, match="every date"):
        exp.train_members(train, val, cfg)
    state, results = exp.train_members(train, val, cfg, every_date=every)
    members = checkpoints.unpack_ensemble(state)
    for i, (member, result) in enumerate(zip(members, results)):
        early, _ = training.train_members(train, val, base.replace(model={"seed": base.model.seed + i}))
        assert all(torch.equal(early[k], result.state_dict[k]) for k in early)  # the early-stopped fit is unchanged
        refit = exp.fixed_fit(every, cfg.model, 18, base.model.seed + i, max(1, result.best_epoch))
        assert all(torch.equal(member[k], refit.state_dict[k]) for k in member)
        assert refit.epochs_run == max(1, result.best_epoch) and not refit.val_ic
    again, _ = exp.train_members(train, val, cfg, every_date=every)
    assert all(torch.equal(again[k], state[k]) for k in state)


def test_window_steps_keeps_the_last_steps_of_the_window_and_its_step_channels():
    X = np.arange(2 * 40 * 18, dtype=np.float32).reshape(2, 40, 18)
    steps = -np.arange(2 * 40 * 11, dtype=np.float32).reshape(2, 40, 11)
    cfg = experimental(profile_config("smoke"), window_steps=20, step_channels=("ret",), step_neutralize=())
    out = exp.model_input(X, steps, None, cfg)
    assert out.shape == (2, 20, 19)
    assert np.array_equal(out[:, :, :18], X[:, 20:]) and np.array_equal(out[:, -1, 18], steps[:, -1, 1])
    with pytest.raises(ValueError, match="step channels"):
        exp.model_input(X, None, None, cfg)
    with pytest.raises(ConfigError, match="window_steps"):
        exp.model_input(X, steps, None, cfg.replace(model={"window_steps": 41}))
    with pytest.raises(ConfigError, match="window_steps"):
        cfg.replace(model={"window_steps": -1})


def test_scale_vol_adds_only_the_log_volatilities_and_a_linear_side_read_is_added_to_the_output():
    from factor_pipeline.features.samples import STATE_SIDE_COLUMNS

    cfg = experimental(seed_training(profile_config("smoke")), inputs="scale_vol", side_at="linear")
    vol_columns = [c for c in STATE_SIDE_COLUMNS if c.startswith("logvol_")]
    samples = pd.DataFrame(np.ones((2, len(STATE_SIDE_COLUMNS))), columns=list(STATE_SIDE_COLUMNS))
    assert exp.model_input(np.zeros((2, 40, 18), np.float32), None, samples, cfg).shape == (2, 40, 18 + len(vol_columns))
    net = exp.build(cfg.model, 18 + 11)
    assert net.grus[0].input_size == 18 and net.mlp[0].in_features == cfg.model.gru_hidden[-1]
    x = torch.randn(4, 40, 18 + 11)
    shifted = x.clone()
    shifted[:, -1, 18:] += 1.0
    # Linear in the side inputs: the output moves by the sum of the read's weights.
    with torch.no_grad():
        np.testing.assert_allclose((net(shifted) - net(x)).numpy(), net.side_read.weight.sum().item(), rtol=1e-4)


def test_step_channels_enter_the_gru_and_side_inputs_at_the_head_stay_after_them():
    cfg = profile_config("smoke").replace(model={"step_channels": ("ret", "intraday_ret", "overnight_ret")})
    head = experimental(cfg, inputs="scale", side_at="head")
    net = exp.build(head.model, 21 + 22)
    assert net.grus[0].input_size == 21 and net.head_side == 22

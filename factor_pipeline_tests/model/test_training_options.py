"""The measured training options: purged split, label transforms, augment within a date, ensembles, step channels."""

import numpy as np
import pandas as pd
import pytest
import torch

from factor_pipeline.model import checkpoints, gru
from factor_pipeline.market import session_calendar
from factor_pipeline.model import inputs, training
from factor_pipeline.config import SEED_TRAINING, ConfigError, profile_config, seed_training


def _window_data(cfg, train_month="2024-06", n_stocks=12, n_side=0):
    """A synthetic labelled cross-section on every training date of the month's window."""
    dates = training.training_dates(train_month, cfg)
    rng = np.random.default_rng(0)
    samples = pd.DataFrame(
        {
            "trade_date": np.repeat(dates.values, n_stocks),
            "ts_code": np.tile([f"{i:06d}.SZ" for i in range(n_stocks)], len(dates)),
        }
    )
    X = rng.normal(size=(len(samples), 40, 18 + n_side)).astype(np.float32)
    labels = rng.standard_t(3, size=len(samples)) * 0.1
    return training.group_training_data(train_month, samples, X, labels, cfg), dates


@pytest.mark.parametrize("profile", ["smoke", "demo", "full"])
def test_purged_split_leaves_no_validation_label_window_overlapping_a_training_one(profile):
    cfg = profile_config(profile)
    data, _ = _window_data(cfg)
    horizon = cfg.samples.label_horizon
    train_dates, val_dates = data.dates[: data.n_train], data.dates[data.val_start :]
    assert data.n_gap == -(-horizon // cfg.samples.sample_every)
    assert len(val_dates) == data.n_val and data.n_train >= 1
    # A label window is (t, t + horizon sessions]; two windows are disjoint when one ends by the other's start.
    last_train_end = session_calendar.session_offset(train_dates[-1], horizon)
    assert last_train_end <= val_dates[0]
    assert all(session_calendar.session_offset(t, horizon) <= v for t in train_dates for v in val_dates)


def test_the_seed_preset_keeps_the_seeds_adjacent_split_which_overlaps():
    cfg = seed_training(profile_config("demo"))
    data, _ = _window_data(cfg)
    assert data.n_gap == 0 and data.val_start == data.n_train
    last_train_end = session_calendar.session_offset(data.dates[data.n_train - 1], cfg.samples.label_horizon)
    assert last_train_end > data.dates[data.val_start]  # the leak the purge removes


def test_seed_preset_is_the_seeds_training():
    cfg = seed_training(profile_config("full"))
    for name, value in SEED_TRAINING.items():
        assert getattr(cfg.model, name) == value
    assert cfg.model.lr == 1e-4 and cfg.model.train_window_sessions == 400 and cfg.model.gru_hidden == (128, 128)


@pytest.mark.parametrize("how", ["zscore", "winsor", "rank"])
def test_label_transforms_are_standardised_and_keep_the_order(how):
    rng = np.random.default_rng(1)
    raw = rng.standard_t(2, size=300) * 0.05
    raw[0] = 3.0  # a limit run or a post-suspension jump
    y = training.transform_labels(raw, how)
    assert abs(float(y.mean())) < 1e-5 and abs(float(y.std()) - 1) < 1e-4
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(y[order].astype(np.float64)) >= -1e-6)  # monotone in the raw label
    if how == "zscore":
        assert y[0] > 10  # the seed's z-score lets the outlier dominate
    else:
        assert y[0] < 4.0


def test_winsor_clips_at_the_limit_before_restandardising():
    raw = np.r_[np.linspace(-1, 1, 99), 1000.0]
    median = np.median(raw)
    robust_sd = 1.4826 * np.median(np.abs(raw - median))
    clipped = np.clip((raw - median) / robust_sd, -training.WINSOR_LIMIT, training.WINSOR_LIMIT)
    expected = (clipped - clipped.mean()) / clipped.std()
    assert np.allclose(training.transform_labels(raw, "winsor"), expected, atol=1e-5)


def test_rank_labels_are_standardised_average_ranks():
    raw = np.array([0.3, -0.1, 0.3, 5.0, -2.0])
    ranks = np.array([3.5, 2.0, 3.5, 5.0, 1.0])
    expected = (ranks - ranks.mean()) / ranks.std()
    assert np.allclose(training.transform_labels(raw, "rank"), expected, atol=1e-6)


def test_augment_puts_generated_samples_inside_each_dates_label_distribution():
    rng = np.random.default_rng(2)
    train = [(rng.normal(size=(50, 40, 18)).astype(np.float32), training.transform_labels(rng.normal(size=50) * s, "zscore"))
             for s in (1.0, 2.0, 3.0)]
    X_gen = rng.normal(size=(30, 40, 18)).astype(np.float32)
    y_gen = (rng.normal(size=30) * 10 + 50).astype(np.float32)  # a generator far off the dates' scale
    out = training.augment_batches(train, X_gen, y_gen)
    for (X_d, y_d), (X_a, y_a) in zip(train, out):
        assert len(X_a) == len(X_d) + 10 and len(y_a) == len(X_a)
        assert np.array_equal(X_a[: len(X_d)], X_d)
        assert abs(float(y_a.mean())) < 1e-5 and abs(float(y_a.std()) - 1) < 1e-4
        generated = y_a[len(y_d) :]
        real = y_a[: len(y_d)]
        assert real.min() - 1e-6 <= generated.min() and generated.max() <= real.max() + 1e-6
        # The real samples keep their order among themselves.
        assert np.array_equal(np.argsort(real, kind="stable"), np.argsort(y_d, kind="stable"))
    # Each generated label keeps its rank among that date's generated labels.
    chunk = np.array_split(np.arange(30), 3)[0]
    first_generated = out[0][1][50:]
    assert np.array_equal(np.argsort(first_generated, kind="stable"), np.argsort(y_gen[chunk], kind="stable"))


def test_invalid_options_are_rejected():
    cfg = profile_config("smoke")
    for change in ({"label_transform": "log"}, {"ensemble": 0}, {"dropout": 1.0}, {"weight_decay": -1.0}):
        with pytest.raises(ConfigError):
            cfg.replace(model=change)


def _tiny_batches(seed=0, n_dates=4, n=30):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_dates):
        X = rng.normal(size=(n, 6, 18)).astype(np.float32)
        y = training.transform_labels(X[:, -1, 0] + 0.5 * rng.normal(size=n), "zscore")
        out.append((X, y))
    return out


def test_an_ensemble_is_its_members_trained_from_consecutive_seeds_and_averaged(torch_one_thread):
    base = profile_config("smoke").replace(model={"max_epochs": 2, "patience": 2})
    cfg = base.replace(model={"ensemble": 2})
    train, val = _tiny_batches(0), _tiny_batches(1, n_dates=2)
    state, results = training.train_members(train, val, cfg)
    assert len(results) == 2 and len(checkpoints.unpack_ensemble(state)) == 2
    single_7, _ = training.train_members(train, val, base)
    single_8, _ = training.train_members(train, val, base.replace(model={"seed": base.model.seed + 1}))
    members = checkpoints.unpack_ensemble(state)
    for member, single in zip(members, (single_7, single_8)):
        assert all(torch.equal(member[k], single[k]) for k in single)
    X = val[0][0]
    p7 = gru.predict(single_7, X, base.model, n_features=18)
    p8 = gru.predict(single_8, X, base.model, n_features=18)
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
    assert np.allclose(gru.predict(state, X, cfg.model, n_features=18), (z(p7) + z(p8)) / 2)
    again, _ = training.train_members(train, val, cfg)
    assert all(torch.equal(again[k], state[k]) for k in state)  # deterministic


def test_dropout_and_weight_decay_change_training_but_not_the_seeds_weights_layout(torch_one_thread):
    base = profile_config("smoke").replace(model={"max_epochs": 2, "patience": 2})
    train, val = _tiny_batches(0), _tiny_batches(1, n_dates=2)
    plain, _ = training.train_members(train, val, base)
    assert isinstance(gru.optimizer_for(torch.nn.Linear(2, 1), base.model), torch.optim.Adam)
    decayed_cfg = base.replace(model={"weight_decay": 0.1})
    assert isinstance(gru.optimizer_for(torch.nn.Linear(2, 1), decayed_cfg.model), torch.optim.AdamW)
    decayed, _ = training.train_members(train, val, decayed_cfg)
    dropped, _ = training.train_members(train, val, base.replace(model={"dropout": 0.5}))
    assert set(decayed) == set(plain)
    assert not all(torch.equal(decayed[k], plain[k]) for k in plain)
    assert any(isinstance(m, torch.nn.Dropout) for m in gru.build_model(base.replace(model={"dropout": 0.5}).model, 18).modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in gru.build_model(base.model, 18).modules())
    assert len(dropped) == len(plain)


def test_the_seed_preset_is_one_environment_switch_away(monkeypatch, tmp_path):
    from factor_pipeline.pipeline.resources import PipelineResource

    monkeypatch.setenv("FACTOR_PIPELINE_HOME", str(tmp_path))
    monkeypatch.delenv("FACTOR_PIPELINE_TRAINING", raising=False)
    default = PipelineResource.from_env().config
    monkeypatch.setenv("FACTOR_PIPELINE_TRAINING", "seed")
    seeded = PipelineResource.from_env().config
    assert seeded == seed_training(default)
    assert any(getattr(default.model, k) != v for k, v in SEED_TRAINING.items())  # the default does depart
    monkeypatch.setenv("FACTOR_PIPELINE_TRAINING", "fast")
    with pytest.raises(ConfigError, match="FACTOR_PIPELINE_TRAINING"):
        PipelineResource.from_env().config


def test_step_channels_join_the_window_in_their_configured_order():
    from factor_pipeline.config import STEP_CHANNELS
    from factor_pipeline.features.samples import STATE_FEATURES

    assert STEP_CHANNELS == STATE_FEATURES  # config's list of allowed names is the features module's
    X = np.zeros((3, 40, 18), dtype=np.float32)
    steps = np.arange(3 * 40 * len(STATE_FEATURES), dtype=np.float32).reshape(3, 40, -1)
    plain = seed_training(profile_config("smoke"))
    assert inputs.model_input(X, steps, None, plain) is X
    cfg = plain.replace(model={"step_channels": ("overnight_ret", "ret")})
    out = inputs.model_input(X, steps, None, cfg)
    assert out.shape == (3, 40, 20) and out.dtype == np.float32
    assert np.array_equal(out[..., 18], steps[..., STATE_FEATURES.index("overnight_ret")])
    assert np.array_equal(out[..., 19], steps[..., STATE_FEATURES.index("ret")])
    for bad in (("close",), ("ret", "ret")):  # a price level is no step channel; no repeats
        with pytest.raises(ConfigError, match="step_channels"):
            plain.replace(model={"step_channels": bad})


def test_step_channels_enter_the_gru():
    cfg = profile_config("smoke").replace(model={"step_channels": ("ret", "intraday_ret", "overnight_ret")})
    assert gru.build_model(cfg.model, 21).grus[0].input_size == 21


def test_training_with_step_channels_is_deterministic(torch_one_thread):
    cfg = profile_config("smoke").replace(model={"max_epochs": 2, "patience": 2, "step_channels": ("ret",)})
    rng = np.random.default_rng(3)
    batches = [(rng.normal(size=(30, 6, 19)).astype(np.float32), rng.normal(size=30).astype(np.float32)) for _ in range(5)]
    a, _ = training.train_members(batches[:3], batches[3:], cfg)
    b, _ = training.train_members(batches[:3], batches[3:], cfg)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert gru.predict(a, batches[4][0], cfg.model, n_features=19).shape == (30,)


def test_a_shorter_training_label_reaches_closer_to_the_training_date_and_purges_less():
    cfg = profile_config("demo")
    short = cfg.replace(model={"label_horizon": 10})
    assert training.training_label_horizon(cfg) == 20 and training.training_label_horizon(short) == 10
    end = session_calendar.rebalance_date("2024-06")
    dates, short_dates = training.training_dates("2024-06", cfg), training.training_dates("2024-06", short)
    assert all(session_calendar.session_offset(t, 10) <= end for t in short_dates)  # still realised by the date
    assert session_calendar.session_offset(short_dates[-1], 10 + cfg.samples.sample_every) > end
    assert set(dates) < set(short_dates) and len(short_dates) == len(dates) + 2
    assert training.purge_gap(short) == 2 and training.purge_gap(cfg) == 4
    with pytest.raises(ConfigError, match="label_horizon"):
        cfg.replace(model={"label_horizon": -1})


def test_neutralized_labels_are_orthogonal_to_the_exposures_and_off_by_default():
    rng = np.random.default_rng(3)
    rows = pd.DataFrame(
        {
            "industry": rng.choice(["801010", "801080"], size=30),
            "log_float_mcap": rng.normal(22.0, 1.0, size=30),
            "market_beta": rng.normal(1.0, 0.3, size=30),
        }
    )
    rows.loc[4, "market_beta"] = np.nan  # a missing exposure takes the date's median: no sample is dropped
    y = rng.normal(size=30) + 0.5 * rows["log_float_mcap"].to_numpy()
    assert inputs.exposure_residual(y, rows, ()) is y
    out = inputs.exposure_residual(y, rows, ("industry", "size", "beta"))
    beta = rows["market_beta"].fillna(rows["market_beta"].median()).to_numpy()
    for industry in ("801010", "801080"):
        assert abs(out[rows["industry"].to_numpy() == industry].mean()) < 1e-10
    assert abs(out @ rows["log_float_mcap"].to_numpy()) < 1e-8 and abs(out @ beta) < 1e-8
    # Size only: an intercept and the slope on size, nothing else.
    slope, intercept = np.polyfit(rows["log_float_mcap"], y, 1)
    np.testing.assert_allclose(inputs.exposure_residual(y, rows, ("size",)),
                               y - intercept - slope * rows["log_float_mcap"].to_numpy(), atol=1e-10)
    with pytest.raises(Exception, match="re-materialise the samples"):
        inputs.exposure_residual(y, rows.drop(columns="market_beta"), ("beta",))


def test_step_neutralize_takes_each_dates_industry_mean_out_of_every_step_channel_and_step():
    from factor_pipeline.features.samples import STATE_FEATURES

    rng = np.random.default_rng(5)
    dates = pd.to_datetime(["2024-05-06", "2024-05-13"])
    samples = pd.DataFrame(
        {
            "trade_date": np.repeat(dates, 10),
            "industry": np.tile(["801010"] * 4 + ["801080"] * 6, 2),
        }
    ).sample(frac=1.0, random_state=1).reset_index(drop=True)  # the rows of a date need not be adjacent
    X = rng.normal(size=(20, 40, 18)).astype(np.float32)
    steps = rng.normal(size=(20, 40, len(STATE_FEATURES))).astype(np.float32)
    cfg = profile_config("smoke").replace(model={"step_channels": ("ret", "overnight_ret"), "step_neutralize": ()})
    plain = inputs.model_input(X, steps, None, cfg)
    neutral = inputs.model_input(X, steps, samples, cfg.replace(model={"step_neutralize": ("industry",)}))
    assert np.array_equal(neutral[..., :18], X)
    for j, name in enumerate(("ret", "overnight_ret")):
        frame = pd.DataFrame(steps[..., STATE_FEATURES.index(name)])  # [row, step]
        keys = [samples["trade_date"], samples["industry"]]
        expected = (frame - frame.groupby(keys).transform("mean")).to_numpy()
        np.testing.assert_allclose(neutral[..., 18 + j], expected, atol=1e-5)
        assert not np.allclose(plain[..., 18 + j], neutral[..., 18 + j])
    with pytest.raises(ValueError, match="rows"):
        inputs.model_input(X, steps, None, cfg.replace(model={"step_neutralize": ("industry",)}))
    with pytest.raises(ConfigError, match="step_neutralize"):
        cfg.replace(model={"step_neutralize": ("momentum",)})
    window_only = seed_training(cfg).replace(model={"step_neutralize": ("industry",)})  # nothing to act on
    assert inputs.model_input(X, steps, None, window_only) is X


def test_label_neutralize_changes_the_training_labels_only_when_asked():
    cfg = profile_config("smoke")
    dates = training.training_dates("2024-06", cfg)
    n_stocks = 12
    samples = pd.DataFrame(
        {
            "trade_date": np.repeat(dates.values, n_stocks),
            "ts_code": np.tile([f"{i:06d}.SZ" for i in range(n_stocks)], len(dates)),
            "industry": np.tile(["801010", "801080"] * (n_stocks // 2), len(dates)),
        }
    )
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(samples), 40, 18)).astype(np.float32)
    # One industry runs 20% ahead: ranks within the date change once that is taken out.
    labels = rng.standard_t(3, size=len(samples)) * 0.1 + 0.2 * (samples["industry"].to_numpy() == "801080")
    plain = training.group_training_data("2024-06", samples, X, labels, cfg)
    assert all(np.array_equal(a, training.transform_labels(labels[i * n_stocks : (i + 1) * n_stocks], cfg.model.label_transform))
               for i, a in enumerate(plain.y))
    neutral = training.group_training_data("2024-06", samples, X, labels, cfg.replace(model={"label_neutralize": ("industry",)}))
    industry = samples["industry"].to_numpy()[:n_stocks]
    first = inputs.exposure_residual(labels[:n_stocks], samples.iloc[:n_stocks], ("industry",))
    np.testing.assert_allclose(neutral.y[0], training.transform_labels(first, cfg.model.label_transform))
    assert not np.array_equal(neutral.y[0], plain.y[0]) and len(set(industry)) == 2

import pytest

from factor_pipeline.config import ConfigError, profile_config


def test_full_profile_is_the_seed_exactly():
    cfg = profile_config("full")
    assert cfg.model.gru_hidden == (128, 128)
    assert cfg.model.mlp_hidden == (256, 64, 64)
    assert cfg.model.lr == 1e-4
    assert (cfg.model.max_epochs, cfg.model.patience) == (50, 10)
    assert cfg.model.train_window_sessions == 400
    assert cfg.samples.sample_every == 5 and cfg.model.val_fraction == 0.2
    assert (cfg.samples.seq_len, cfg.samples.n_features, cfg.samples.label_horizon) == (40, 18, 20)
    assert cfg.model.retrain_months == (6, 12)


@pytest.mark.parametrize(
    "section, values, field",
    [
        ("model", {"lr": 2.0}, "model.lr"),
        ("model", {"val_fraction": 1.0}, "model.val_fraction"),
        ("gan", {"mode": "sideways"}, "gan.mode"),
        ("factor", {"n_groups": 1}, "factor.n_groups"),
        ("model", {"retrain_months": (13,)}, "model.retrain_months"),
    ],
)
def test_out_of_range_values_name_the_field(section, values, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        profile_config("demo").replace(**{section: values})


def test_unknown_profile_is_rejected():
    with pytest.raises(ConfigError, match="FACTOR_PIPELINE_PROFILE"):
        profile_config("huge")


def test_fingerprint_changes_with_the_section_it_covers():
    cfg = profile_config("demo")
    other = cfg.replace(model={"seed": 8})
    assert cfg.fingerprint("model") != other.fingerprint("model")
    assert cfg.fingerprint("market") == other.fingerprint("market")


def test_departures_from_seed_name_each_measured_departure_and_none_for_the_seed_preset():
    from factor_pipeline.config import SEED_TRAINING, departures_from_seed, seed_training

    demo = departures_from_seed(profile_config("demo"))
    for expected in ("model.label_transform: 'rank' (seed: 'zscore')", "model.purge: True (seed: False)",
                     "model.ensemble: 5 (seed: 1)", "model.gru_hidden: (64, 64) (seed: (128, 128))"):
        assert expected in demo
    assert any(line.startswith("model.step_channels:") for line in demo)
    # The seed preset of the full profile departs only by having no GAN; a GAN mode removes that line.
    seed = seed_training(profile_config("full"))
    assert departures_from_seed(seed) == ["gan.mode: 'off' (seed: a GAN, mode not published)"]
    assert departures_from_seed(seed.replace(gan={"mode": "transform"})) == []
    # Every switch of the seed preset is covered: changing any one of them is reported.
    changed = seed.replace(model={"label_neutralize": ("industry",)}, gan={"mode": "augment"})
    assert departures_from_seed(changed) == ["model.label_neutralize: ('industry',) (seed: ())"]
    assert set(SEED_TRAINING) <= set(seed.model.__dataclass_fields__)


def test_one_feature_count_and_option_fields_typed_with_their_choices():
    import typing

    from factor_pipeline import config
    from factor_pipeline.features.daily import FEATURE_NAMES, N_FEATURES

    assert config.SampleConfig.n_features == N_FEATURES == len(FEATURE_NAMES)
    hints = typing.get_type_hints(config.ModelConfig)
    assert typing.get_args(hints["label_transform"]) == config.LABEL_TRANSFORMS
    assert typing.get_args(typing.get_args(hints["step_neutralize"])[0]) == config.RISK_EXPOSURES
    with pytest.raises(ConfigError, match="model.device='tpu' is not one of"):
        profile_config("smoke").replace(model={"device": "tpu"})
    with pytest.raises(ConfigError, match="model.precision"):
        profile_config("smoke").replace(model={"precision": "fp8"})

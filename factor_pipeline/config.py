"""Every tunable number of the pipeline, in one place, with the three profiles of docs/INTERFACES.md.

``full`` is the seed's settings exactly; ``demo`` (the default) and ``smoke`` are smaller so that the
pipeline runs in minutes on a laptop and in seconds in tests. Each profile's deviations from the seed
are listed in README.md ("Profiles").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal, get_args, get_origin, get_type_hints

# The choices of each option field, as the types the fields carry; validate() checks every value against them.
Profile = Literal["smoke", "demo", "full"]
GanMode = Literal["augment", "transform", "off"]
LabelTransform = Literal["zscore", "winsor", "rank"]
# Risk exposures a label or the step channels can be made neutral to (label_neutralize, step_neutralize).
RiskExposure = Literal["industry", "size", "beta"]
# The features that may join the window as step channels (ModelConfig.step_channels): features.samples.STATE_FEATURES,
# the 11 that are not price or size levels (a test checks that the two agree).
StepChannel = Literal[
    "turnover_rate", "ret", "log_ret", "intraday_ret", "overnight_ret", "amplitude", "upper_shadow",
    "lower_shadow", "close_to_vwap", "volume_ratio_5", "turnover_ratio_20",
]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "bf16"]

PROFILES = get_args(Profile)
GAN_MODES = get_args(GanMode)
LABEL_TRANSFORMS = get_args(LabelTransform)
RISK_EXPOSURES = get_args(RiskExposure)
STEP_CHANNELS = get_args(StepChannel)
DEVICES = get_args(Device)
PRECISIONS = get_args(Precision)
# Options measured and rejected (model/experimental.py keeps them for the bench), at the one value production
# runs. They stay in the configuration's dict, so fingerprints, and the ids and bytes of stored artefacts, are
# those of the runs before they left.
RETIRED_MODEL_FIELDS = {"inputs": "window", "window_steps": 0, "linear_skip": False, "side_at": "gru", "refit": False}
# The flat cost per unit of two-sided turnover, replaced by EvaluationConfig's A-share cost model; kept in the
# dict for the same reason.
RETIRED_FACTOR_FIELDS = {"cost_per_turnover": 0.003}
# The index codes a benchmark may name: CSI 300, CSI 500 and CSI 1000, which the embedded market builds from its
# own float caps (evaluation/benchmarks.py).
KNOWN_INDICES = ("000300.SH", "000905.SH", "000852.SH")


class ConfigError(ValueError):
    """A configuration value that is missing, unknown or out of range."""


@dataclass(frozen=True)
class MarketConfig:
    """The embedded synthetic market."""

    n_stocks: int = 1200  # names listed at the end of the simulation; fewer earlier (IPOs)
    seed: int = 20260301
    start: str = "2015-01-05"  # simulation start; burn-in before the first partition month
    end: str = ""  # empty: the session calendar's last day (see session_calendar)
    # Planted effects, as multipliers of the documented strengths (market/synthetic): 1.0 is the
    # embedded market, 0.0 switches an effect off. The last two are absent from the embedded market
    # (0.0) and exist so that a model can be judged on markets it was not tuned on.
    reversal: float = 1.0
    attention: float = 1.0
    episodes: float = 1.0
    low_vol_premium: float = 0.0  # a level effect: lower-volatility names earn more, every session
    turnover_reversal: float = 0.0  # an interaction: reversal is stronger on high-turnover days


@dataclass(frozen=True)
class SampleConfig:
    """Samples, labels and the universe (docs/method.md: Data and samples)."""

    seq_len: int = 40
    n_features: int = 18  # features.daily.N_FEATURES (config sits below features; a test checks the two agree)
    label_horizon: int = 20  # forward trading days of the label
    sample_every: int = 5  # one training cross-section every 5 sessions
    min_listed_sessions: int = 126
    max_window_sessions: int = 60  # the 40 traded days must fall within the last 60 sessions
    mad_clip: float = 5.0  # per-stock outlier clip: median +- 5 x MAD


@dataclass(frozen=True)
class GanConfig:
    """The GAN stage. ``mode`` says how the generator reaches the GRU (see README, "GAN modes")."""

    # "off" by measurement (bench/results/2026-11-25/reference.md, 24 demo months): augment lowered the IC
    # (0.029 vs 0.046 without the GAN), transform matched it (0.044); README, "GAN modes".
    mode: GanMode = "off"
    noise_dim: int = 16
    generator_hidden: int = 64
    discriminator_channels: tuple[int, int] = (16, 32)
    steps: int = 400  # alternating generator/discriminator updates, at most
    batch_size: int = 128
    lr: float = 2e-4
    augment_ratio: float = 0.25  # generated samples per real training sample (augment mode)
    transform_residual_scale: float = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """The GRU and its training (docs/method.md: Model)."""

    gru_hidden: tuple[int, ...] = (128, 128)
    mlp_hidden: tuple[int, ...] = (256, 64, 64)
    lr: float = 1e-4
    max_epochs: int = 50
    patience: int = 10
    train_window_sessions: int = 400
    val_fraction: float = 0.2
    retrain_months: tuple[int, ...] = (6, 12)  # June and December rebalances
    seed: int = 7
    # Departures from the seed's training, each measured in bench/bench_training.py; SEED_TRAINING
    # holds the seed's value of each, and README.md ("Factor quality") the measurements behind the default.
    purge: bool = True  # leave a gap of ceil(label_horizon / sample_every) dates before validation
    label_transform: LabelTransform = "rank"  # per date: "zscore" (the seed), "winsor" (z-score clipped at 3), "rank"
    # Risk exposures the training label is made neutral to, per date, before the transform: the OLS residual
    # on "industry" dummies, "size" (log float market cap) and "beta" (the window's market beta). The
    # factor returns they carry are noise to a stock selector. () trains on the raw return (the seed).
    label_neutralize: tuple[RiskExposure, ...] = ()
    weight_decay: float = 0.0  # decoupled (AdamW); 0 keeps the seed's plain Adam
    dropout: float = 0.0  # on the MLP's hidden layers
    ensemble: int = 1  # models trained from seeds seed, seed+1, ...; pRet is their mean
    # Non-level features (features.samples.STATE_FEATURES) added to the window as extra channels standardised only across
    # the date's stocks at each step, so they keep return units (a stock's own scale), unlike the per-window
    # z-score. () is the seed's window only. The three daily returns by measurement
    # (bench/results/2026-11-30/training-2026-11-30.md).
    step_channels: tuple[StepChannel, ...] = ("ret", "intraday_ret", "overnight_ret")
    # Exposures ("industry", "size", "beta", as label_neutralize) the step channels are made neutral to, per
    # date, step and channel (OLS residual across the date's stocks), so that a move the stock shares with its
    # industry, size or the market is not read as its own; nothing to act on without step channels. () keeps
    # them as scale_steps writes them. All three by measurement (README, "Factor quality").
    step_neutralize: tuple[RiskExposure, ...] = ("industry", "size", "beta")
    label_horizon: int = 0  # sessions of the training label; 0: samples.label_horizon (the seed's 20)
    device: Device = "auto"  # "auto": CUDA when present, else CPU
    num_threads: int = 0  # CPU threads for training and inference; 0 = PyTorch's default (all cores)
    # "bf16": bfloat16 matmuls where the hardware has them natively (factor_pipeline/precision.py),
    # else fp32 with a log line; the checkpoint sidecar records what ran.
    precision: Precision = "fp32"


# The seed's own training settings (docs/method.md), for the fields above that may depart from them.
SEED_TRAINING = {
    "purge": False,
    "label_transform": "zscore",
    "label_neutralize": (),
    "step_neutralize": (),
    "weight_decay": 0.0,
    "dropout": 0.0,
    "ensemble": 1,
    "step_channels": (),
    "label_horizon": 0,
}


@dataclass(frozen=True)
class FactorConfig:
    """The factor and its evaluation (docs/metrics.md)."""

    neutralize: bool = False
    n_groups: int = 10
    industry_min_stocks: int = 10
    industry_top_fraction: float = 0.2
    gan_off_baseline: bool = True  # also train the GAN-off GRU so the report shows the ablation


@dataclass(frozen=True)
class EvaluationConfig:
    """How the report judges the factor beyond the seed's table: costs (docs/market.md) and benchmarks."""

    commission: float = 0.00025  # each side, as a fraction of the value traded; no minimum per order
    slippage: float = 0.0005  # each side: half the spread plus impact, as a fraction of the value traded
    indices: tuple[str, ...] = KNOWN_INDICES  # benchmarks and pools, by index code


@dataclass(frozen=True)
class Config:
    profile: Profile = "full"
    market: MarketConfig = field(default_factory=MarketConfig)
    samples: SampleConfig = field(default_factory=SampleConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    factor: FactorConfig = field(default_factory=FactorConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def __post_init__(self):
        validate(self)

    def replace(self, **sections) -> "Config":
        """A copy with some fields changed: ``cfg.replace(gan={"mode": "off"})``."""
        changes = {}
        for name, values in sections.items():
            if isinstance(values, dict):
                changes[name] = dataclasses.replace(getattr(self, name), **values)
            else:
                changes[name] = values
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["model"] = {**RETIRED_MODEL_FIELDS, **data["model"]}
        data["factor"] = {**data["factor"], **RETIRED_FACTOR_FIELDS}
        # The evaluation section only reads stored tables: left out so that no artefact's id or bytes depend on it.
        del data["evaluation"]
        return data

    def fingerprint(self, *sections: str) -> str:
        """Short stable hash of the named sections (all when none), for content-addressed artefacts."""
        data = self.to_dict()
        if sections:
            data = {name: data[name] for name in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _full() -> Config:
    # The GAN-off ablation would double every full-scale retrain: off unless asked for
    # (FACTOR_PIPELINE_GAN_OFF_BASELINE=1); demo and bench keep it, where it is cheap.
    # bf16 where the hardware has it: IC within one standard error of fp32 over 24 demo months
    # (bench/results/2026-11-29/speed-2026-11-29.md); the smoke profile stays fp32, identical on every machine.
    return Config(
        profile="full",
        market=MarketConfig(n_stocks=5000),
        model=ModelConfig(precision="bf16"),
        factor=FactorConfig(gan_off_baseline=False),
    )


def _demo() -> Config:
    return Config(
        profile="demo",
        market=MarketConfig(n_stocks=400),
        gan=GanConfig(steps=300),
        model=ModelConfig(
            gru_hidden=(64, 64),
            mlp_hidden=(128, 32, 32),
            lr=1e-3,
            max_epochs=15,
            patience=4,
            train_window_sessions=240,
            num_threads=1,
            precision="bf16",
            # 5 members: +0.006 +- 0.001 truth_corr over 3, paired over 36 months and 2 seeds
            # (bench/results/2026-12-03/README.md); the full profile keeps 1 for its cost.
            ensemble=5,
        ),
    )


def _smoke() -> Config:
    return Config(
        profile="smoke",
        market=MarketConfig(n_stocks=150, start="2021-01-04"),
        gan=GanConfig(steps=30, noise_dim=8, generator_hidden=16, discriminator_channels=(4, 8), batch_size=64),
        model=ModelConfig(
            gru_hidden=(16, 16),
            mlp_hidden=(32, 16, 16),
            lr=3e-3,
            max_epochs=4,
            patience=2,
            train_window_sessions=120,
            num_threads=1,
        ),
        factor=FactorConfig(gan_off_baseline=False),
    )


_PROFILE_BUILDERS = {"smoke": _smoke, "demo": _demo, "full": _full}


def seed_training(cfg: Config) -> Config:
    """``cfg`` with the seed's training settings in place of every measured departure (the ``seed`` preset)."""
    return cfg.replace(model=SEED_TRAINING)


# The model and training fields a run may set apart from the seed's (the full profile's sizes, SEED_TRAINING).
SEED_MODEL_FIELDS = ("gru_hidden", "mlp_hidden", "lr", "max_epochs", "patience", "train_window_sessions", "val_fraction")


def departures_from_seed(cfg: Config) -> list[str]:
    """Every way ``cfg``'s model and training depart from the seed's, one line each ("field: ours (seed: theirs)").

    The seed's values are SEED_TRAINING and the full profile's model sizes; a GAN stage switched off is a
    departure too, since the seed's factor is built on one (in a mode it does not publish).
    """
    seed = seed_training(_full()).model
    lines = [
        f"model.{name}: {getattr(cfg.model, name)!r} (seed: {getattr(seed, name)!r})"
        for name in (*SEED_MODEL_FIELDS, *SEED_TRAINING)
        if getattr(cfg.model, name) != getattr(seed, name)
    ]
    if cfg.gan.mode == "off":
        lines.append("gan.mode: 'off' (seed: a GAN, mode not published)")
    return lines


def profile_config(profile: str) -> Config:
    if profile not in _PROFILE_BUILDERS:
        raise ConfigError(f"FACTOR_PIPELINE_PROFILE={profile!r} is not one of {', '.join(PROFILES)}")
    return _PROFILE_BUILDERS[profile]()


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_choices(section_name: str, section) -> None:
    """Every field of ``section`` typed with a Literal, or a tuple of one, holds only its choices."""
    for name, hint in get_type_hints(type(section)).items():
        value = getattr(section, name)
        if get_origin(hint) is Literal:
            _require(value in get_args(hint), f"{section_name}.{name}={value!r} is not one of {get_args(hint)}")
        elif get_origin(hint) is tuple and get_origin(get_args(hint)[0]) is Literal:
            choices = get_args(get_args(hint)[0])
            unknown = [v for v in value if v not in choices]
            _require(not unknown, f"{section_name}.{name}: {unknown} are not among {choices}")


def validate(cfg: Config) -> None:
    """Reject values out of range with a message that names the field."""
    _require(cfg.profile in PROFILES, f"profile {cfg.profile!r} is not one of {PROFILES}")
    for name in ("market", "samples", "gan", "model", "factor", "evaluation"):
        check_choices(name, getattr(cfg, name))
    _require(cfg.market.n_stocks >= 20, f"market.n_stocks={cfg.market.n_stocks} must be at least 20")
    _require(cfg.samples.seq_len >= 2, f"samples.seq_len={cfg.samples.seq_len} must be at least 2")
    _require(
        cfg.samples.n_features == SampleConfig.n_features,
        f"samples.n_features must be {SampleConfig.n_features} (the feature set in sql/)",
    )
    _require(cfg.samples.label_horizon >= 1, "samples.label_horizon must be at least 1")
    _require(cfg.samples.sample_every >= 1, "samples.sample_every must be at least 1")
    _require(
        cfg.samples.max_window_sessions >= cfg.samples.seq_len,
        "samples.max_window_sessions must be at least samples.seq_len",
    )
    _require(cfg.samples.mad_clip > 0, "samples.mad_clip must be positive")
    _require(cfg.gan.steps >= 1, "gan.steps must be at least 1")
    _require(0.0 <= cfg.gan.augment_ratio <= 4.0, f"gan.augment_ratio={cfg.gan.augment_ratio} must be in [0, 4]")
    _require(0.0 < cfg.model.lr < 1.0, f"model.lr={cfg.model.lr} must be in (0, 1)")
    _require(cfg.model.max_epochs >= 1, "model.max_epochs must be at least 1")
    _require(cfg.model.patience >= 1, "model.patience must be at least 1")
    _require(0.0 < cfg.model.val_fraction < 1.0, f"model.val_fraction={cfg.model.val_fraction} must be in (0, 1)")
    _require(
        cfg.model.train_window_sessions >= 4 * cfg.samples.sample_every,
        "model.train_window_sessions is too short for one training and one validation date",
    )
    _require(
        len(cfg.model.retrain_months) > 0 and all(1 <= m <= 12 for m in cfg.model.retrain_months),
        f"model.retrain_months={cfg.model.retrain_months} must be months 1..12",
    )
    _require(len(cfg.model.gru_hidden) >= 1 and all(h >= 1 for h in cfg.model.gru_hidden), "model.gru_hidden")
    _require(len(set(cfg.model.step_channels)) == len(cfg.model.step_channels), "model.step_channels repeats a name")
    _require(cfg.model.label_horizon >= 0, "model.label_horizon must be 0 (the samples') or more")
    _require(cfg.model.weight_decay >= 0, "model.weight_decay must be 0 or more")
    _require(0.0 <= cfg.model.dropout < 1.0, f"model.dropout={cfg.model.dropout} must be in [0, 1)")
    _require(cfg.model.ensemble >= 1, "model.ensemble must be at least 1")
    for name in ("reversal", "attention", "episodes", "low_vol_premium", "turnover_reversal"):
        _require(getattr(cfg.market, name) >= 0, f"market.{name} must be 0 or more")
    _require(cfg.model.num_threads >= 0, "model.num_threads must be 0 (all cores) or more")
    _require(cfg.factor.n_groups >= 2, f"factor.n_groups={cfg.factor.n_groups} must be at least 2")
    _require(0 < cfg.factor.industry_top_fraction <= 1, "factor.industry_top_fraction must be in (0, 1]")
    for name in ("commission", "slippage"):
        value = getattr(cfg.evaluation, name)
        _require(value >= 0, f"evaluation.{name}={value} is a cost: it must be 0 or more")
    unknown = [code for code in cfg.evaluation.indices if code not in KNOWN_INDICES]
    _require(not unknown, f"evaluation.indices: unknown index code(s) {unknown}; known: {', '.join(KNOWN_INDICES)}")

"""The one Dagster resource: where the pipeline writes, which market it reads, and which profile it runs."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from factor_pipeline.config import Config, ConfigError, profile_config, seed_training
from factor_pipeline.storage import Layout, StorageError


def default_home() -> str:
    return str(Path(os.environ.get("FACTOR_PIPELINE_HOME", "data")).resolve())


class PipelineResource(dg.ConfigurableResource):
    """FACTOR_PIPELINE_HOME, FACTOR_PIPELINE_SOURCE and FACTOR_PIPELINE_PROFILE (CONTRACTS.md)."""

    home: str
    source: str = "synthetic"
    profile: str = "demo"
    gan_mode: str = ""  # empty: the profile's default
    training: str = ""  # "seed": the seed's training settings (config.SEED_TRAINING); empty: the profile's

    @classmethod
    def from_env(cls) -> "PipelineResource":
        return cls(
            home=default_home(),
            source=os.environ.get("FACTOR_PIPELINE_SOURCE", "synthetic"),
            profile=os.environ.get("FACTOR_PIPELINE_PROFILE", "demo"),
            gan_mode=os.environ.get("FACTOR_PIPELINE_GAN_MODE", ""),
            training=os.environ.get("FACTOR_PIPELINE_TRAINING", ""),
        )

    @property
    def config(self) -> Config:
        cfg = profile_config(self.profile)
        if self.training not in ("", "seed"):
            raise ConfigError(f"FACTOR_PIPELINE_TRAINING={self.training!r} is not 'seed' or empty")
        if self.training == "seed":
            cfg = seed_training(cfg)
        return cfg.replace(gan={"mode": self.gan_mode}) if self.gan_mode else cfg

    @property
    def layout(self) -> Layout:
        return Layout(self.home)

    def check_writable(self) -> None:
        """Fail early, naming the directory, when FACTOR_PIPELINE_HOME cannot be written."""
        home = Path(self.home)
        try:
            home.mkdir(parents=True, exist_ok=True)
            probe = home / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StorageError(f"FACTOR_PIPELINE_HOME={home} is not writable: {exc}") from exc


"""The one Dagster resource: where the pipeline writes, which market it reads, and which profile it runs."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import dagster as dg

from factor_pipeline.market import calendar_source, session_calendar
from factor_pipeline.config import Config, ConfigError, profile_config, seed_training
from factor_pipeline.pipeline import tushare_source
from factor_pipeline.datasets import DATASET_CONFIG_SECTIONS
from factor_pipeline.storage import Identity, Layout, StorageError, read_json, write_json


def default_home() -> str:
    return str(Path(os.environ.get("FACTOR_PIPELINE_HOME", "data")).resolve())


class HomeIdentityError(StorageError):
    """A FACTOR_PIPELINE_HOME that holds months of another source or profile."""


class PipelineResource(dg.ConfigurableResource):
    """FACTOR_PIPELINE_HOME, _SOURCE, _PROFILE and _CALENDAR (docs/INTERFACES.md)."""

    home: str
    source: str = "synthetic"
    profile: str = "demo"
    gan_mode: str = ""  # empty: the profile's default
    calendar: str = ""  # a trade_cal file; empty: trade_cal.* in the input directory, if any
    gan_off_baseline: str = ""  # "1"/"0": train the GAN-off ablation beside the main GRU or not; empty: the profile's
    precision: str = ""  # model.precision override, "fp32" or "bf16"; empty: the profile's
    training: str = ""  # "seed": the seed's training settings (config.SEED_TRAINING); empty: the profile's
    device: str = ""  # model.device override, "auto", "cpu" or "cuda"; empty: the profile's ("auto")

    @classmethod
    def from_env(cls) -> "PipelineResource":
        return cls(
            home=default_home(),
            source=os.environ.get("FACTOR_PIPELINE_SOURCE", "synthetic"),
            profile=os.environ.get("FACTOR_PIPELINE_PROFILE", "demo"),
            gan_mode=os.environ.get("FACTOR_PIPELINE_GAN_MODE", ""),
            calendar=os.environ.get(session_calendar.CALENDAR_ENV, ""),
            gan_off_baseline=os.environ.get("FACTOR_PIPELINE_GAN_OFF_BASELINE", ""),
            precision=os.environ.get("FACTOR_PIPELINE_PRECISION", ""),
            training=os.environ.get("FACTOR_PIPELINE_TRAINING", ""),
            device=os.environ.get("FACTOR_PIPELINE_DEVICE", ""),
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.activate_calendar()

    def prepare_device(self) -> None:
        """Before a step trains or scores on a GPU: cuBLAS is deterministic only with CUBLAS_WORKSPACE_CONFIG set
        before its first use in the process (a value the environment already holds is kept)."""
        from factor_pipeline.model.gru import CUBLAS_WORKSPACE_CONFIG, resolve_device

        if resolve_device(self.config.model.device).type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)

    @property
    def session_calendar(self) -> session_calendar.SessionCalendar:
        """This source's session calendar (FACTOR_PIPELINE_CALENDAR, trade_cal.* in the input directory, or the
        embedded market's); reading it changes nothing."""
        return calendar_source.resolve(self.source, self.calendar_path)

    def activate_calendar(self) -> session_calendar.SessionCalendar:
        """Make this source's session calendar the one every stage function uses in this process."""
        return session_calendar.activate(self.session_calendar)

    @property
    def calendar_path(self) -> str | None:
        """FACTOR_PIPELINE_CALENDAR, else (tushare source) the trade_cal fetched so far."""
        if self.calendar:
            return self.calendar
        return tushare_source.calendar_file(self.home) if tushare_source.is_tushare(self.source) else None

    @property
    def config(self) -> Config:
        cfg = profile_config(self.profile)
        if self.training not in ("", "seed"):
            raise ConfigError(f"FACTOR_PIPELINE_TRAINING={self.training!r} is not 'seed' or empty")
        if self.training == "seed":
            cfg = seed_training(cfg)
        if self.gan_mode:
            cfg = cfg.replace(gan={"mode": self.gan_mode})
        if self.gan_off_baseline:
            cfg = cfg.replace(factor={"gan_off_baseline": _flag(self.gan_off_baseline, "FACTOR_PIPELINE_GAN_OFF_BASELINE")})
        if self.precision:
            cfg = cfg.replace(model={"precision": self.precision})
        if self.device:
            cfg = cfg.replace(model={"device": self.device})
        return cfg

    @property
    def source_cache(self) -> Path:
        """The whole source as canonical Parquet (built on first use; see market_store.load_source)."""
        from factor_pipeline.market import store as market_store

        return market_store.load_source(
            self.source, self.config, Layout(self.home).source_cache, self.session_calendar,
            tushare_dir=tushare_source.raw_dir(self.home),
        )

    @property
    def layout(self) -> Layout:
        """The home, stamped with (and checked against) what this resource builds."""
        return _layout(self.home, self.source_cache, self.profile, self.config)

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


def _flag(value: str, name: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} is not 1/0 (or true/false)")


def identity_of(cache: Path, profile: str, cfg: Config) -> Identity:
    from factor_pipeline.market import store as market_store

    manifest = market_store.read_manifest(cache)
    return Identity(
        source=manifest["identity"],
        profile=profile,
        config_fingerprints={
            dataset: cfg.fingerprint(*sections) if sections else "none"
            for dataset, sections in DATASET_CONFIG_SECTIONS.items()
        },
        month_states=manifest["month_states"],
    )


def claim_home(layout: Layout) -> None:
    """Record the home's source and profile on first use; refuse a home that holds another's months.

    A home never mixes two markets or two profiles: the DuckDB views read every month in it. Months of the
    same source and profile built under another configuration are rebuilt by a backfill instead.
    """
    identity = layout.identity
    wanted = {"source": identity.source, "profile": identity.profile}
    path = layout.identity_file
    if path.exists():
        held = read_json(path)
        if {k: held.get(k) for k in wanted} != wanted:
            raise HomeIdentityError(
                f"FACTOR_PIPELINE_HOME={layout.home} holds months built from {held.get('source')} with profile "
                f"{held.get('profile')}, but this run reads {identity.source} with profile {identity.profile}. "
                "A home never mixes sources or profiles: set FACTOR_PIPELINE_HOME to another directory (one per "
                "source and profile), or delete this one to start over."
            )
        return
    write_json(wanted, path)


@functools.lru_cache(maxsize=16)
def _layout_cached(home: str, cache: Path, manifest_mtime: int, profile: str, cfg: Config) -> Layout:
    layout = Layout(home, identity_of(cache, profile, cfg))
    claim_home(layout)
    return layout


def _layout(home: str, cache: Path, profile: str, cfg: Config) -> Layout:
    from factor_pipeline.market import store as market_store

    mtime = (cache / market_store.MANIFEST).stat().st_mtime_ns
    layout = _layout_cached(home, cache, mtime, profile, cfg)
    if not layout.identity_file.exists():  # a home deleted under a long-lived process
        claim_home(layout)
    return layout

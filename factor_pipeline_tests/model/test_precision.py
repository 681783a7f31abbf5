"""model.precision: detection and fallback, the bfloat16 fused GRU, bf16 training, the profile settings."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from factor_pipeline.model import precision
from factor_pipeline.config import ConfigError, ModelConfig, profile_config
from factor_pipeline.model.gru import GRUFactorModel, predict, train_gru
from factor_pipeline.pipeline.resources import PipelineResource
from factor_pipeline_tests.model.test_gru import SMOKE, planted_days

pytestmark = pytest.mark.usefixtures("torch_one_thread")

NATIVE_BF16 = precision.cpu_bf16_support() is not None
needs_bf16 = pytest.mark.skipif(
    not NATIVE_BF16, reason="this CPU has no native bf16 (AVX512-BF16/AMX): model.precision=bf16 runs fp32 here"
)


@pytest.fixture
def cpu_flags(monkeypatch):
    """Pretend the CPU reports the given /proc/cpuinfo flags."""

    def set_flags(*flags):
        precision.cpu_bf16_support.cache_clear()
        monkeypatch.setattr(precision, "_cpu_flags", lambda: set(flags))

    yield set_flags
    precision.cpu_bf16_support.cache_clear()


def test_bf16_is_native_with_avx512_bf16_or_amx(cpu_flags):
    cpu_flags("sse4_2", "avx512f", "avx512_bf16")
    assert precision.cpu_bf16_support() == "avx512_bf16"
    cpu_flags("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    assert precision.cpu_bf16_support() == "amx_bf16"
    chosen = precision.resolve("bf16", torch.device("cpu"))
    assert chosen.bf16 and chosen.describe() == {
        "precision_requested": "bf16",
        "precision": "bf16",
        "precision_reason": "native (amx_bf16)",
        "recurrent_precision": "bf16",
        "device": "cpu",
    }


def test_on_cuda_the_recurrence_is_float32_and_only_the_mlp_bf16(monkeypatch):
    """cuDNN's RNN autocast wrapper would run nn.GRU in float16: the GRU layers stay float32 there."""
    monkeypatch.setattr(precision, "cuda_bf16_support", lambda device: True)
    chosen = precision.resolve("bf16", torch.device("cuda"))
    assert chosen.bf16 and chosen.recurrent == "fp32"
    assert chosen.describe()["device"] == "cuda" and chosen.describe()["recurrent_precision"] == "fp32"
    monkeypatch.setattr(precision, "cuda_bf16_support", lambda device: False)
    assert precision.resolve("bf16", torch.device("cuda")).describe()["precision"] == "fp32"


def test_a_checkpoint_trained_on_a_gpu_has_an_identity_of_its_own(monkeypatch):
    from factor_pipeline.model import store

    cfg = profile_config("smoke")  # model.device = "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert store._device_part(cfg) == []  # CPU ids are those of every checkpoint written before
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert store._device_part(cfg) == ["cuda"]
    assert store._device_part(cfg.replace(model={"device": "cpu"})) == []


def test_a_step_on_a_gpu_makes_cublas_deterministic_unless_the_environment_chose(monkeypatch):
    from factor_pipeline.model.gru import CUBLAS_WORKSPACE_CONFIG

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setenv("FACTOR_PIPELINE_DEVICE", "auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    PipelineResource.from_env().prepare_device()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    PipelineResource.from_env().prepare_device()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE_CONFIG
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    PipelineResource.from_env().prepare_device()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_the_device_is_an_environment_override(monkeypatch):
    monkeypatch.setenv("FACTOR_PIPELINE_PROFILE", "smoke")
    monkeypatch.setenv("FACTOR_PIPELINE_DEVICE", "cpu")
    assert PipelineResource.from_env().config.model.device == "cpu"
    monkeypatch.delenv("FACTOR_PIPELINE_DEVICE")
    assert PipelineResource.from_env().config.model.device == "auto"
    monkeypatch.setenv("FACTOR_PIPELINE_DEVICE", "tpu")
    with pytest.raises(ConfigError, match="model.device"):
        PipelineResource.from_env().config


def test_bf16_falls_back_to_fp32_with_a_log_line_without_native_support(cpu_flags):
    cpu_flags("sse4_2", "avx2", "avx512f")  # AVX512 without the bf16 dot products
    logs = []
    chosen = precision.resolve("bf16", torch.device("cpu"), logs.append)
    assert not chosen.bf16 and chosen.effective == "fp32" and chosen.requested == "bf16"
    assert len(logs) == 1 and "falls back to fp32" in logs[0]
    assert isinstance(precision.autocast(chosen), type(precision.autocast(precision.resolve("fp32", torch.device("cpu")))))


def test_fp32_is_never_changed_and_unknown_precisions_are_refused(cpu_flags):
    cpu_flags("avx512_bf16")
    logs = []
    assert precision.resolve("fp32", torch.device("cpu"), logs.append).effective == "fp32" and not logs
    with pytest.raises(ValueError, match="fp16"):
        precision.resolve("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="model.precision"):
        profile_config("smoke").replace(model={"precision": "fp16"})


def test_bf16_training_on_a_cpu_without_it_is_fp32_bit_for_bit(cpu_flags):
    cpu_flags("avx2")
    days = planted_days(n_dates=6, n=60)
    logs = []
    bf16 = train_gru(days[:4], days[4:], ModelConfig(**{**SMOKE.__dict__, "max_epochs": 2, "precision": "bf16"}), 18, seed=3, log=logs.append)
    fp32 = train_gru(days[:4], days[4:], ModelConfig(**{**SMOKE.__dict__, "max_epochs": 2}), 18, seed=3)
    assert bf16.precision["precision"] == "fp32" and any("falls back" in line for line in logs)
    for key in fp32.state_dict:
        assert torch.equal(bf16.state_dict[key], fp32.state_dict[key])


@needs_bf16
def test_fused_gru_under_autocast_matches_nn_gru_within_bf16_tolerance():
    """Against float32 nn.GRU, the bf16 fused layer errs no more than nn.GRU's own autocast does."""
    torch.manual_seed(0)
    models = [GRUFactorModel(18, (32, 32), (64, 16)) for _ in range(3)]
    for model in models[1:]:
        model.load_state_dict(models[0].state_dict())
    models[0].fused_cpu = models[2].fused_cpu = False
    x = torch.randn(300, 40, 18)
    weights = torch.linspace(-1, 1, 300)
    outputs, grads = [], []
    for model, bf16 in zip(models, (False, True, True)):  # fp32 reference, fused bf16, nn.GRU under autocast
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        (out * weights).sum().backward()
        outputs.append(out.detach())
        grads.append({k: p.grad for k, p in model.named_parameters()})
    assert outputs[1].dtype == torch.float32  # the output layer stays float32: no ties in the ranking
    assert len(torch.unique(outputs[1])) == len(outputs[1])
    assert (outputs[1] - outputs[0]).abs().max() < 0.02 * outputs[0].abs().max()

    def error(i, name):
        return ((grads[i][name] - grads[0][name]).norm() / grads[0][name].norm()).item()

    for name in grads[0]:
        if name.startswith("grus"):
            assert 1e-4 < error(1, name) <= 1.25 * error(2, name), (name, error(1, name), error(2, name))


@needs_bf16
def test_bf16_training_learns_is_deterministic_and_reports_its_precision():
    days = planted_days(n_dates=10, n=150)
    cfg = ModelConfig(**{**SMOKE.__dict__, "max_epochs": 3, "precision": "bf16"})
    first = train_gru(days[:8], days[8:], cfg, 18, seed=5)
    second = train_gru(days[:8], days[8:], cfg, 18, seed=5)
    fp32 = train_gru(days[:8], days[8:], ModelConfig(**{**SMOKE.__dict__, "max_epochs": 3}), 18, seed=5)
    assert first.precision["precision_requested"] == "bf16" and first.precision["precision"] == "bf16"
    for key in first.state_dict:
        assert torch.equal(first.state_dict[key], second.state_dict[key])
    assert any(not torch.equal(first.state_dict[k], fp32.state_dict[k]) for k in first.state_dict)
    assert first.best_val_ic > 0.1 and first.best_val_ic > fp32.best_val_ic - 0.05, (first.best_val_ic, fp32.best_val_ic)
    X = np.concatenate([d[0] for d in days[8:]])
    p16, p32 = predict(first.state_dict, X, cfg, 18), predict(first.state_dict, X, SMOKE, 18)
    assert np.corrcoef(p16, p32)[0, 1] > 0.99


def test_gan_off_baseline_is_off_in_full_and_on_in_demo_unless_overridden(monkeypatch):
    assert profile_config("full").factor.gan_off_baseline is False
    assert profile_config("demo").factor.gan_off_baseline is True
    assert profile_config("full").model.precision == profile_config("demo").model.precision == "bf16"
    assert profile_config("smoke").model.precision == "fp32"  # tests: the same checkpoints on every machine
    monkeypatch.setenv("FACTOR_PIPELINE_PROFILE", "full")
    monkeypatch.setenv("FACTOR_PIPELINE_GAN_OFF_BASELINE", "1")
    monkeypatch.setenv("FACTOR_PIPELINE_PRECISION", "fp32")
    cfg = PipelineResource.from_env().config
    assert cfg.factor.gan_off_baseline is True and cfg.model.precision == "fp32"
    monkeypatch.setenv("FACTOR_PIPELINE_PROFILE", "demo")
    monkeypatch.setenv("FACTOR_PIPELINE_GAN_OFF_BASELINE", "0")
    assert PipelineResource.from_env().config.factor.gan_off_baseline is False
    monkeypatch.setenv("FACTOR_PIPELINE_GAN_OFF_BASELINE", "maybe")
    with pytest.raises(ConfigError, match="FACTOR_PIPELINE_GAN_OFF_BASELINE"):
        PipelineResource.from_env().config


def test_bench_gpu_dry_mode_projects_and_runs_the_retrain(monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench"))
    sys.modules.pop("bench_gpu", None)
    import bench_gpu

    report = bench_gpu.main(["--device", "cpu", "--tiny", "--dates", "2", "--precisions", "fp32"])
    fp32 = report["results"]["fp32"]
    assert report["shape"]["mode"].startswith("tiny") and report["shape"]["stocks"] == bench_gpu.TINY["stocks"]
    n_val = round(bench_gpu.TINY["dates"] * 0.2)
    expected_epoch = (bench_gpu.TINY["dates"] - n_val) * fp32["train_step_s"] + n_val * fp32["val_date_s"]
    assert fp32["epoch_s_projected"] == pytest.approx(expected_epoch, rel=1e-3, abs=1e-3)
    assert fp32["retrain_s_projected"] == pytest.approx(bench_gpu.TINY["epochs"] * fp32["epoch_s_projected"], abs=0.1)
    assert fp32["retrain_epochs_run"] == bench_gpu.TINY["epochs"]  # patience never stops the timed retrain
    assert fp32["retrain_s_measured"] > 0 and fp32["peak_memory_mb_fraction"] > 0
    assert 0 < fp32["ratio_to_matmul_peak_same_precision"] == fp32["ratio_to_fp32_matmul_peak"]

    tight = bench_gpu.main(["--device", "cpu", "--tiny", "--dates", "2", "--precisions", "fp32", "--budget-s", "0"])
    assert tight["results"]["fp32"]["retrain_s_measured"] is None and "budget" in tight["results"]["fp32"]["retrain_not_run"]


def _bench(monkeypatch, name: str):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench"))
    sys.modules.pop(name, None)
    return __import__(name)


@pytest.mark.slow  # a smoke backfill through the CLI
def test_bench_gpu_runs_a_smoke_backfill_on_the_device_and_reads_its_sidecars(monkeypatch):
    bench_gpu = _bench(monkeypatch, "bench_gpu")
    result = bench_gpu.smoke_backfill(torch.device("cpu"))
    assert result["returncode"] == 0, result["output_tail"]
    assert result["checkpoints"] and all(c["device"] == "cpu" for c in result["checkpoints"])
    assert all(c["recurrent_precision"] == c["precision"] for c in result["checkpoints"])  # on a CPU the fused layer follows


def test_bench_step_times_the_pipelines_step_against_its_floor(monkeypatch):
    bench_step = _bench(monkeypatch, "bench_step")
    report = bench_step.main(["--threads", "1", "--steps", "1", "--batch", "48", "--precisions", "fp32", "--profile", "fp32"])
    assert report["shape"]["channels"] == 18 + len(profile_config("full").model.step_channels)
    assert report["shape"]["n_train"] > report["shape"]["n_val"] > 0
    fp32 = report["results"]["fp32"]
    assert set(fp32["step_s"]) == set(bench_step.MODES) and fp32["floor_step_s"] > 0
    for mode, seconds in fp32["step_s"].items():
        assert fp32["step_over_floor"][mode] == pytest.approx(seconds / fp32["floor_step_s"], rel=0.02)
    shares = report["where_time_goes"]["share"]
    assert shares["matmul"] > 0 and sum(shares.values()) == pytest.approx(1.0, abs=0.01)

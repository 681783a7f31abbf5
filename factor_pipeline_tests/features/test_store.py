"""Samples written and read back from the home."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.features.samples import STATE_FEATURES
from factor_pipeline.features.store import load_samples, load_steps, save_samples
from factor_pipeline.market import session_calendar
from factor_pipeline import storage
from factor_pipeline_tests.features.bars import CFG


def _fake_month(month, n_stocks, rng):
    dates = session_calendar.sample_dates(month, CFG.sample_every)
    samples = pd.DataFrame(
        {
            "month": month,
            "trade_date": np.repeat(dates.values, n_stocks),
            "ts_code": np.tile([f"{600000 + i:06d}.SH" for i in range(n_stocks)], len(dates)),
            "industry": "Banks",
            "is_st": False,
            "listed_sessions": 500,
            "is_trading": True,
            "full_window": True,
            "eligible": rng.random(len(dates) * n_stocks) < 0.8,
            "is_limit_up": False,
            "buyable": True,
            "log_float_mcap": 20.0,
        }
    )
    samples["seq_index"] = np.where(samples.eligible, np.cumsum(samples.eligible) - 1, -1)
    X = rng.normal(size=(int(samples.eligible.sum()), CFG.seq_len, 18)).astype(np.float32)
    return X, samples


def test_save_and_load_samples(tmp_path):
    rng = np.random.default_rng(0)
    X1, s1 = _fake_month("2024-02", 30, rng)
    X2, s2 = _fake_month("2024-03", 20, rng)
    save_samples(tmp_path, "2024-02", X1, s1)
    save_samples(tmp_path, "2024-03", X2, s2)
    assert (tmp_path / "2024-02.npy").is_file() and (tmp_path / "2024-02.parquet").is_file()
    assert not list(tmp_path.glob("*.tmp-*"))

    X, samples = load_samples(tmp_path, ["2024-02", "2024-03"])
    assert np.array_equal(X, np.concatenate([X1, X2]))
    assert samples.eligible.all() and (samples.seq_index.to_numpy() == np.arange(len(X))).all()
    assert np.array_equal(X[samples.seq_index[samples.month == "2024-03"].to_numpy()], X2)

    X, samples = load_samples(tmp_path, ["2024-03", "2024-02"], eligible_only=False)
    assert len(samples) == len(s1) + len(s2)
    assert (samples.seq_index[~samples.eligible] == -1).all()
    rows = samples[samples.eligible]
    assert (rows.seq_index.to_numpy() == np.arange(len(X))).all()
    assert np.array_equal(X[rows.seq_index[rows.month == "2024-02"].to_numpy()], X1)

    with pytest.raises(ValueError):
        save_samples(tmp_path, "2024-04", X1[:-1], s1)


def test_load_samples_errors(tmp_path):
    rng = np.random.default_rng(1)
    X1, s1 = _fake_month("2024-02", 10, rng)
    save_samples(tmp_path, "2024-02", X1, s1)
    with pytest.raises(storage.StorageError, match="2024-05.parquet"):
        load_samples(tmp_path, ["2024-02", "2024-05"])
    storage.write_npy(X1[:-2], tmp_path / "2024-02.npy")
    with pytest.raises(storage.StorageError, match="2024-02"):
        load_samples(tmp_path, ["2024-02"])
    (tmp_path / "2024-02.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(storage.StorageError, match="2024-02.npy"):
        load_samples(tmp_path, ["2024-02"])
    save_samples(tmp_path, "2024-02", X1, s1)
    (tmp_path / "2024-02.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(storage.StorageError, match="2024-02.parquet"):
        load_samples(tmp_path, ["2024-02"])


def test_step_channels_are_stored_beside_the_samples_row_for_row(tmp_path):
    rng = np.random.default_rng(5)
    X1, s1 = _fake_month("2024-02", 6, rng)
    X2, s2 = _fake_month("2024-03", 5, rng)
    S1 = rng.normal(size=(*X1.shape[:2], len(STATE_FEATURES))).astype(np.float32)
    S2 = rng.normal(size=(*X2.shape[:2], len(STATE_FEATURES))).astype(np.float32)
    save_samples(tmp_path, "2024-02", X1, s1, steps=S1)
    save_samples(tmp_path, "2024-03", X2, s2, steps=S2)
    X, _ = load_samples(tmp_path, ["2024-02", "2024-03"])
    S = load_steps(tmp_path, ["2024-02", "2024-03"])
    assert S.shape[:2] == X.shape[:2] and np.array_equal(S, np.concatenate([S1, S2]))
    with pytest.raises(ValueError, match="steps"):
        save_samples(tmp_path, "2024-04", X1, s1, steps=S1[:-1])
    save_samples(tmp_path, "2024-05", X1, s1)  # without steps: readers that need them say what to do
    with pytest.raises(storage.StorageError, match="re-materialise"):
        load_steps(tmp_path, ["2024-05"])

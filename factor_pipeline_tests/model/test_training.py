import pandas as pd
import pytest

from factor_pipeline.market import session_calendar
from factor_pipeline.model import store as model_store
from factor_pipeline.model import training
from factor_pipeline.config import profile_config


@pytest.mark.parametrize("month, expected", [("2024-06", "2024-06"), ("2024-05", "2023-12"), ("2024-01", "2023-12"), ("2024-12", "2024-12")])
def test_each_month_resolves_to_the_newest_retrain_month(month, expected):
    assert training.training_month(month, (6, 12)) == expected


@pytest.mark.parametrize("profile", ["smoke", "demo", "full"])
def test_training_labels_are_realised_by_the_training_date(profile):
    cfg = profile_config(profile)
    end = session_calendar.rebalance_date("2024-06")
    dates = training.training_dates("2024-06", cfg)
    assert len(dates) >= 4
    for t in dates:
        assert session_calendar.session_offset(t, cfg.samples.label_horizon) <= end
    # The window is the last train_window_sessions sessions, one cross-section every sample_every sessions.
    first_allowed = session_calendar.session_offset(end, -(cfg.model.train_window_sessions - 1))
    assert dates[0] >= first_allowed
    assert all(b - a >= pd.Timedelta(days=5) for a, b in zip(dates, dates[1:]))


def test_full_profile_has_about_eighty_dates_as_the_seed():
    dates = training.training_dates("2024-06", profile_config("full"))
    assert 70 <= len(dates) <= 80


def test_lookback_covers_every_training_window():
    cfg = profile_config("demo")
    lookback = training.lookback_months(cfg)
    for month in session_calendar.months_between("2019-01", "2026-10"):
        first = training.window_months(training.training_month(month, cfg.model.retrain_months), cfg)[0]
        assert session_calendar.parse_month(first) >= session_calendar.parse_month(month) - lookback


@pytest.mark.slow  # reads the smoke backfill's home
def test_training_data_ignores_every_bar_after_the_training_date(smoke_backfill, tmp_path):
    """Change the future (prices and volumes after 2023-12's rebalance date): the training set does not move."""
    import shutil

    import numpy as np

    from factor_pipeline.storage import Layout, read_parquet, write_parquet

    home, _, _ = smoke_backfill
    cfg = profile_config("smoke")
    original = model_store.load_training_data(Layout(home), "2023-12", cfg)
    altered_home = tmp_path / "home"
    shutil.copytree(home, altered_home, ignore=shutil.ignore_patterns("dagster", "reports", "checkpoints", "gan"))
    layout = Layout(altered_home)
    cutoff = session_calendar.rebalance_date("2023-12")
    for month in layout.months_present("raw_bars/daily"):
        bars = read_parquet(layout.partition("raw_bars/daily", month))
        future = bars["trade_date"] > cutoff
        if future.any():
            rng = np.random.default_rng(0)
            bars.loc[future, "close"] *= rng.uniform(0.5, 1.5, future.sum())
            bars.loc[future, "volume"] *= 3
            write_parquet(bars, layout.partition("raw_bars/daily", month))
    altered = model_store.load_training_data(layout, "2023-12", cfg)
    assert altered.fingerprint == original.fingerprint
    assert [d for d in altered.dates] == [d for d in original.dates]
    for a, b in zip(altered.y, original.y):
        assert np.array_equal(a, b)
    # and the last training date's label ends on or before the training date
    assert session_calendar.session_offset(original.dates[-1], cfg.samples.label_horizon) <= cutoff


def test_a_runs_months_share_their_training_window_and_only_the_newest_is_kept():
    windows = model_store.TrainingWindows(layout=None, cfg=profile_config("smoke"))
    first = windows("2023-12")
    assert windows("2023-12") is first  # 2024-01..2024-05 of a run: one window, one load
    second = windows("2024-06")
    assert second is not first and second.train_month == "2024-06"
    assert windows("2024-06") is second


@pytest.mark.slow  # reads the smoke backfill's home
def test_a_month_whose_checkpoint_exists_loads_no_training_data(smoke_backfill, tmp_path, monkeypatch):
    """The checkpoint is found from the window's key alone; a changed input file changes the key and loads."""
    import shutil

    import numpy as np

    from factor_pipeline.storage import Layout, write_npy

    home, _, _ = smoke_backfill
    copy = tmp_path / "home"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("dagster", "reports"))
    layout, cfg = Layout(copy), profile_config("smoke").replace(gan={"mode": "augment"})  # as the backfill ran
    loads = []
    real_load = model_store.load_training_data
    monkeypatch.setattr(model_store, "load_training_data", lambda *args: loads.append(args[1]) or real_load(*args))

    window = model_store.TrainingWindow(layout, "2024-06", cfg)
    gan = model_store.ensure_gan(layout, window, cfg)
    checkpoint = model_store.ensure_checkpoint(layout, window, cfg, gan)
    assert loads == []  # the backfill recorded the window's fingerprint beside its GAN and checkpoint
    assert not gan.trained and not checkpoint.trained and checkpoint.path.exists()

    month = training.window_months("2024-06", cfg)[-1]
    X = np.load(layout.dataset("samples") / f"{month}.npy")
    X[0, 0, 0] += 1.0
    write_npy(X, layout.dataset("samples") / f"{month}.npy")
    changed = model_store.TrainingWindow(layout, "2024-06", cfg)
    assert changed.key != window.key
    changed.fingerprint
    assert loads == ["2024-06"]

"""Scoring reads a month's samples as training reads its window."""

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.config import profile_config
from factor_pipeline.market import session_calendar
from factor_pipeline.model import inputs, scoring
from factor_pipeline.model import store as model_store
from factor_pipeline.storage import Layout


@pytest.mark.slow  # reads the smoke backfill's home
def test_training_and_scoring_give_a_sample_the_same_model_input(smoke_backfill):
    """Each training sample of a date, read as scoring reads a date, is the same input byte for byte (the
    step channels are neutralised over the same stocks in both)."""
    home, _, _ = smoke_backfill
    cfg = profile_config("smoke")
    data = model_store.load_training_data(Layout(home), "2024-06", cfg)
    for date, X_train in zip(data.dates[-2:], data.X[-2:]):
        X_score, rows = scoring.scoring_input(Layout(home), session_calendar.month_of(date), cfg, date)
        assert (rows["trade_date"] == date).all() and X_score.shape[1:] == X_train.shape[1:]
        assert X_train.shape[-1] == 18 + len(cfg.model.step_channels)
        scored = {x.tobytes() for x in X_score}
        assert len(X_train) > 10 and all(x.tobytes() in scored for x in X_train)


def test_a_dates_model_input_does_not_depend_on_the_other_dates_read_with_it():
    """Training reads a window of dates at once, scoring one date: a date's rows come out the same."""
    from factor_pipeline.features.samples import STATE_FEATURES

    rng = np.random.default_rng(8)
    dates = pd.to_datetime(["2024-05-24", "2024-05-31", "2024-06-07"])
    rows = pd.DataFrame(
        {
            "trade_date": np.repeat(dates, 12),
            "industry": np.tile(["801010", "801080", "801780"] * 4, 3),
            "log_float_mcap": rng.normal(22.0, 1.0, 36),
            "market_beta": rng.normal(1.0, 0.3, 36),
        }
    )
    X = rng.normal(size=(36, 40, 18)).astype(np.float32)
    steps = rng.normal(size=(36, 40, len(STATE_FEATURES))).astype(np.float32)
    cfg = profile_config("smoke")
    assert cfg.model.step_channels and cfg.model.step_neutralize  # the default neutralises across each date
    window = inputs.model_input(X, steps, rows, cfg)
    one = (rows["trade_date"] == dates[1]).to_numpy()
    alone = inputs.model_input(X[one], steps[one], rows.loc[one].reset_index(drop=True), cfg)
    np.testing.assert_array_equal(window[one], alone)

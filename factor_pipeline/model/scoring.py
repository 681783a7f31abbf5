"""Scoring a month: its rebalance date's samples through the checkpoint its model month trained, with the
inputs built as training built them (store.load_model_input)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.config import Config
from factor_pipeline.market import session_calendar
from factor_pipeline.model.store import load_generator, load_model_input, torch_threads
from factor_pipeline.storage import Layout, StorageError, read_json


def score_month(layout: Layout, month: str, cfg: Config) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None, dict]:
    """(the rebalance date's sample rows, their pRet, the GAN-off baseline's pRet or None, the checkpoint record)."""
    layout.verify("gru_checkpoint", month)
    record = read_json(layout.partition_path("gru_checkpoint", month))
    X, rows = scoring_input(layout, month, cfg)
    if len(rows) == 0:
        rebalance = session_calendar.rebalance_date(month)
        raise StorageError(f"the universe of {month} is empty on its rebalance date {rebalance.date()}: nothing to score")
    pret = predict(layout, X, record["checkpoint"], cfg)
    pret_gan_off = None
    if "gan_off_checkpoint" in record:
        pret_gan_off = predict(layout, X, record["gan_off_checkpoint"], cfg.replace(gan={"mode": "off"}))
    return rows, pret, pret_gan_off, record


def scoring_input(layout: Layout, month: str, cfg: Config, date=None) -> tuple[np.ndarray, pd.DataFrame]:
    """(model input, rows) of the month's eligible samples on ``date``, its rebalance date unless given."""
    date = session_calendar.rebalance_date(month) if date is None else pd.Timestamp(date)
    return load_model_input(layout, [month], cfg, [date])


def predict(layout: Layout, X: np.ndarray, checkpoint_id: str, cfg: Config) -> np.ndarray:
    """pRet of the model inputs X (one date's cross-section, inputs.model_input) with the given checkpoint,
    after the GAN transform in transform mode."""
    from factor_pipeline.model import checkpoints, gan, gru

    state, sidecar = checkpoints.load_checkpoint(layout.checkpoints / f"{checkpoint_id}.pt", expected={"checkpoint_id": checkpoint_id})
    with torch_threads(cfg.model.num_threads):
        if sidecar.get("gan_mode") == "transform":
            X = gan.transform(load_generator(layout, sidecar["gan_id"]), cfg.gan, X)
        return gru.predict(state, X, cfg.model, n_features=X.shape[-1])

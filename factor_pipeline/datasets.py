"""The names of the pipeline's assets and of the datasets they write under FACTOR_PIPELINE_HOME, kept once.

The CLI, the jobs and schedules, the DuckDB views, storage and the tests read these instead of lists of
their own (docs/INTERFACES.md describes the files).
"""

from __future__ import annotations

# The monthly assets in dependency order: each reads only assets before it.
ASSETS = ("raw_bars", "features", "samples", "gan_model", "gru_checkpoint", "pret_factor", "factor_evaluation", "factor_report")
# The monthly factor run builds the first six; the evaluation run, a month later, the last two.
FACTOR_ASSETS = ASSETS[:6]
EVALUATION_ASSETS = ASSETS[6:]
MODEL_ASSETS = ("gan_model", "gru_checkpoint")
# One evening's refresh: the current month's bars so far and the previous month's evaluation on them.
PARTIAL_MONTH_ASSETS = ("raw_bars", "factor_evaluation", "factor_report")

# The dataset whose provenance says whether an asset's month is built (factor_report writes reports/<month>/).
ASSET_DATASETS = {
    "raw_bars": "raw_bars/daily",
    "features": "features",
    "samples": "samples",
    "gan_model": "gan_model",
    "gru_checkpoint": "gru_checkpoint",
    "pret_factor": "factor",
    "factor_evaluation": "eval/ic",
}

# Placeholder in sql/create_view_*.sql -> the dataset directory its view reads.
VIEW_DATASETS = {
    "calendar": "calendar",
    "raw_daily": "raw_bars/daily",
    "raw_stocks": "raw_bars/stocks",
    "raw_truth": "raw_bars/truth",
    "raw_issues": "raw_bars/issues",
    "features": "features",
    "samples": "samples",
    "factor": "factor",
    "eval_ic": "eval/ic",
    "eval_portfolio": "eval/portfolio",
    "eval_industry_ic": "eval/industry_ic",
    "eval_industry_long_excess": "eval/industry_long_excess",
    "eval_group_returns": "eval/group_returns",
    "eval_long_short": "eval/long_short",
    "eval_style_exposure": "eval/style_exposure",
    "eval_factor_profile": "eval/factor_profile",
    "eval_index_pools": "eval/index_pools",
    "eval_ic_decay": "eval/ic_decay",
}

# Model months are JSON pointers; every other dataset is Parquet.
JSON_DATASETS = ("gan_model", "gru_checkpoint")
# The configuration sections each dataset's content depends on (by its first path component).
DATASET_CONFIG_SECTIONS = {
    "raw_bars": (),
    "features": (),
    "samples": ("samples",),
    "gan_model": ("samples", "gan", "model"),
    "gru_checkpoint": ("samples", "gan", "model"),
    "factor": ("samples", "gan", "model", "factor"),
    "eval": ("samples", "gan", "model", "factor"),
}

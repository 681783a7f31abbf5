"""The monthly assets. Each is thin: read its inputs, call a pure stage function, write atomically, attach metadata."""


import base64
import warnings
from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd

from factor_pipeline.config import PROFILES, profile_config
from factor_pipeline.evaluation import factor_table, style
from factor_pipeline.features.daily import FEATURE_LOOKBACK_MONTHS, FEATURE_NAMES, compute_features
from factor_pipeline.features.samples import SEQUENCE_LOOKBACK_MONTHS, build_samples, scale_steps
from factor_pipeline.features.store import save_samples
from factor_pipeline.market import input_files, session_calendar
from factor_pipeline.market import store as market_store
from factor_pipeline.model import store as model_store
from factor_pipeline.model import training
from factor_pipeline.pipeline import checks, dagster_internals, partitions, tushare_source
from factor_pipeline.pipeline.executors import TRAINING_OP_TAGS
from factor_pipeline.pipeline.progress import TrainingProgress
from factor_pipeline.pipeline.resources import PipelineResource
from factor_pipeline.pipeline.views import ensure_views
from factor_pipeline.storage import StorageError, read_json, read_months, write_json, write_parquet

monthly = partitions.monthly_partitions()
# Lookbacks are properties of the code (features) and of the profile (the training window).
# The longest training window of any profile, so that the asset graph is the same whatever the environment;
# the backfill plan drops the months a source does not have, and each step reads only its own window.
MODEL_LOOKBACK_MONTHS = max(training.lookback_months(profile_config(profile)) for profile in PROFILES)

# The evaluation stage (with matplotlib) is imported inside the steps that use it: about 2.7 s that every
# other step's process (each run imports this module) would pay, measured with -X importtime.

# Only I/O on the source can fail transiently (a network filesystem, a file still being copied); bad data,
# missing upstream months and training cannot, so nothing else retries.
TRANSIENT_IO_RETRIES = 2

# A backfill materialises a whole range of months of an asset in one run: months are independent given
# their inputs, and a run's process start (Python, Dagster, torch) costs more than a month of most steps,
# so one run per month made launching, not computing, bound a daemon-driven backfill (docs/operations.md).
# The report depends on the previous month's report: in one run it writes the months in order.
MONTH_RANGE_POLICY = dg.BackfillPolicy.single_run()
# Backfill policies are beta in Dagster 1.13; every import of this module (each run, the daemon, the CLI)
# would print that warning once per asset.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


def _history(asset: str, months_back: int, months_forward: int = 0) -> dg.AssetIn:
    """Months m-back..m+forward of an upstream asset; months before the first partition simply do not exist."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        mapping = dg.TimeWindowPartitionMapping(
            start_offset=-months_back,
            end_offset=months_forward,
            allow_nonexistent_upstream_partitions=True,
        )
    return dg.AssetIn(
        key=asset,
        partition_mapping=mapping,
        dagster_type=dg.Nothing,
    )


def _png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _each_month(context: dg.AssetExecutionContext, build) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Materialise the run's months in order, ``build(month)`` returning each month's MaterializeResult.

    A range run gives each month its own metadata, and each check one result for the range (Dagster
    evaluates a check once per step), which fails when any month fails and names the months in its
    problems. When a blocking check fails, the step fails without recording any month as materialised:
    Dagster's blocking stops only the steps of the same run, and a backfill runs the next asset's months in
    another run, which would read what the check rejected.
    """
    months = context.partition_keys
    results = [(month, build(month)) for month in months]
    if len(months) == 1:
        checks = list(results[0][1].check_results)
    else:
        by_name: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
        for month, result in results:
            for check in result.check_results:
                by_name.setdefault(check.check_name, []).append((month, check))
        checks = []
        for name, found in by_name.items():
            failed = [(month, check) for month, check in found if not check.passed]
            checks.append(
                dg.AssetCheckResult(
                    check_name=name,
                    passed=not failed,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "problems": "; ".join(f"{month}: {check.metadata['problems'].value}" for month, check in failed) or "none",
                        "months": f"{months[0]}..{months[-1]}",
                        "failed_months": len(failed),
                    },
                )
            )
    blocking = {spec.name for spec in context.assets_def.check_specs if spec.blocking}
    rejected = [c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR and c.check_name in blocking]
    if rejected:
        yield from checks
        dagster_internals.fail_on_blocking_checks(
            f"{context.asset_key.to_user_string()}: blocking check {', '.join(c.check_name for c in rejected)} failed"
        )
    if len(months) == 1:
        yield dg.MaterializeResult(metadata=results[0][1].metadata, check_results=checks)
        return
    for month, result in results:
        if result.metadata:
            context.add_asset_metadata(dict(result.metadata), partition_key=month)
    yield dg.MaterializeResult(check_results=checks)


def _each_training_month(context: dg.AssetExecutionContext, pipeline: PipelineResource, build) -> Iterator:
    """_each_month for a model asset: ``build(context, pipeline, month, windows)`` on the prepared device, the
    run's months sharing their training windows (one load per training month)."""
    pipeline.prepare_device()
    windows = model_store.TrainingWindows(pipeline.layout, pipeline.config)
    yield from _each_month(context, lambda month: build(context, pipeline, month, windows))


def _finish(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> None:
    created = ensure_views(pipeline.layout, log=context.log.warning)
    if created:
        context.log.info(f"created DuckDB views {created} in {pipeline.layout.duckdb_path}")


@dg.asset(
    partitions_def=monthly,
    backfill_policy=MONTH_RANGE_POLICY,
    group_name="market",
    kinds={"parquet"},
    check_specs=[checks.RAW_BARS_CHECK],
)
def raw_bars(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator[dg.MaterializeResult]:
    """The month's daily bars of every listed stock, the stock table as of the month end and, on the synthetic market, the truth."""
    if tushare_source.is_tushare(pipeline.source):  # the month just ended, or the current month's new sessions
        tushare_source.fetch_months(pipeline.home, list(context.partition_keys), context.log)
    yield from _each_month(context, lambda month: _raw_bars_month(context, pipeline, month))


def _raw_bars_month(context: dg.AssetExecutionContext, pipeline: PipelineResource, month: str) -> dg.MaterializeResult:
    pipeline.check_writable()
    try:
        frames = market_store.read_month(pipeline.source_cache, month)
    except (FileNotFoundError, NotADirectoryError, PermissionError, input_files.InputValidationError):
        raise
    except OSError as exc:
        raise dg.RetryRequested(max_retries=TRANSIENT_IO_RETRIES, seconds_to_wait=5) from exc
    layout = pipeline.layout
    stamp = layout.stamp("raw_bars", month)
    write_parquet(frames.daily.assign(month=month), layout.partition("raw_bars/daily", month), stamp)
    write_parquet(frames.stocks.assign(month=month), layout.partition("raw_bars/stocks", month), stamp)
    if frames.truth is not None:
        write_parquet(frames.truth, layout.partition("raw_bars/truth", month), stamp)
    if frames.issues is not None:  # written when empty too: the month was read and had none
        write_parquet(frames.issues, layout.partition("raw_bars/issues", month), stamp)
    if frames.index_weight is not None:
        write_parquet(frames.index_weight, layout.partition("raw_bars/index_weight", month), stamp)
    _finish(context, pipeline)
    return dg.MaterializeResult(
        metadata={**market_store.month_summary(frames), "source": pipeline.source},
        check_results=[checks.check_raw_bars(frames.daily, frames.stocks, month)],
    )


@dg.asset(
    partitions_def=monthly,
    backfill_policy=MONTH_RANGE_POLICY,
    group_name="features",
    kinds={"duckdb", "parquet"},
    ins={"raw_bars": _history("raw_bars", FEATURE_LOOKBACK_MONTHS)},
    check_specs=[checks.FEATURES_CHECK],
)
def features(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator[dg.MaterializeResult]:
    """The 18 daily volume-price features of every stock and traded day of the month, computed in DuckDB on adjusted prices."""
    yield from _each_month(context, lambda month: _features_month(context, pipeline, month))


def _features_month(context: dg.AssetExecutionContext, pipeline: PipelineResource, month: str) -> dg.MaterializeResult:
    layout = pipeline.layout
    daily = read_months(layout, "raw_bars/daily", session_calendar.months_back(month, FEATURE_LOOKBACK_MONTHS, first=layout.first_month))
    table = compute_features(daily, month)
    write_parquet(table, layout.partition("features", month), layout.stamp("features", month))
    _finish(context, pipeline)
    return dg.MaterializeResult(
        metadata={"rows": len(table), "stocks": int(table["ts_code"].nunique())},
        check_results=[checks.check_features(table, FEATURE_NAMES, month)],
    )


@dg.asset(
    partitions_def=monthly,
    backfill_policy=MONTH_RANGE_POLICY,
    group_name="features",
    kinds={"numpy", "parquet"},
    ins={
        "features": _history("features", SEQUENCE_LOOKBACK_MONTHS),
        "raw_bars": _history("raw_bars", 1),
    },
    check_specs=[checks.SAMPLES_CHECK],
)
def samples(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator[dg.MaterializeResult]:
    """Every listed stock on the month's sample dates: universe flags and its preprocessed 40 x 18 sequence."""
    yield from _each_month(context, lambda month: _samples_month(context, pipeline, month))


def _samples_month(context: dg.AssetExecutionContext, pipeline: PipelineResource, month: str) -> dg.MaterializeResult:
    layout, cfg = pipeline.layout, pipeline.config
    history = read_months(layout, "features", session_calendar.months_back(month, SEQUENCE_LOOKBACK_MONTHS, first=layout.first_month))
    daily = read_months(layout, "raw_bars/daily", session_calendar.months_back(month, 1, first=layout.first_month))
    stocks = read_months(layout, "raw_bars/stocks", [month])
    X, table = build_samples(history, daily, stocks, month, cfg.samples)
    steps = scale_steps(history, table, cfg.samples)  # for ModelConfig.step_channels
    save_samples(layout.dataset("samples"), month, X, table, layout.stamp("samples", month), steps)
    _finish(context, pipeline)
    per_date = table.groupby("trade_date")[["eligible", "buyable"]].sum()
    return dg.MaterializeResult(
        metadata={
            "sample_dates": len(per_date),
            "sequences": int(len(X)),
            "eligible_on_rebalance_date": int(per_date["eligible"].iloc[-1]) if len(per_date) else 0,
            "per_date": dg.MetadataValue.md(per_date.reset_index().astype(str).to_markdown(index=False)),
        },
        check_results=[checks.check_samples(X, table, month)],
    )


_model_history = {
    "samples": _history("samples", MODEL_LOOKBACK_MONTHS),
    "raw_bars": _history("raw_bars", MODEL_LOOKBACK_MONTHS),
}


@dg.asset(
    partitions_def=monthly,
    backfill_policy=MONTH_RANGE_POLICY,
    group_name="model",
    kinds={"pytorch"},
    ins=_model_history,
    pool="gpu",
    op_tags=TRAINING_OP_TAGS,
)
def gan_model(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator[dg.MaterializeResult]:
    """The GAN stage of the month's model: an LSTM generator and CNN discriminator trained on its training window."""
    yield from _each_training_month(context, pipeline, _gan_model_month)


def _gan_model_month(
    context: dg.AssetExecutionContext, pipeline: PipelineResource, month: str, windows: model_store.TrainingWindows
) -> dg.MaterializeResult:
    from factor_pipeline.evaluation.report.plots import plot_curves

    layout, cfg = pipeline.layout, pipeline.config
    train_month = training.training_month(month, cfg.model.retrain_months)
    pointer = {"month": month, "train_month": train_month, "mode": cfg.gan.mode, "gan_id": None}
    metadata = {"trained_now": False}
    # Mode off has no GAN stage: nothing is loaded or trained, only the pointer the checkpoint step reads.
    if cfg.gan.mode != "off":
        window = windows(train_month)
        progress = TrainingProgress(context.log.info, f"gan_model {month} (trains {train_month})")
        artifact = model_store.ensure_gan(layout, window, cfg, log=context.log.info, progress=progress.gan_step)
        pointer["gan_id"] = artifact.gan_id
        side = artifact.sidecar
        metadata = {
            "trained_now": artifact.trained,
            "data_fingerprint": window.fingerprint,
            "steps_run": side["steps_run"],
            "stop_reason": side["stop_reason"],
            "losses": dg.MetadataValue.md(
                _png_markdown(plot_curves({"generator": side["g_loss"], "discriminator": side["d_loss"]}, "GAN losses"), "GAN losses")
            ),
            "real_vs_generated": dg.MetadataValue.md(pd.DataFrame(side["similarity"]).round(4).to_markdown(index=False)),
        }
    write_json({**pointer, "provenance": layout.stamp("gan_model", month)}, layout.partition_path("gan_model", month))
    metadata = {**pointer, **metadata}
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=monthly,
    backfill_policy=MONTH_RANGE_POLICY,
    group_name="model",
    kinds={"pytorch"},
    ins={"gan_model": dg.AssetIn(dagster_type=dg.Nothing), **_model_history},
    pool="gpu",
    op_tags=TRAINING_OP_TAGS,
)
def gru_checkpoint(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator[dg.MaterializeResult]:
    """The GRU(128,128)+MLP(256,64,64) checkpoint behind the month's factor: trained at a retrain month, else the newest one."""
    yield from _each_training_month(context, pipeline, _gru_checkpoint_month)


def _gru_checkpoint_month(
    context: dg.AssetExecutionContext, pipeline: PipelineResource, month: str, windows: model_store.TrainingWindows
) -> dg.MaterializeResult:
    from factor_pipeline.evaluation.report.plots import plot_curves

    layout, cfg = pipeline.layout, pipeline.config
    layout.verify("gan_model", month)
    pointer = read_json(layout.partition_path("gan_model", month))
    train_month = pointer["train_month"]
    window = windows(train_month)
    gan_artifact = model_store.ensure_gan(layout, window, cfg, log=context.log.info)
    if gan_artifact.gan_id != pointer["gan_id"]:
        raise StorageError(
            f"gan_model {month} points at GAN {pointer['gan_id']} but the current data and config give "
            f"{gan_artifact.gan_id}: re-materialise gan_model for {month}"
        )
    progress = TrainingProgress(context.log.info, f"gru_checkpoint {month} (trains {train_month})")
    main = model_store.ensure_checkpoint(layout, window, cfg, gan_artifact, log=context.log.info, progress=progress.gru_epoch)
    record = {"month": month, "train_month": train_month, "checkpoint": main.checkpoint_id, "gan_mode": cfg.gan.mode}
    if cfg.factor.gan_off_baseline and cfg.gan.mode != "off":
        off_cfg = cfg.replace(gan={"mode": "off"})
        progress = TrainingProgress(context.log.info, f"gru_checkpoint {month} (trains {train_month}, GAN-off baseline)")
        off = model_store.ensure_checkpoint(
            layout, window, off_cfg, model_store.GanArtifact(None, None, {}, False), log=context.log.info, progress=progress.gru_epoch
        )
        record["gan_off_checkpoint"] = off.checkpoint_id
    write_json({**record, "provenance": layout.stamp("gru_checkpoint", month)}, layout.partition_path("gru_checkpoint", month))
    side = main.sidecar
    curves = plot_curves({"train loss (-IC)": side["train_loss"], "validation IC": side["val_ic"]}, "GRU training")
    return dg.MaterializeResult(
        metadata={
            **record,
            "trained_now": main.trained,
            "epochs_run": side["epochs_run"],
            "best_epoch": side["best_epoch"],
            "best_val_ic": float(side["best_val_ic"]),
            "precision": side.get("precision", "fp32"),  # what ran; checkpoints before model.precision were fp32
            "train_dates": f"{side['train_dates'][0]} .. {side['train_dates'][-1]} ({len(side['train_dates'])})",
            "validation_dates": f"{side['validation_dates'][0]} .. {side['validation_dates'][-1]} ({len(side['validation_dates'])})",
            "checkpoint_path": dg.MetadataValue.path(str(main.path)),
            "curves": dg.MetadataValue.md(_png_markdown(curves, "GRU training curves")),
        }
    )


@dg.asset(
    partitions_def=monthly,
    backfill_policy=MONTH_RANGE_POLICY,
    group_name="factor",
    kinds={"pytorch", "parquet"},
    ins={
        "gru_checkpoint": dg.AssetIn(dagster_type=dg.Nothing),
        "samples": dg.AssetIn(dagster_type=dg.Nothing),
        "raw_bars": _history("raw_bars", factor_table.REVERSAL_HISTORY_MONTHS),
    },
    check_specs=[checks.PRET_CHECK],
)
def pret_factor(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator[dg.MaterializeResult]:
    """pRet of every eligible stock on the rebalance date, with the 20-day reversal and GAN-off baselines beside it."""
    yield from _each_month(context, lambda month: _pret_factor_month(context, pipeline, month))


def _pret_factor_month(context: dg.AssetExecutionContext, pipeline: PipelineResource, month: str) -> dg.MaterializeResult:
    from factor_pipeline.evaluation import store as evaluation_store

    out, record = evaluation_store.score_and_store(pipeline.layout, month, pipeline.config)
    raw = out["pret_raw"].to_numpy()
    _finish(context, pipeline)
    return dg.MaterializeResult(
        metadata={
            "stocks": len(out),
            "rebalance_date": str(out["rebalance_date"].iloc[0].date()),
            "checkpoint": record["checkpoint"],
            "train_month": record["train_month"],
            "pret_mean": float(np.mean(raw)),
            "pret_std": float(np.std(raw)),
        },
        check_results=[checks.check_pret(out, month)],
    )


@dg.asset(
    partitions_def=monthly,
    backfill_policy=MONTH_RANGE_POLICY,
    group_name="evaluation",
    kinds={"parquet"},
    ins={
        "pret_factor": _history("pret_factor", 1),
        "samples": dg.AssetIn(dagster_type=dg.Nothing),
        # 12-1 momentum, a style the evaluation measures, starts at d(m-12).
        "raw_bars": _history("raw_bars", style.MOMENTUM_MONTHS[0], months_forward=1),
    },
)
def factor_evaluation(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator[dg.MaterializeResult]:
    """IC, Rank IC, every group and the long portfolio, turnover, industry attribution, style exposure and index pools
    of the month's factor, on the next month's returns."""
    yield from _each_month(context, lambda month: _factor_evaluation_month(context, pipeline, month))


def _factor_evaluation_month(context: dg.AssetExecutionContext, pipeline: PipelineResource, month: str) -> dg.MaterializeResult:
    from factor_pipeline.evaluation import store as evaluation_store

    result = evaluation_store.evaluate_and_store(pipeline.layout, month, pipeline.config, log=context.log.info)
    _finish(context, pipeline)
    return dg.MaterializeResult(metadata=result)


@dg.asset(
    partitions_def=monthly,
    backfill_policy=MONTH_RANGE_POLICY,
    group_name="evaluation",
    kinds={"markdown", "html"},
    # The report covers every evaluated month up to its own. Depending on the previous month's report (which
    # waited for its own evaluation, and so on) makes that visible to the graph: a backfill from the UI, in
    # whatever order, writes each month's report after every evaluation of the range before it.
    deps=[
        factor_evaluation,
        dg.AssetDep("factor_report", partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
    ],
)
def factor_report(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator[dg.MaterializeResult]:
    """The factor report over every evaluated month up to this one: the seed's table, every group, IC statistics and
    decay, styles, costs, index benchmarks and holdings, for pRet and its baselines."""
    yield from _each_month(context, lambda month: _factor_report_month(context, pipeline, month))


def _factor_report_month(context: dg.AssetExecutionContext, pipeline: PipelineResource, month: str) -> dg.MaterializeResult:
    from factor_pipeline.evaluation import store as evaluation_store

    written = evaluation_store.write_report(pipeline.layout, month, pipeline.config)
    _finish(context, pipeline)
    metadata = {
        "report_markdown": dg.MetadataValue.path(str(written["markdown"])),
        "report_html": dg.MetadataValue.path(str(written["html"])),
        "table": dg.MetadataValue.md(f"```\n{written['table']}\n```"),
    }
    for name, png in written["images"].items():
        metadata[name] = dg.MetadataValue.md(_png_markdown(png, name))
    for title, markdown in written["headlines"].items():
        metadata[title] = dg.MetadataValue.md(markdown)
    return dg.MaterializeResult(metadata=metadata)


ALL_ASSETS = [raw_bars, features, samples, gan_model, gru_checkpoint, pret_factor, factor_evaluation, factor_report]

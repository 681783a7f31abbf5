"""The learnable ceiling: the profile's model trained on the noise-free truth, read on held-out month ends.

    .venv/bin/python bench/ceiling.py [--train-months 2023-06,2023-12,2024-06] [--epochs 40] [--profile demo]
        [--stocks 0] [--seed 0] [--out bench/results/<date>/ceiling.json]

A diagnostic, never an input of the pipeline. At every sample date of each training window, the label is the
synthetic market's expected return over the next 20 sessions given its state at that date
(``generate_market(..., session_truth_horizon=20)``): point-in-time, and without the realised return's noise.
The window, its purged split (a gap of ceil(20 / sample_every) dates before validation, so that no
validation label's 20 sessions overlap a training one's) and the model inputs are the pipeline's own. The
model is read on the rebalance dates of the six months after its training month, which it never saw, against
the month-end truth (truth_corr, docs/metrics.md) and against each planted effect's part of it
(bench_training.planted_components), after every epoch. So the curve shows how many optimizer steps each
effect needs: if a long budget reaches a high truth_corr here, training on real labels is bound by their
noise, not by what the inputs hold or by what the model can represent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_training import Dataset, month_range  # noqa: E402

from factor_pipeline.config import profile_config  # noqa: E402
from factor_pipeline.evaluation import metrics  # noqa: E402
from factor_pipeline.market import session_calendar  # noqa: E402
from factor_pipeline.market.synthetic import generate_market  # noqa: E402
from factor_pipeline.model import gru, precision, training  # noqa: E402
from factor_pipeline.model import store as model_store  # noqa: E402

HORIZON = 20  # sessions: the training label's horizon (samples.label_horizon)
HELD_OUT_MONTHS = 6  # each training month's model is read on the next six rebalance dates, as in the pipeline


def session_truth(data: Dataset) -> pd.Series:
    """E[20-session return | state] at every (trade_date, ts_code) of the dataset's market (cached beside it)."""
    path = data.dir / f"session_truth_h{HORIZON}.parquet"
    if not path.exists():
        generate_market(data.cfg.market, session_truth_horizon=HORIZON).session_truth.to_parquet(path)
    frame = pd.read_parquet(path)
    return frame.set_index(["trade_date", "ts_code"])["expected_return"]


def truth_training_data(data: Dataset, truth: pd.Series, train_month: str, cfg) -> training.TrainingData:
    """The pipeline's training window and split for ``train_month``, labelled with the session truth."""
    dates = training.training_dates(train_month, cfg)
    rows = data.samples[data.samples["trade_date"].isin(dates)]
    label = truth.reindex(pd.MultiIndex.from_arrays([rows["trade_date"], rows["ts_code"]])).to_numpy()
    keep = np.isfinite(label)
    rows, label = rows[keep].reset_index(drop=True), label[keep]
    return training.group_training_data(train_month, rows, data.inputs(rows, cfg), label, cfg)


def held_out(data: Dataset, train_month: str, components: pd.DataFrame) -> list[tuple[str, np.ndarray, pd.DataFrame]]:
    """(month, inputs, truth and planted parts) of the rebalance dates of the months after ``train_month``."""
    out = []
    for month in month_range(session_calendar.shift_month(train_month, 1), session_calendar.shift_month(train_month, HELD_OUT_MONTHS)):
        frame = data.scored[data.scored["month"] == month]
        if frame.empty:
            continue
        rows = data.samples.set_index("seq_index").loc[frame["seq_index"].to_numpy()].reset_index()
        parts = frame[["month", "ts_code"]].join(components, on=["month", "ts_code"])
        truth = data.truth[data.truth["month"] == month].set_index("ts_code")["expected_return"]
        parts["truth"] = frame["ts_code"].map(truth).to_numpy()
        out.append((month, rows, parts.reset_index(drop=True)))
    return out


def reads(model, months, data: Dataset, cfg) -> dict[str, list[float]]:
    """Per held-out month: truth_corr of the model's prediction, and its correlation with each planted part."""
    out: dict[str, list[float]] = {}
    with torch.no_grad():
        for _, rows, parts in months:
            X = torch.as_tensor(np.asarray(data.inputs(rows, cfg), dtype=np.float32))
            pred = model(X).double().numpy()
            out.setdefault("truth_corr", []).append(metrics.truth_corr(pred, parts["truth"].to_numpy()))
            for name in parts.columns.drop(["month", "ts_code", "truth"]):
                out.setdefault(name, []).append(metrics.pearson(pred, parts[name].to_numpy()))
    return out


def fit_on_truth(td: training.TrainingData, months, data: Dataset, cfg, epochs: int, seed: int, log) -> list[dict]:
    """Train for ``epochs`` epochs on the truth-labelled window; after each, the validation IC and the reads."""
    cpu = torch.device("cpu")
    train = gru.to_tensors(list(zip(td.X[: td.n_train], td.y[: td.n_train])), cpu)
    val = gru.to_tensors(list(zip(td.X[td.val_start :], td.y[td.val_start :])), cpu)
    prec = precision.resolve(cfg.model.precision, cpu)
    curve = []
    with gru.training_run(cfg.model, train[0][0].shape[-1], train[0][0].shape[1], seed, cpu) as (model, optimizer, order):
        for epoch in range(1, epochs + 1):
            gru.train_epoch(model, optimizer, train, order, prec)
            with precision.autocast(prec):
                val_ic = gru._validation_ic(model, val)
            point = {"epoch": epoch, "steps": epoch * len(train), "val_ic": val_ic}
            with precision.autocast(prec):
                monthly = reads(model, months, data, cfg)
            point.update({k: float(np.nanmean(v)) for k, v in monthly.items()})
            point["monthly_truth_corr"] = monthly["truth_corr"]
            curve.append(point)
            log(f"{td.train_month} epoch {epoch} ({point['steps']} steps): val IC {val_ic:.3f}, held-out truth_corr "
                f"{point['truth_corr']:.3f}, reads " + ", ".join(f"{k} {point[k]:.2f}" for k in ("reversal", "episodes", "attention") if k in point))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-months", default="2023-06,2023-12,2024-06")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--stocks", type=int, default=0, help="market.n_stocks instead of the profile's")
    parser.add_argument("--seed", type=int, default=0, help="seed index (model seed + 100 x index)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cfg = profile_config(args.profile)
    if args.stocks:
        cfg = cfg.replace(market={"n_stocks": args.stocks})
    cfg = cfg.replace(model={"ensemble": 1, "seed": cfg.model.seed + 100 * args.seed})
    train_months = args.train_months.split(",")
    last = session_calendar.shift_month(train_months[-1], HELD_OUT_MONTHS - 1)
    started = time.time()
    data = Dataset(cfg, train_months[0], last, "embedded")
    truth, components = session_truth(data), data.components()
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    curves = {}
    with model_store.torch_threads(cfg.model.num_threads):
        for month in train_months:
            td = truth_training_data(data, truth, month, cfg)
            curves[month] = fit_on_truth(td, held_out(data, month, components), data, cfg, args.epochs, cfg.model.seed, log)
    # Per epoch: the mean over training months of the held-out reads; truth_corr with its SE over all months.
    summary = []
    for e in range(args.epochs):
        monthly = [v for c in curves.values() for v in c[e]["monthly_truth_corr"]]
        point = {"epoch": e + 1, "steps": [c[e]["steps"] for c in curves.values()], "truth_corr": metrics.mean_and_se(pd.Series(monthly))}
        for key in ("val_ic", "reversal", "episodes", "attention"):
            point[key] = round(float(np.mean([c[e][key] for c in curves.values()])), 4)
        summary.append(point)
    # The epoch a validation-chosen stop would keep: the best validation IC (on the truth), per training month.
    chosen = [max(c, key=lambda p: p["val_ic"]) for c in curves.values()]
    result = {
        "profile": args.profile,
        "stocks": cfg.market.n_stocks,
        "train_months": train_months,
        "model": {k: getattr(cfg.model, k) for k in ("gru_hidden", "mlp_hidden", "lr", "step_channels", "step_neutralize", "label_transform")},
        "seconds": round(time.time() - started, 1),
        "curve": summary,
        "validation_chosen": {
            "epochs": [p["epoch"] for p in chosen],
            "truth_corr": metrics.mean_and_se(pd.Series([v for p in chosen for v in p["monthly_truth_corr"]])),
            "reads": {k: round(float(np.mean([p[k] for p in chosen])), 4) for k in ("reversal", "episodes", "attention")},
        },
    }
    text = json.dumps(result, indent=1, default=float)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    best = max(summary, key=lambda p: p["truth_corr"]["mean"])
    log(f"best epoch {best['epoch']}: truth_corr {best['truth_corr']['mean']:.3f} +- {best['truth_corr']['se']:.3f}; "
        f"validation-chosen epochs {result['validation_chosen']['epochs']}: {result['validation_chosen']['truth_corr']}")


if __name__ == "__main__":
    main()

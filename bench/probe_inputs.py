"""Diagnostic only: how much of the truth a linear (ridge) read of each input set reaches.

    PYTHONPATH=. .venv/bin/python bench/probe_inputs.py [--from 2021-12] [--to 2024-11] [--target label|truth]
        [--neutralize industry,size,beta]

Not a factor and not used by the pipeline. For each retrain month (June and December) a ridge regression
is fitted on that training window's samples (the same dates, purge and label masking as bench_training.py)
and scored on the months it serves, by truth_corr (docs/metrics.md). ``--target label`` fits the per-date rank
label, as the GRU does (what is learnable from the labels); ``--target truth`` fits the truth itself on the
window's month ends (how much of the truth the inputs hold linearly: a ceiling, never available in
production). Input sets: "seed" (the per-window z-scored 40 x 18 windows), "steps" (the 11 non-level
features standardised across stocks at each step, bench_training's scale_steps), "side" (the scale side
inputs), and unions. ``--neutralize`` takes those exposures out of the labels first, per date, as
``model.label_neutralize`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_training as bt  # noqa: E402
from factor_pipeline.config import profile_config  # noqa: E402
from factor_pipeline.evaluation import metrics  # noqa: E402
from factor_pipeline.features.daily import FEATURE_NAMES  # noqa: E402
from factor_pipeline.features.samples import SIDE_COLUMNS, STATE_FEATURES, STATE_SIDE_COLUMNS  # noqa: E402
from factor_pipeline.market import session_calendar  # noqa: E402
from factor_pipeline.model import inputs, training  # noqa: E402


def design(data: bt.Dataset, rows: pd.DataFrame, name: str, last: int) -> np.ndarray:
    index = rows["seq_index"].to_numpy()
    parts = []
    for part in name.split("+"):
        if part == "seed":
            parts.append(np.asarray(data.X[index])[:, -last:, :].reshape(len(index), -1))
        elif part == "seed_state":  # the seed's preprocessing, non-level features only
            keep = [FEATURE_NAMES.index(f) for f in STATE_FEATURES]
            parts.append(np.asarray(data.X[index])[:, -last:, keep].reshape(len(index), -1))
        elif part.startswith("ind_"):  # a step channel demeaned within the date's industries
            feature = part.split("_", 1)[1]
            values = np.asarray(data.S[index])[:, -last:, STATE_FEATURES.index(feature)].astype(np.float64)
            frame = pd.DataFrame(values)
            keys = [rows["trade_date"].to_numpy(), rows["industry"].to_numpy()]
            parts.append(values - frame.groupby(keys).transform("mean").to_numpy())
        elif part.startswith("seed_") or part.startswith("steps_"):  # one named feature, e.g. steps_ret
            kind, feature = part.split("_", 1)
            source = data.X if kind == "seed" else data.S
            names = FEATURE_NAMES if kind == "seed" else STATE_FEATURES
            parts.append(np.asarray(source[index])[:, -last:, names.index(feature)].reshape(len(index), -1))
        elif part == "steps":
            parts.append(np.asarray(data.S[index])[:, -last:, :].reshape(len(index), -1))
        elif part == "side":
            parts.append(rows[list(STATE_SIDE_COLUMNS)].to_numpy(dtype=np.float64))
        elif part == "side_all":
            parts.append(rows[list(SIDE_COLUMNS)].to_numpy(dtype=np.float64))
        else:
            raise SystemExit(f"unknown input set {part!r}")
    return np.concatenate(parts, axis=1).astype(np.float64)


def ridge(A: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    mean = A.mean(0)
    Z = A - mean
    w = np.linalg.solve(Z.T @ Z + lam * len(Z) * np.eye(Z.shape[1]), Z.T @ (y - y.mean()))
    return w, mean


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="first", default="2021-12")
    parser.add_argument("--to", dest="last", default="2024-11")
    parser.add_argument("--sets", default="seed,steps,side,steps+side,seed+steps")
    parser.add_argument("--lams", default="0.01,0.1,1,10")
    parser.add_argument("--target", default="label", choices=("label", "truth"))
    parser.add_argument("--neutralize", default="", help="label exposures to take out per date, e.g. industry,size,beta")
    parser.add_argument("--steps", type=int, default=40, help="use only the last N steps of each window")
    parser.add_argument("--horizon", type=int, default=20, help="sessions of the training label")
    parser.add_argument("--stocks", type=int, default=0, help="market.n_stocks instead of the profile's")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    base = profile_config("demo")
    if args.stocks:
        base = base.replace(market={"n_stocks": args.stocks})
    months = bt.month_range(args.first, args.last)
    first_train = training.training_month(args.first, base.model.retrain_months)
    longest = max([base.model.train_window_sessions] + [o.get("train_window_sessions", 0) for o in bt.OPTIONS.values()])
    data = bt.Dataset(base.replace(model={"train_window_sessions": longest}), first_train, args.last, "embedded")
    cfg = base
    by_seq = data.samples.set_index("seq_index")
    truth = data.truth
    out = {}
    for name in args.sets.split(","):
        for lam in [float(x) for x in args.lams.split(",")]:
            fitted, per_month = {}, {}
            for m in months:
                tm = training.training_month(m, cfg.model.retrain_months)
                if tm not in fitted:
                    td_rows = _training_rows(data, tm, cfg, args.horizon)
                    if args.target == "truth":
                        ends = {session_calendar.rebalance_date(k) for k in session_calendar.months_between(
                            session_calendar.month_of(td_rows["trade_date"].min()), tm)}
                        td_rows = td_rows[td_rows["trade_date"].isin(ends)].copy()
                        t = truth.set_index(["month", "ts_code"])["expected_return"]
                        td_rows["y"] = t.reindex(pd.MultiIndex.from_arrays([td_rows["month"], td_rows["ts_code"]])).to_numpy()
                        td_rows = td_rows[np.isfinite(td_rows["y"])]
                        td_rows["y"] = td_rows.groupby("trade_date")["y"].transform(lambda v: (v - v.mean()) / v.std())
                    else:
                        exposures = tuple(e for e in args.neutralize.split(",") if e)
                        for _, idx in td_rows.groupby("trade_date").indices.items():
                            td_rows.loc[idx, "label"] = inputs.exposure_residual(
                                td_rows["label"].to_numpy()[idx], td_rows.iloc[idx], exposures)
                        td_rows["y"] = td_rows.groupby("trade_date")["label"].transform(
                            lambda v: training.transform_labels(v.to_numpy(), "rank"))
                    A = design(data, td_rows, name, args.steps)
                    fitted[tm] = ridge(A, td_rows["y"].to_numpy(), lam)
                frame = data.scored[data.scored["month"] == m]
                rows = by_seq.loc[frame["seq_index"].to_numpy()].reset_index()
                w, mean = fitted[tm]
                pred = (design(data, rows, name, args.steps) - mean) @ w
                expected = frame["ts_code"].map(truth[truth["month"] == m].set_index("ts_code")["expected_return"]).to_numpy()
                per_month[m] = (metrics.truth_corr(pred, expected), metrics.truth_corr(frame["reversal_20d"].to_numpy(), expected))
            tc = pd.Series({k: v[0] for k, v in per_month.items()})
            rev = pd.Series({k: v[1] for k, v in per_month.items()})
            key = f"{name} lam={lam:g}"
            level, gap = metrics.mean_and_se(tc), metrics.paired_difference(tc, rev)
            out[key] = {"truth_corr": [level["mean"], level["se"]], "minus_reversal": [gap["mean"], gap["se"]]}
            print(f"{args.target} {key}: truth_corr {level['mean']:.3f} +- {level['se']:.3f}  "
                  f"- reversal {gap['mean']:+.3f} +- {gap['se']:.3f}  ({len(tc)} months)", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


def _training_rows(data: bt.Dataset, train_month: str, cfg, horizon: int) -> pd.DataFrame:
    """The rows bench_training's Dataset.training_data trains on (validation and purge dates included)."""
    cfg = cfg.replace(model={"label_horizon": horizon})
    dates = training.training_dates(train_month, cfg)
    as_of = session_calendar.rebalance_date(train_month)
    label, label_end = data.labels(horizon)
    s = data.samples.assign(label=label, label_end=label_end)
    rows = s[s["trade_date"].isin(dates) & (s["label_end"] <= as_of) & s["label"].notna()].reset_index(drop=True)
    return rows


if __name__ == "__main__":
    main()

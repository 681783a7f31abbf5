"""Training options measured on the truth: one market and one sample set, many trainings, no Dagster.

    .venv/bin/python bench/bench_training.py [--from 2021-12] [--to 2024-11] [--options seed,default]
        [--seeds 1] [--variant embedded] [--out bench/results/training.json]

The pipeline's own pure functions do every step (generate_market, compute_features, build_samples,
compute_labels, training.group_training_data / gan_batches, and the experimental module's train_members and
predict, which are the pipeline's with the measured options that production left), so a figure here is the
figure the pipeline would produce for the same configuration, but the market, features and samples are
built once per market variant and cached under bench/.cache/, and each option costs only its training.

Each option retrains at the configured retrain months (June and December) on the same window the
pipeline uses, scores every month of the range on its rebalance date, and is judged by truth_corr (the
monthly correlation with truth.expected_return, docs/metrics.md), then by IC, with standard errors over months
and paired differences against the 20-day reversal. Options are named in OPTIONS below; "seed" is the
seed's training exactly (config.SEED_TRAINING). Prints and writes one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factor_pipeline.evaluation import metrics
from factor_pipeline.evaluation import factor_table
from factor_pipeline.features.daily import FEATURE_LOOKBACK_MONTHS, compute_features
from factor_pipeline.features.labels import compute_labels, forward_returns
from factor_pipeline.features.samples import SEQUENCE_LOOKBACK_MONTHS, build_samples, scale_steps
from factor_pipeline.model import gan
from factor_pipeline.model import experimental
from factor_pipeline.model.experimental import experimental as experimental_config
from factor_pipeline.market import session_calendar
from factor_pipeline.market.store import stocks_as_of
from factor_pipeline.model import store as model_store
from factor_pipeline.model import training
from factor_pipeline.config import SEED_TRAINING, STEP_CHANNELS, Config, profile_config  # noqa: E402
from factor_pipeline.market.synthetic import generate_market  # noqa: E402

CACHE = ROOT / "bench" / ".cache"

# Each option is a set of ModelConfig changes on top of the profile; "seed" is the seed's training.
OPTIONS: dict[str, dict] = {
    "seed": dict(SEED_TRAINING),
    "purge": {**SEED_TRAINING, "purge": True},
    "winsor": {**SEED_TRAINING, "label_transform": "winsor"},
    "rank": {**SEED_TRAINING, "label_transform": "rank"},
    "wd": {**SEED_TRAINING, "weight_decay": 1e-2},
    "dropout": {**SEED_TRAINING, "dropout": 0.2},
    "scale": {**SEED_TRAINING, "inputs": "scale"},
    "scale_all": {**SEED_TRAINING, "inputs": "scale_all"},
    "scale_vol": {**SEED_TRAINING, "inputs": "scale_vol"},
    "scale_linear": {**SEED_TRAINING, "inputs": "scale", "side_at": "linear"},
    "scale_vol_linear": {**SEED_TRAINING, "inputs": "scale_vol", "side_at": "linear"},
    "scale_steps": {**SEED_TRAINING, "inputs": "scale_steps"},
    "scale_head": {**SEED_TRAINING, "inputs": "scale", "side_at": "head"},
    "lr1e-4": {**SEED_TRAINING, "lr": 1e-4, "max_epochs": 50, "patience": 10},
    # The demo profile's model size is itself a departure from the seed's GRU(128,128); smaller still:
    "small": {**SEED_TRAINING, "gru_hidden": (32, 32), "mlp_hidden": (64, 16, 16)},
    "seed_size": {**SEED_TRAINING, "gru_hidden": (128, 128), "mlp_hidden": (256, 64, 64)},
    "ens3": {**SEED_TRAINING, "ensemble": 3},
    "ens5": {**SEED_TRAINING, "ensemble": 5},
    "wd1e-3": {**SEED_TRAINING, "weight_decay": 1e-3},
    "epochs30": {**SEED_TRAINING, "max_epochs": 30, "patience": 8},
    "lr3e-4": {**SEED_TRAINING, "lr": 3e-4},
    "window400": {**SEED_TRAINING, "train_window_sessions": 400},
    # Return-unit channels beside the seed's window (ModelConfig.step_channels)
    "step_ret": {**SEED_TRAINING, "step_channels": ("ret",)},
    "step_rets": {**SEED_TRAINING, "step_channels": ("ret", "intraday_ret", "overnight_ret")},
    "step_ret_skip": {**SEED_TRAINING, "step_channels": ("ret",), "linear_skip": True},
    "step_rets_skip": {**SEED_TRAINING, "step_channels": ("ret", "intraday_ret", "overnight_ret"), "linear_skip": True},
    "last20": {**SEED_TRAINING, "window_steps": 20},
    "last30": {**SEED_TRAINING, "window_steps": 30},
    "h10": {**SEED_TRAINING, "label_horizon": 10},
    "h5": {**SEED_TRAINING, "label_horizon": 5},
    "refit": {**SEED_TRAINING, "refit": True},
    "slow": {**SEED_TRAINING, "lr": 3e-4, "max_epochs": 30, "patience": 6},
    "step_all": {**SEED_TRAINING, "step_channels": STEP_CHANNELS},
    "resid": {**SEED_TRAINING, "label_neutralize": ("industry", "size", "beta")},
    "resid_ind": {**SEED_TRAINING, "label_neutralize": ("industry",)},
    # Step channels neutral to industry (and to size and beta), per date and step (ModelConfig.step_neutralize)
    "step_ind": {**SEED_TRAINING, "step_channels": ("ret", "intraday_ret", "overnight_ret"), "step_neutralize": ("industry",)},
    "step_neutral": {**SEED_TRAINING, "step_channels": ("ret", "intraday_ret", "overnight_ret"), "step_neutralize": ("industry", "size", "beta")},
    "default": {},  # whatever ModelConfig's defaults are in the profile
}
# Options that change the GAN stage rather than the GRU's training (GanConfig changes).
GAN_OPTIONS: dict[str, dict] = {
    "gan_augment": {"mode": "augment"},
    "gan_transform": {"mode": "transform"},
    "default_gan_augment": {"mode": "augment"},
    "default_gan_transform": {"mode": "transform"},
}
for _name in ("gan_augment", "gan_transform"):
    OPTIONS[_name] = dict(SEED_TRAINING)
for _name in ("default_gan_augment", "default_gan_transform"):
    OPTIONS[_name] = {}

# Market variants: MarketConfig changes. "embedded" is the default market.
VARIANTS: dict[str, dict] = {
    "embedded": {},
    "low_vol": {"low_vol_premium": 1.0},
    "turnover_reversal": {"turnover_reversal": 1.0},
    "level_only": {"reversal": 0.0, "attention": 0.0, "episodes": 0.0, "low_vol_premium": 1.0},
}


def option(name: str) -> tuple[dict, dict]:
    """(ModelConfig changes, GanConfig changes) of an option name; "a+b" combines the departures of a and b."""
    model_changes, gan_changes = dict(SEED_TRAINING), {}
    for part in name.split("+"):
        if part not in OPTIONS:
            raise SystemExit(f"unknown option {part!r}: one of {', '.join(OPTIONS)}")
        if part == "default" or part.startswith("default_"):
            model_changes = {}
        model_changes.update({k: v for k, v in OPTIONS[part].items() if SEED_TRAINING.get(k, None) != v or k not in SEED_TRAINING})
        gan_changes.update(GAN_OPTIONS.get(part, {}))
    return model_changes, gan_changes


def month_range(first: str, last: str) -> list[str]:
    return session_calendar.months_between(first, last)


class Dataset:
    """Samples, labels, truth and baselines of one market, months first..last (plus their history)."""

    def __init__(self, cfg: Config, first_train: str, last: str, variant: str):
        self.cfg = cfg
        first_window = training.window_months(first_train, cfg)[0]
        self.months = month_range(first_window, last)
        # The first window month is part of the key: a longer training window needs earlier months.
        key = f"v3-{cfg.fingerprint('market', 'samples')}-{first_window}-{first_train}-{last}"
        self.dir = CACHE / f"{variant}-{key}"
        if not (self.dir / "done").exists():
            self._build()
        self.samples = pd.read_parquet(self.dir / "samples.parquet")
        self.X = np.load(self.dir / "X.npy", mmap_mode="r")
        self.S = np.load(self.dir / "S.npy", mmap_mode="r")
        self.truth = pd.read_parquet(self.dir / "truth.parquet")
        self.scored = pd.read_parquet(self.dir / "scored.parquet")
        self._components: pd.DataFrame | None = None

    def components(self) -> pd.DataFrame:
        """The truth split by planted effect, (month, ts_code) x effect (cached): see ``planted_components``."""
        if self._components is None:
            path = self.dir / "components.parquet"
            if not path.exists():
                planted_components(self.cfg.market).to_parquet(path)
            self._components = pd.read_parquet(path)
        return self._components

    def _build(self) -> None:
        started = time.time()
        market = generate_market(self.cfg.market)
        daily = market.daily.copy()
        daily["month"] = daily["trade_date"].dt.strftime("%Y-%m")
        stocks = market.stocks
        by_month = {m: g for m, g in daily.groupby("month")}
        feats: dict[str, pd.DataFrame] = {}
        feature_months = month_range(session_calendar.shift_month(self.months[0], -SEQUENCE_LOOKBACK_MONTHS), self.months[-1])
        for m in feature_months:
            history = [by_month[k] for k in month_range(session_calendar.shift_month(m, -FEATURE_LOOKBACK_MONTHS), m) if k in by_month]
            feats[m] = compute_features(pd.concat(history, ignore_index=True), m)
        arrays, steps, frames, offset = [], [], [], 0
        for m in self.months:
            history = pd.concat([feats[k] for k in month_range(session_calendar.shift_month(m, -SEQUENCE_LOOKBACK_MONTHS), m)], ignore_index=True)
            bars = pd.concat([by_month[k] for k in (session_calendar.shift_month(m, -1), m) if k in by_month], ignore_index=True)
            X, table = build_samples(history, bars, stocks_as_of(stocks, session_calendar.rebalance_date(m)), m, self.cfg.samples)
            steps.append(scale_steps(history, table, self.cfg.samples))
            table = table[table["seq_index"] >= 0].reset_index(drop=True)
            table["seq_index"] += offset
            offset += len(X)
            arrays.append(X)
            frames.append(table)
        samples = pd.concat(frames, ignore_index=True)
        X = np.concatenate(arrays)
        # Labels as of the end of the data; each training month masks those not yet closed at its date.
        samples["label"] = compute_labels(daily, samples, self.cfg.samples.label_horizon, daily["trade_date"].max()).to_numpy()
        end_position = session_calendar.session_positions(samples["trade_date"], "samples") + self.cfg.samples.label_horizon
        samples["label_end"] = session_calendar.all_sessions().values[np.minimum(end_position, len(session_calendar.all_sessions()) - 1)]

        # Rebalance-date scoring frame: realised R(i,m), the truth and the single-factor baselines.
        adj = daily.assign(adj_close=daily["close"] * daily["adj_factor"])[daily["volume"] > 0]
        scored = []
        for m in self.months:
            d = session_calendar.rebalance_date(m)
            rows = samples[samples["trade_date"] == d]
            if rows.empty:
                continue
            try:
                end = session_calendar.rebalance_date(session_calendar.shift_month(m, 1))
            except session_calendar.CalendarHorizonError:
                continue
            frame = rows[["month", "trade_date", "ts_code", "seq_index"]].copy()
            targets = pd.DataFrame({"ts_code": frame["ts_code"], "start_date": d, "end_date": end})
            frame["fwd_return"] = forward_returns(daily, targets).to_numpy()
            window = adj[(adj["trade_date"] <= d) & (adj["trade_date"] > d - pd.Timedelta(days=70))]
            frame["reversal_20d"] = frame["ts_code"].map(factor_table.reversal_20d(window[["ts_code", "trade_date", "adj_close"]], d)).to_numpy()
            on_d = feats[m][feats[m]["trade_date"] == d].set_index("ts_code")
            # Classic directions, fixed in advance: low abnormal turnover and low volatility earn more.
            frame["abnormal_turnover"] = -frame["ts_code"].map(on_d["turnover_ratio_20"]).to_numpy()
            log_ret = np.log(window.sort_values("trade_date")["adj_close"]).groupby(window.sort_values("trade_date")["ts_code"]).diff()
            vol = log_ret.groupby(window.sort_values("trade_date")["ts_code"]).apply(lambda s: s.tail(20).std())
            frame["low_volatility"] = -frame["ts_code"].map(vol).to_numpy()
            scored.append(frame)
        self.dir.mkdir(parents=True, exist_ok=True)
        samples.to_parquet(self.dir / "samples.parquet")
        np.save(self.dir / "X.npy", X)
        np.save(self.dir / "S.npy", np.concatenate(steps))
        market.truth.to_parquet(self.dir / "truth.parquet")
        pd.concat(scored, ignore_index=True).to_parquet(self.dir / "scored.parquet")
        (self.dir / "done").write_text(f"{time.time() - started:.1f} s\n")

    def inputs(self, rows: pd.DataFrame, cfg: Config) -> np.ndarray:
        index = rows["seq_index"].to_numpy()
        return experimental.model_input(np.asarray(self.X[index]), np.asarray(self.S[index]), rows, cfg)

    def labels(self, horizon: int) -> tuple[pd.Series, pd.Series]:
        """(label, label_end) of every sample for a training label of ``horizon`` sessions (cached)."""
        if horizon == self.cfg.samples.label_horizon:
            return self.samples["label"], self.samples["label_end"]
        path = self.dir / f"labels_h{horizon}.parquet"
        if not path.exists():
            market = generate_market(self.cfg.market)
            frame = pd.DataFrame(
                {"label": compute_labels(market.daily, self.samples, horizon, market.daily["trade_date"].max()).to_numpy()}
            )
            end_position = session_calendar.session_positions(self.samples["trade_date"], "samples") + horizon
            sessions = session_calendar.all_sessions()
            frame["label_end"] = sessions.values[np.minimum(end_position, len(sessions) - 1)]
            frame.to_parquet(path)
        frame = pd.read_parquet(path)
        return frame["label"].set_axis(self.samples.index), frame["label_end"].set_axis(self.samples.index)

    def training_rows(self, train_month: str, cfg: Config) -> tuple[pd.DataFrame, np.ndarray]:
        """The samples of ``train_month``'s window whose label has closed by its rebalance date, and the labels."""
        dates = training.training_dates(train_month, cfg)
        as_of = session_calendar.rebalance_date(train_month)
        label, label_end = self.labels(training.training_label_horizon(cfg))
        rows = self.samples[self.samples["trade_date"].isin(dates) & (label_end <= as_of) & label.notna()]
        return rows.reset_index(drop=True), label[rows.index].to_numpy(dtype=np.float64)

    def training_data(self, train_month: str, cfg: Config) -> training.TrainingData:
        rows, labels = self.training_rows(train_month, cfg)
        X = self.inputs(rows, cfg)
        return training.group_training_data(train_month, rows, X, labels, cfg)


EFFECTS = ("reversal", "attention", "episodes", "low_vol_premium", "turnover_reversal")


def planted_components(market_cfg) -> pd.DataFrame:
    """Each planted effect's part of truth.expected_return: the truth of the market with only that effect on,
    less the truth with every effect off (what remains there: held-back moves and the equity premium).

    Diagnostic only, for the bench: it tells which effects a factor reads. The simulation is re-run with the
    same seed, so the parts are close to, not exactly, the embedded market's (an effect moves prices, and
    prices feed volume and limits). Never an input of the pipeline.
    """
    # The effects add up in the expected return (the interaction's events add to the reversal's), so each
    # part is taken alone.
    on = {name: getattr(market_cfg, name) for name in EFFECTS if getattr(market_cfg, name)}
    off = dataclasses.replace(market_cfg, **{name: 0.0 for name in EFFECTS})
    base = _truth_of(off)
    parts = {"none": base}
    for name, strength in on.items():
        parts[name] = _truth_of(dataclasses.replace(off, **{name: strength})) - base
    return pd.DataFrame(parts)


def _truth_of(market_cfg) -> pd.Series:
    return generate_market(market_cfg).truth.set_index(["month", "ts_code"])["expected_return"]


def component_reads(scores: pd.DataFrame, components: pd.DataFrame) -> dict:
    """Mean over months of corr(factor, each planted effect's part of the truth), per factor."""
    frame = scores.join(components, on=["month", "ts_code"])
    out = {}
    for name in FACTORS:
        out[name] = {
            part: round(float(frame.groupby("month").apply(lambda g: metrics.pearson(g[name], g[part])).mean()), 3)
            for part in components.columns
        }
    return out


def run_option(data: Dataset, cfg: Config, months: list[str], log=None) -> tuple[pd.DataFrame, dict]:
    """pRet of every month in ``months`` (retraining as the pipeline does); its per-month figures."""
    per_month, trainings, fits = [], {}, {}
    for m in months:
        train_month = training.training_month(m, cfg.model.retrain_months)
        if train_month not in trainings:
            started = time.time()
            td = data.training_data(train_month, cfg)
            with model_store.torch_threads(cfg.model.num_threads):
                generator = _gan_stage(td, cfg)
                batches_train, batches_val = training.gan_batches(td, cfg, generator)
                every_date = experimental.every_date(td, cfg, generator)
                state, results = experimental.train_members(batches_train, batches_val, cfg, log=log, every_date=every_date)
            trainings[train_month] = (state, generator)
            fits[train_month] = {
                "seconds": round(time.time() - started, 1),
                "train_dates": td.n_train,
                "val_dates": td.n_val,
                "gap": td.n_gap,
                "samples": int(sum(len(y) for y in td.y)),
                "best_epoch": [r.best_epoch for r in results],
                "best_val_ic": [round(r.best_val_ic, 4) for r in results],
                "train_ic_at_best": [round(-r.train_loss[r.best_epoch - 1], 4) if r.best_epoch else None for r in results],
            }
        frame = data.scored[data.scored["month"] == m]
        rows = data.samples.set_index("seq_index").loc[frame["seq_index"].to_numpy()].reset_index()
        X = data.inputs(rows, cfg)
        state, generator = trainings[train_month]
        with model_store.torch_threads(cfg.model.num_threads):
            if cfg.gan.mode == "transform":
                X = gan.transform(generator, cfg.gan, X)
            pret = experimental.predict(state, X, cfg)
        per_month.append(frame.assign(pret=pret))
    return pd.concat(per_month, ignore_index=True), fits


def _gan_stage(td: training.TrainingData, cfg: Config):
    """The generator trained on the window's training dates, as model_store.ensure_gan trains it; None with the GAN off."""
    if cfg.gan.mode == "off":
        return None
    return gan.train_gan(td.train_X(), td.train_y() if cfg.gan.mode == "augment" else None, cfg.gan, seed=cfg.model.seed)


FACTORS = ("pret", "reversal_20d", "abnormal_turnover", "low_volatility")


def monthly_figures(scores: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """One row per month and factor: truth_corr, IC, Rank IC, oracle IC."""
    rows = []
    for m, frame in scores.groupby("month"):
        expected = frame["ts_code"].map(truth[truth["month"] == m].set_index("ts_code")["expected_return"])
        oracle = metrics.oracle_ic(expected.set_axis(frame["ts_code"]), frame.set_index("ts_code")["fwd_return"])
        for name in FACTORS:
            rows.append(
                {
                    "month": m,
                    "factor": name,
                    "truth_corr": metrics.truth_corr(frame[name].to_numpy(), expected.to_numpy()),
                    "ic": metrics.pearson(frame[name], frame["fwd_return"]),
                    "rank_ic": metrics.spearman(frame[name], frame["fwd_return"]),
                    "oracle_ic": oracle,
                }
            )
    return pd.DataFrame(rows)


def summary(figures: pd.DataFrame) -> dict:
    wide = {k: figures.pivot(index="month", columns="factor", values=k) for k in ("truth_corr", "ic")}
    out = {}
    for name in FACTORS:
        out[name] = {
            "truth_corr": metrics.mean_and_se(wide["truth_corr"][name]),
            "ic": metrics.mean_and_se(wide["ic"][name]),
        }
    out["pret_minus_reversal"] = {
        "truth_corr": metrics.paired_difference(wide["truth_corr"]["pret"], wide["truth_corr"]["reversal_20d"]),
        "ic": metrics.paired_difference(wide["ic"]["pret"], wide["ic"]["reversal_20d"]),
    }
    best = max(FACTORS[1:], key=lambda f: wide["truth_corr"][f].mean())
    out["pret_minus_best_baseline"] = {
        "baseline": best,
        "truth_corr": metrics.paired_difference(wide["truth_corr"]["pret"], wide["truth_corr"][best]),
    }
    oracle = figures.drop_duplicates("month")["oracle_ic"]
    out["oracle_ic"] = metrics.mean_and_se(oracle)
    return out


def _rounded(obj):
    if isinstance(obj, float):
        return round(obj, 4)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


def entry_of(scores: pd.DataFrame, fits: dict, data: Dataset, cfg: Config, seconds: float) -> dict:
    """One option's result on one seed: summary, per-month truth_corr and IC of pRet and the reversal, and
    which planted effects it reads."""
    figures = monthly_figures(scores, data.truth)
    entry = {"seed": cfg.model.seed, "seconds": round(seconds, 1), "fits": fits, **summary(figures)}
    entry["reads"] = component_reads(scores, data.components())
    for key, value in (("monthly", "truth_corr"), ("monthly_ic", "ic")):
        wide = figures.pivot(index="month", columns="factor", values=value)
        entry[key] = wide["pret"].round(4).to_dict()
        entry["reversal_" + key] = wide["reversal_20d"].round(4).to_dict()
    return _rounded(entry)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="first", default="2021-12")
    parser.add_argument("--to", dest="last", default="2024-11")
    parser.add_argument("--score-from", default=None, help="score only months from this one (screening); the dataset stays --from..--to")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--options", default="seed,default")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0, help="index of the first seed (seed + 100 x index)")
    parser.add_argument("--variant", default="embedded", choices=sorted(VARIANTS))
    parser.add_argument("--stocks", type=int, default=0, help="market.n_stocks instead of the profile's (a learning curve)")
    parser.add_argument("--sample-every", type=int, default=0, help="samples.sample_every instead of the profile's (a denser training grid)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    base = profile_config(args.profile)
    base = base.replace(market={**VARIANTS[args.variant], **({"n_stocks": args.stocks} if args.stocks else {})})
    if args.sample_every:
        base = base.replace(samples={"sample_every": args.sample_every})
    months = month_range(args.score_from or args.first, args.last)
    first_train = training.training_month(args.first, base.model.retrain_months)
    started = time.time()
    # The longest window among the options decides how much history the dataset holds.
    longest = max([base.model.train_window_sessions] + [o.get("train_window_sessions", 0) for o in OPTIONS.values()])
    data = Dataset(base.replace(model={"train_window_sessions": longest}), first_train, args.last, args.variant)
    result = {
        "profile": args.profile,
        "variant": args.variant + (f", {args.stocks} stocks" if args.stocks else "")
        + (f", a sample every {args.sample_every} sessions" if args.sample_every else ""),
        "market": base.to_dict()["market"],
        "months": f"{months[0]}..{months[-1]}",
        "dataset_seconds": round(time.time() - started, 1),
        "options": {},
    }
    for name in args.options.split(","):
        for s in range(args.first_seed, args.first_seed + args.seeds):
            model_changes, gan_changes = option(name)
            cfg = experimental_config(base, **model_changes, seed=base.model.seed + 100 * s).replace(gan=gan_changes)
            t0 = time.time()
            scores, fits = run_option(data, cfg, months)
            entry = entry_of(scores, fits, data, cfg, time.time() - t0)
            result["options"].setdefault(name, []).append(entry)
            tc, ic = entry["pret"]["truth_corr"], entry["pret"]["ic"]
            d = entry["pret_minus_reversal"]["ic"]
            print(
                f"{args.variant} {name} seed {cfg.model.seed}: truth_corr {tc['mean']:.3f} +- {tc['se']:.3f}, "
                f"IC {ic['mean']:.4f} +- {ic['se']:.4f}, IC - reversal {d['mean']:+.4f} +- {d['se']:.4f} "
                f"({entry['seconds']:.0f} s); reads {entry['reads']['pret']}",
                file=sys.stderr,
                flush=True,
            )
            if args.out:
                Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

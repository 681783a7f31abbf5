"""Screening of training changes that may let slowly learned features emerge on real (noisy) labels.

    .venv/bin/python bench/slow_features.py --runs 'name:key=value,key=value;...' [--from 2023-06 --to 2024-11]

Exploratory: each run trains one member per training month on bench_training's dataset (the pipeline's
samples, labels and inputs), with the options below, and reports truth_corr, IC and the planted effects'
reads on the scored months, plus per-epoch reads of the held-out months. What wins moves into
factor_pipeline.model with its ablation row in bench_training.py.

Options (key=value):
- epochs (int, 15), patience (int, 4), lr (float), wd (float): the budget and optimiser
- stop: "best" (best validation IC), "smooth" (best of the validation IC averaged over a window of epochs),
  "last" (the last epoch's weights)
- smooth (int, 3): the window of "smooth"
- aux (float, 0): weight of an auxiliary head predicting the next aux_h sessions' change in log turnover
- aux_h (int, 10)
- swa (int, 0): average the weights of the last swa epochs before the chosen one
- members (int, 1): an ensemble of members seeds seed, seed+1, ..., pRet their z-scored mean (gru.predict)
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
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_training import VARIANTS, Dataset, component_reads, monthly_figures, month_range, summary  # noqa: E402

from factor_pipeline.config import profile_config  # noqa: E402
from factor_pipeline.market.synthetic import generate_market  # noqa: E402
from factor_pipeline.model import gru, precision, training  # noqa: E402
from factor_pipeline.model import store as model_store  # noqa: E402
from factor_pipeline.model import checkpoints  # noqa: E402
from factor_pipeline.model.checkpoints import cpu_state  # noqa: E402


def parse_runs(text: str) -> list[tuple[str, dict]]:
    runs = []
    for item in text.split(";"):
        name, _, body = item.partition(":")
        opts = {}
        for pair in filter(None, body.split(",")):
            k, v = pair.split("=")
            opts[k] = v
        runs.append((name, opts))
    return runs


def volume_change(data: Dataset, h: int) -> pd.Series:
    """Per (trade_date, ts_code): mean log turnover over the next h traded days less over the last h (cached)."""
    path = data.dir / f"volume_change_h{h}.parquet"
    if not path.exists():
        daily = generate_market(data.cfg.market).daily
        daily = daily[daily["volume"] > 0].sort_values(["ts_code", "trade_date"])
        lt = np.log(daily["volume"] / daily["float_shares"])
        g = lt.groupby(daily["ts_code"])
        past = g.transform(lambda s: s.rolling(h, min_periods=h).mean())
        future = g.transform(lambda s: s[::-1].rolling(h, min_periods=h).mean()[::-1].shift(-1))
        pd.DataFrame({"trade_date": daily["trade_date"], "ts_code": daily["ts_code"], "value": (future - past)}).to_parquet(path)
    frame = pd.read_parquet(path)
    return frame.set_index(["trade_date", "ts_code"])["value"]


class WithAux(nn.Module):
    def __init__(self, base: gru.GRUFactorModel):
        super().__init__()
        self.base = base
        width = base.mlp[-1].in_features
        self.aux = nn.Linear(width, 1)

    def forward(self, x):
        return self.base(x)

    def both(self, x):
        h = self.base.mlp[:-1](self.base.encode(x))
        return self.base.mlp[-1](h).squeeze(-1), self.aux(h).squeeze(-1)


def fit(td, aux_y, cfg, opts, seed, log, reads_fn=None):
    epochs, patience = int(opts.get("epochs", 15)), int(opts.get("patience", 4))
    stop, smooth, aux_w, swa = opts.get("stop", "best"), int(opts.get("smooth", 3)), float(opts.get("aux", 0)), int(opts.get("swa", 0))
    dev = torch.device("cpu")
    T = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    train = [(T(x), T(y), T(a)) for x, y, a in zip(td.X[: td.n_train], td.y[: td.n_train], aux_y[: td.n_train])]
    val = [(T(x), T(y)) for x, y in zip(td.X[td.val_start :], td.y[td.val_start :])]
    prec = precision.resolve(cfg.model.precision, dev)
    states, val_ic, curve = [], [], []
    with gru.deterministic(dev, seed):
        base = gru.build_model(cfg.model, train[0][0].shape[-1], train[0][0].shape[1])
        model = WithAux(base)
        optimizer = gru.optimizer_for(model, cfg.model)
        order = torch.Generator().manual_seed(seed)
        pre = int(opts.get("pre", 0))
        for epoch in range(pre):
            # Pretraining: only the auxiliary target (the next sessions' volume change), many steps, little noise.
            model.train()
            for i in torch.randperm(len(train), generator=order).tolist():
                X, _, a = train[i]
                ok = torch.isfinite(a)
                if ok.sum() <= 2:
                    continue
                with precision.autocast(prec):
                    _, q = model.both(X)
                loss = gru.ic_loss(q.float()[ok], a[ok])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if epoch == pre - 1:
                log(f"  pretrained {pre} epochs, last aux loss {loss.item():.3f}")
        if pre and opts.get("reset_opt", "1") == "1":
            optimizer = gru.optimizer_for(model, cfg.model)
        best, stale = -1e9, 0
        ema_decay = float(opts.get("ema", 0))
        shadow = WithAux(gru.build_model(cfg.model, train[0][0].shape[-1], train[0][0].shape[1])) if ema_decay else None
        if shadow is not None:
            shadow.load_state_dict(model.state_dict())
        for epoch in range(1, epochs + 1):
            model.train()
            for i in torch.randperm(len(train), generator=order).tolist():
                X, y, a = train[i]
                with precision.autocast(prec):
                    p, q = model.both(X)
                loss = gru.ic_loss(p.float(), y)
                if aux_w:
                    ok = torch.isfinite(a)
                    if ok.sum() > 2:
                        loss = loss + aux_w * gru.ic_loss(q.float()[ok], a[ok])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if shadow is not None:
                    # Polyak averaging: the evaluated weights move slowly, so one noisy date cannot swing them.
                    with torch.no_grad():
                        for ps, pm in zip(shadow.parameters(), model.parameters()):
                            ps.mul_(ema_decay).add_(pm, alpha=1 - ema_decay)
            model.eval()
            judged = shadow.eval() if shadow is not None else model
            with precision.autocast(prec):
                val_ic.append(gru._validation_ic(judged, val))
            states.append(cpu_state(judged.base))
            if reads_fn is not None:
                curve.append({"epoch": epoch, "steps": epoch * len(train), "val_ic": round(val_ic[-1], 4), **reads_fn(judged.base)})
                log(f"    epoch {epoch}: {curve[-1]}")
            score = np.mean(val_ic[-smooth:]) if stop == "smooth" else val_ic[-1]
            if score > best:
                best, stale = score, 0
            else:
                stale += 1
                if stop != "last" and stale >= patience:
                    break
    if stop == "last":
        chosen = len(states)
    elif stop == "smooth":
        sm = [np.mean(val_ic[max(0, i - smooth + 1) : i + 1]) for i in range(len(val_ic))]
        chosen = int(np.argmax(sm)) + 1
    else:
        chosen = int(np.argmax(val_ic)) + 1
    if swa:
        picked = states[max(0, chosen - swa) : chosen]
        state = {k: sum(s[k] for s in picked) / len(picked) for k in picked[0]}
    else:
        state = states[chosen - 1]
    log(f"  {td.train_month}: {len(states)} epochs, chosen {chosen} ({chosen * len(train)} steps), val IC {[round(v, 3) for v in val_ic]}")
    return state, {"epochs_run": len(states), "chosen": chosen, "steps": chosen * len(train), "val_ic": [round(v, 4) for v in val_ic], "curve": curve}


def aux_labels(rows_by_date, vc) -> list[np.ndarray]:
    """Each date's auxiliary target (the volume change, ranked within the date); NaN where unknown."""
    out = []
    for rows in rows_by_date:
        v = vc.reindex(pd.MultiIndex.from_arrays([rows["trade_date"], rows["ts_code"]])).to_numpy()
        ok = np.isfinite(v)
        r = np.full(len(v), np.nan, dtype=np.float32)
        if ok.sum() > 2:
            r[ok] = training.transform_labels(v[ok], "rank")
        out.append(r)
    return out


def held_out_reads(data: Dataset, train_month: str, cfg):
    """A function of a model: its mean reads over the six month ends after ``train_month`` (bench/ceiling.py)."""
    from ceiling import held_out, reads

    months_out = held_out(data, train_month, data.components())

    def read(model):
        with precision.autocast(precision.resolve(cfg.model.precision, torch.device("cpu"))):
            r = reads(model.eval(), months_out, data, cfg)
        model.train()
        return {k: round(float(np.nanmean(v)), 4) for k, v in r.items()}

    return read


def run(data: Dataset, cfg, months, opts, seed, log):
    scored, fits = [], {}
    trained = {}
    vc = volume_change(data, int(opts.get("aux_h", 10))) if float(opts.get("aux", 0)) or int(opts.get("pre", 0)) else None
    for m in months:
        tm = training.training_month(m, cfg.model.retrain_months)
        if tm not in trained:
            td = data.training_data(tm, cfg)
            if vc is not None:
                # The rows of each date, in the order group_training_data grouped them.
                rows, _ = data.training_rows(tm, cfg)
                by_date = [g for _, g in rows.groupby("trade_date", sort=True) if len(g) >= 3]
                aux_y = aux_labels(by_date, vc)
            else:
                aux_y = [np.full(len(y), np.nan, np.float32) for y in td.y]
            reads_fn = held_out_reads(data, tm, cfg) if opts.get("curve") == "1" else None
            members = int(opts.get("members", 1))
            fitted = [fit(td, aux_y, cfg, opts, cfg.model.seed + i, log, reads_fn if i == 0 else None) for i in range(members)]
            trained[tm] = checkpoints.pack_ensemble([state for state, _ in fitted])
            fits[tm] = fitted[0][1] if members == 1 else {"members": [info for _, info in fitted]}
        frame = data.scored[data.scored["month"] == m]
        rows = data.samples.set_index("seq_index").loc[frame["seq_index"].to_numpy()].reset_index()
        X = data.inputs(rows, cfg)
        pret = gru.predict(trained[tm], X, cfg.model, n_features=X.shape[-1])
        scored.append(frame.assign(pret=pret))
    return pd.concat(scored, ignore_index=True), fits


def baselines_monthly(data: Dataset, months: list[str]) -> dict:
    """Each single-factor baseline's truth_corr by month on the scored months (the same for every run on a market)."""
    scored = data.scored[data.scored["month"].isin(months)]
    figures = monthly_figures(scored.assign(pret=scored["reversal_20d"]), data.truth)
    figures = figures[figures.factor != "pret"]
    return {name: g.set_index("month")["truth_corr"].round(4).to_dict() for name, g in figures.groupby("factor")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="first", default="2023-06")
    ap.add_argument("--to", dest="last", default="2024-11")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--stocks", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", type=int, default=0, help="model.train_window_sessions (0: the profile's)")
    ap.add_argument("--every", type=int, default=0, help="samples.sample_every (0: the profile's)")
    ap.add_argument("--variant", default="embedded", choices=sorted(VARIANTS), help="a market the model was not tuned on")
    ap.add_argument("--runs", default="")
    ap.add_argument("--out", default=None)
    ap.add_argument("--baselines-into", default=None,
                    help="write the baselines' monthly truth_corr on this market into every run of a JSON written before they were kept")
    args = ap.parse_args()
    if not args.runs and not args.baselines_into:
        ap.error("--runs is required (or --baselines-into FILE)")
    base = profile_config(args.profile)
    base = base.replace(market={**VARIANTS[args.variant], **({"n_stocks": args.stocks} if args.stocks else {})})
    if args.window:
        base = base.replace(model={"train_window_sessions": args.window})
    if args.every:
        base = base.replace(samples={"sample_every": args.every})
    months = month_range(args.first, args.last)
    first_train = training.training_month(args.first, base.model.retrain_months)
    data = Dataset(base, first_train, args.last, args.variant)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    baselines = baselines_monthly(data, months)
    if args.baselines_into:
        path = Path(args.baselines_into)
        results = json.loads(path.read_text())
        for run_result in results.values():
            run_result["baselines_monthly"] = baselines
        path.write_text(json.dumps(results, indent=1, default=float))
        return
    results = {}
    for name, opts in parse_runs(args.runs):
        model_changes = {"ensemble": 1, "seed": base.model.seed + 100 * args.seed}
        for k, key in (("lr", "lr"), ("wd", "weight_decay"), ("dropout", "dropout")):
            if k in opts:
                model_changes[key] = float(opts[k])
        cfg = base.replace(model=model_changes)
        t0 = time.time()
        with model_store.torch_threads(1):
            scores, fits = run(data, cfg, months, opts, cfg.model.seed, log)
        figures = monthly_figures(scores, data.truth)
        s = summary(figures)
        r = component_reads(scores, data.components())["pret"]
        scale = {k: v for k, v in (("variant", args.variant if args.variant != "embedded" else ""), ("stocks", args.stocks),
                                   ("window", args.window), ("every", args.every), ("seed", args.seed)) if v}
        results[name] = {"opts": opts, "scale": scale, "seconds": round(time.time() - t0, 1), "summary": s, "reads": r, "fits": fits,
                         "monthly": figures[figures.factor == "pret"].set_index("month")["truth_corr"].round(4).to_dict(),
                         "baselines_monthly": baselines}
        tc, d = s["pret"]["truth_corr"], s["pret_minus_reversal"]["truth_corr"]
        log(f"{name} {opts}: truth_corr {tc['mean']:.3f} +- {tc['se']:.3f}; minus reversal {d['mean']:+.3f} +- {d['se']:.3f}; "
            f"IC {s['pret']['ic']['mean']:.4f}; reads {r} ({time.time() - t0:.0f} s)")
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()

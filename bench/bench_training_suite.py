"""Issue 12's quality suite in one run: the ablation table, the markets the model was not tuned on, and the
learning curve toward the seed's scale. Under an hour on 2 cores.

    .venv/bin/python bench/bench_training_suite.py [--workers 2] [--quick] [--out bench/results/<date>/suite]

Every job is one bench_training.py option on one market (bench_training.run_option, the pipeline's own
pure functions), trained with one torch thread, two jobs at a time. The datasets are built first, one per
market, so that jobs never race on the cache. Writes one bench_training-format JSON per market and a
Markdown report (training_report.py's tables plus the variants and the learning curve), and prints one
JSON object with the headline figures.

What was cut to fit the hour, and why:
- Three seeds for the seed preset and the default, one for every other option: the seed spread (0.004 to
  0.016 in truth_corr) is reported beside them, so one-seed rows read with that margin.
- The market variants score 18 months (2023-06..2024-11, three retrains), with the default and the default
  plus log-volatility side inputs only.
- The learning curve scores the same 18 months with one ensemble member, and only
  one run at 2,000 stocks uses the seed's GRU(128,128) + MLP(256,64,64) and 400-session window. 5,000
  stocks runs outside the hour, with its own command (`make bench-scale`, about 45 minutes of one core).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_training as bt  # noqa: E402
import training_report  # noqa: E402
from factor_pipeline.config import profile_config  # noqa: E402
from factor_pipeline.evaluation import metrics  # noqa: E402
from factor_pipeline.model import training  # noqa: E402
from factor_pipeline.model.experimental import experimental  # noqa: E402

MONTHS = ("2021-12", "2024-11")  # 36 evaluated months, six June/December retrains
SHORT_MONTHS = ("2023-06", "2024-11")  # 18 months, three retrains: the variants and the learning curve
SEEDS = 3  # for the seed preset and the default

# One row per departure from the seed (each alone on top of the seed's training), the three GAN modes
# (off is "seed"), and the default, which combines the departures that measured best.
ABLATION = (
    "seed", "purge", "rank", "winsor", "wd", "dropout", "ens3", "step_rets", "step_neutral", "resid", "scale", "scale_vol",
    "window400", "gan_augment", "gan_transform", "default",
)
# The default, and the default with the log-volatility side inputs, which a level effect needs.
VARIANT_OPTIONS = ("default", "default+scale_vol")
SEED_SIZE = {"gru_hidden": (128, 128), "mlp_hidden": (256, 64, 64)}
# (stocks, training window in sessions, the seed's model size?)
CURVE = (
    (400, 240, False), (400, 400, False), (1000, 240, False), (1000, 400, False),
    (2000, 240, False), (2000, 400, False), (2000, 400, True),
)


def market_key(variant: str, stocks: int, months: tuple[str, str]) -> str:
    return f"{variant}-{stocks or 'profile'}-{months[0]}-{months[1]}"


def _dataset(variant: str, stocks: int, months: tuple[str, str]) -> bt.Dataset:
    base = profile_config("demo").replace(market={**bt.VARIANTS[variant], **({"n_stocks": stocks} if stocks else {})})
    first_train = training.training_month(months[0], base.model.retrain_months)
    longest = max([base.model.train_window_sessions] + [o.get("train_window_sessions", 0) for o in bt.OPTIONS.values()])
    return bt.Dataset(base.replace(model={"train_window_sessions": longest}), first_train, months[1], variant)


def build_dataset(spec: tuple) -> str:
    variant, stocks, months = spec
    data = _dataset(variant, stocks, months)
    data.components()
    return market_key(variant, stocks, months)


def run_job(job: dict) -> dict:
    """One option, one seed, one market: bench_training's JSON entry for it."""
    data = _dataset(job["variant"], job["stocks"], job["months"])
    base = data.cfg.replace(model={"train_window_sessions": profile_config("demo").model.train_window_sessions})
    model_changes, gan_changes = bt.option(job["option"])
    cfg = experimental(
        base, **{**model_changes, **job.get("model", {}), "seed": base.model.seed + 100 * job["seed"], "num_threads": 1}
    ).replace(gan=gan_changes)
    started = time.time()
    scores, fits = bt.run_option(data, cfg, bt.month_range(*job["months"]))
    entry = bt.entry_of(scores, fits, data, cfg, time.time() - started)
    print(f"{job['name']} seed {job['seed']}: truth_corr {entry['pret']['truth_corr']['mean']:.3f} "
          f"({entry['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return {**job, "entry": entry}


def plan(quick: bool) -> tuple[list[tuple], list[dict]]:
    """(datasets, jobs); --quick: a few-minute run of the same plan at toy size, to check the suite before the hour."""
    months = ("2024-01", "2024-03") if quick else MONTHS
    short_months = ("2024-01", "2024-02") if quick else SHORT_MONTHS
    seeds = 1 if quick else SEEDS
    ablation = ("seed", "default") if quick else ABLATION
    curve = ((150, 240, False), (200, 240, True)) if quick else CURVE
    stocks = 150 if quick else 0
    datasets = [("embedded", stocks, months)]
    jobs = []
    for option in ablation:
        for s in range(seeds if option in ("seed", "default") else 1):
            jobs.append({"group": "ablation", "name": option, "option": option, "variant": "embedded",
                         "stocks": stocks, "months": months, "seed": s})
    for variant in [v for v in bt.VARIANTS if v != "embedded"]:
        datasets.append((variant, stocks, short_months))
        for option in VARIANT_OPTIONS:
            jobs.append({"group": "variants", "name": f"{variant} {option}", "option": option, "variant": variant,
                         "stocks": stocks, "months": short_months, "seed": 0})
    for n, window, seed_size in curve:
        datasets.append(("embedded", n, short_months))
        model = {"ensemble": 1, "train_window_sessions": window, **(SEED_SIZE if seed_size else {})}
        name = f"{n} stocks, {window} sessions" + (", seed GRU(128,128)" if seed_size else "")
        jobs.append({"group": "curve", "name": name, "option": "default", "variant": "embedded", "stocks": n,
                     "months": short_months, "seed": 0, "model": model, "curve": [n, window, seed_size]})
    # Longest first, so that two workers finish together.
    cost = {"default": 3, "ens3": 3, "gan_augment": 4, "gan_transform": 2, "window400": 1.6}
    jobs.sort(key=lambda j: -(cost.get(j["option"], 1) * (j["stocks"] or 400) * (2 if j.get("model", {}).get("gru_hidden") else 1)))
    return list(dict.fromkeys(datasets)), jobs


def _group_json(results: list[dict], group: str, variant: str) -> dict:
    runs = [r for r in results if r["group"] == group and r["variant"] == variant]
    out = {"profile": "demo", "variant": variant, "months": "{}..{}".format(*runs[0]["months"]), "options": {}}
    for r in sorted(runs, key=lambda r: (ABLATION.index(r["option"]) if r["option"] in ABLATION else len(ABLATION), r["seed"])):
        out["options"].setdefault(r["option"], []).append(r["entry"])
    return out


def mean_reads(runs: list[dict]) -> pd.DataFrame:
    """Factor x effect: each factor's mean monthly correlation with each planted effect's part of the truth,
    averaged over the runs' seeds."""
    return sum(pd.DataFrame(r["reads"]).T for r in runs) / len(runs)


def headline(ablation: dict) -> dict:
    """The Done-when figures of the embedded market: the default's truth_corr, its IC against the reversal."""
    runs = ablation["options"]["default"]
    truth, ic = training_report._pooled(runs, "monthly"), training_report._pooled(runs, "monthly_ic")
    reversal = pd.Series(runs[0]["reversal_monthly"], dtype=float)
    reversal_ic = pd.Series(runs[0]["reversal_monthly_ic"], dtype=float)
    return {
        "months": int(truth.notna().sum()),
        "seeds": len(runs),
        "truth_corr": metrics.mean_and_se(truth),
        "reversal_truth_corr": metrics.mean_and_se(reversal),
        "truth_corr_minus_reversal": metrics.paired_difference(truth, reversal),
        "ic": metrics.mean_and_se(ic),
        "reversal_ic": metrics.mean_and_se(reversal_ic),
        "ic_minus_reversal": metrics.paired_difference(ic, reversal_ic),
    }


def variant_rows(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        if r["group"] != "variants":
            continue
        e = r["entry"]
        best = e["pret_minus_best_baseline"]
        rows.append({
            "market": r["variant"], "option": r["option"],
            "pRet truth_corr": f"{e['pret']['truth_corr']['mean']:.3f} ± {e['pret']['truth_corr']['se']:.3f}",
            "best baseline": best["baseline"],
            "baseline truth_corr": f"{e[best['baseline']]['truth_corr']['mean']:.3f} ± {e[best['baseline']]['truth_corr']['se']:.3f}",
            "pRet - best (paired)": f"{best['truth_corr']['mean']:+.3f} ± {best['truth_corr']['se']:.3f}",
            "reads": json.dumps(e["reads"]["pret"]),
        })
    return rows


def truth_shares(components: pd.DataFrame, truth: pd.DataFrame, scored: pd.MultiIndex) -> dict:
    """Each planted effect's share of the truth's cross-sectional variance, mean over months, and the
    truth_corr of a factor that read that effect perfectly and nothing else."""
    frame = components.join(truth.set_index(["month", "ts_code"])["expected_return"], how="inner")
    frame = frame[frame.index.isin(scored)]
    out = {}
    for part in components.columns:
        by_month = frame.groupby(level="month")
        share = by_month.apply(lambda g: g[part].var() / g["expected_return"].var())
        alone = by_month.apply(lambda g: g[part].corr(g["expected_return"]))
        out[part] = {"variance_share": round(float(share.mean()), 3), "truth_corr_if_read_perfectly": round(float(alone.mean()), 3)}
    return out


def curve_rows(results: list[dict]) -> list[dict]:
    rows = []
    for r in sorted((r for r in results if r["group"] == "curve"), key=lambda r: tuple(r["curve"])):
        e = r["entry"]
        d = e["pret_minus_reversal"]["truth_corr"]
        rows.append({
            "stocks": r["curve"][0], "window": r["curve"][1], "model": "seed GRU(128,128)" if r["curve"][2] else "demo GRU(64,64)",
            "pRet truth_corr": f"{e['pret']['truth_corr']['mean']:.3f} ± {e['pret']['truth_corr']['se']:.3f}",
            "reversal truth_corr": f"{e['reversal_20d']['truth_corr']['mean']:.3f} ± {e['reversal_20d']['truth_corr']['se']:.3f}",
            "pRet - reversal (paired)": f"{d['mean']:+.3f} ± {d['se']:.3f}",
            "efficiency (IC / oracle IC)": f"{e['pret']['ic']['mean'] / e['oracle_ic']['mean']:.2f}",
            "reads reversal / attention / episodes": " / ".join(f"{e['reads']['pret'].get(k, math.nan):.2f}" for k in ("reversal", "attention", "episodes")),
            "s / retrain": f"{np.mean([f['seconds'] for f in e['fits'].values()]):.0f}",
            "train samples / retrain": int(np.mean([f.get('samples', 0) for f in e['fits'].values()])),
        })
    return rows


def projection(rows: list[dict]) -> dict | None:
    """5,000 stocks from the seed-size run: training time scales with the samples (one epoch is one pass)."""
    seed_rows = [r for r in rows if r["model"].startswith("seed")]
    if not seed_rows:
        return None
    r = seed_rows[-1]
    scale = 5000 / r["stocks"]
    return {
        "from": f"{r['stocks']} stocks, {r['window']} sessions, {r['model']}",
        "seconds_per_retrain_at_5000_one_thread": round(float(r["s / retrain"]) * scale),
        "note": "time scales with the samples; quality is not extrapolated beyond the measured trend in the table",
    }


def markdown(results: list[dict], groups: dict, head: dict, wall: float) -> str:
    data = groups["ablation_data"]
    lines = [
        "# Training quality suite (issue 12)",
        "",
        f"One run of `bench/bench_training_suite.py` ({wall / 60:.0f} min wall, 2 workers of one torch thread).",
        "truth_corr first (docs/metrics.md), then IC; ± one standard error over months; differences are paired.",
        "",
        "## Embedded market, demo profile: the default",
        "",
        f"- truth_corr {head['truth_corr']['mean']:.3f} ± {head['truth_corr']['se']:.3f} ({head['seeds']} seeds averaged, "
        f"{head['months']} months); 20-day reversal {head['reversal_truth_corr']['mean']:.3f} ± {head['reversal_truth_corr']['se']:.3f}; "
        f"paired difference {head['truth_corr_minus_reversal']['mean']:+.3f} ± {head['truth_corr_minus_reversal']['se']:.3f}",
        f"- IC {head['ic']['mean']:.4f} ± {head['ic']['se']:.4f}; reversal {head['reversal_ic']['mean']:.4f} ± {head['reversal_ic']['se']:.4f}; "
        f"paired difference {head['ic_minus_reversal']['mean']:+.4f} ± {head['ic_minus_reversal']['se']:.4f}",
        "",
        "## Ablation (embedded market)",
        "",
        training_report.table(groups["ablation"]).to_markdown(index=False),
        "",
        training_report.baselines(groups["ablation"]).to_markdown(index=False),
        "",
        "The truth by planted effect (bench_training.planted_components; 'none' is what remains with every effect "
        "off: held-back moves and the equity premium). An effect's share of the truth's cross-sectional variance "
        "caps what a factor that reads only that effect can reach:",
        "",
        pd.DataFrame(truth_shares(data.components(), data.truth, pd.MultiIndex.from_frame(data.scored[["month", "ts_code"]]))).T.to_markdown(),
        "",
        "What each factor reads of the planted effects (mean monthly correlation with each effect's part of the "
        "truth; pRet is the default, its seeds averaged):",
        "",
        mean_reads(groups["ablation"]["options"]["default"]).round(3).to_markdown(),
        "",
        "## Markets it was not tuned on",
        "",
        pd.DataFrame(variant_rows(results)).to_markdown(index=False),
        "",
        "## Learning curve",
        "",
        pd.DataFrame(curve_rows(results)).to_markdown(index=False),
        "",
        f"Projection: {json.dumps(projection(curve_rows(results)))}",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / time.strftime("%Y-%m-%d", time.gmtime()) / "suite"))
    parser.add_argument("--report-only", action="store_true", help="render the report again from OUT/jobs.json")
    args = parser.parse_args()
    out = Path(args.out)
    datasets, jobs = plan(args.quick)
    if args.report_only:
        saved = json.loads((out / "jobs.json").read_text())
        if isinstance(saved, list):  # written before the wall time was kept beside the results
            latest = json.loads(next(out.parent.glob("bench*.json")).read_text())  # run_all's tables beside it
            saved = {"results": saved, "wall_seconds": latest["benchmarks"]["bench_training_suite"]["wall_seconds"]}
        results, wall = saved["results"], saved["wall_seconds"]
    else:
        started = time.time()
        with ProcessPoolExecutor(args.workers) as pool:
            list(pool.map(build_dataset, datasets))
            results = list(pool.map(run_job, jobs))
        wall = time.time() - started
    out.mkdir(parents=True, exist_ok=True)
    ablation = _group_json(results, "ablation", "embedded")
    groups = {"ablation": training_report.group_of(ablation), "ablation_data": _dataset(*datasets[0])}
    (out / "ablation.json").write_text(json.dumps(ablation, indent=1))
    (out / "jobs.json").write_text(json.dumps({"wall_seconds": wall, "results": results}, indent=1, default=str))
    head = headline(ablation)
    (out / "report.md").write_text(markdown(results, groups, head, wall))
    variants = variant_rows(results)
    print(json.dumps({
        "wall_seconds": round(wall, 1),
        "embedded": head,
        "variants": [{k: v for k, v in r.items() if k != "reads"} for r in variants],
        "curve": curve_rows(results),
        "report": str(out / "report.md"),
    }))


if __name__ == "__main__":
    main()

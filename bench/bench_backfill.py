"""Wall time of ``factor-pipeline backfill`` at this working tree against another revision, same range.

    .venv/bin/python bench/bench_backfill.py --before bd26953 [--profile smoke] [--from 2024-05] [--to 2024-07] [--rounds 1]

Each side runs with this interpreter from its own source tree (the other revision exported with
``git archive``) into its own empty home that already holds the source cache, so both do the same work;
the sides alternate round by round, so that a machine shared with other jobs slows both alike. Before
issue 14 the CLI planned its own runs (one per month and stage group, two at a time); since, it submits
a Dagster asset backfill that dagster-daemon drives (one run per asset and range of months).

Prints one JSON object: each side's wall seconds per round, its Dagster run count, the ratio of the
medians (after / before), and the load average around the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI_MODULES = ("factor_pipeline.pipeline.cli", "factor_pipeline.cli")
BUILD_SOURCE = """
from factor_pipeline.pipeline.resources import PipelineResource
PipelineResource.from_env().source_cache
"""
RUN_COUNT = """
import dagster as dg
with dg.DagsterInstance.get() as instance:
    print(len(instance.get_runs()))
"""


def _export(revision: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = into.with_suffix(".tar")
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), revision], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    return into


def _env(source: Path, home: Path, profile: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTOR_PIPELINE_", "DAGSTER_"))}
    env.update(FACTOR_PIPELINE_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), FACTOR_PIPELINE_PROFILE=profile,
               FACTOR_PIPELINE_SOURCE="synthetic", PYTHONPATH=str(source))
    return env


def _cli(source: Path) -> list[str]:
    module = next(m for m in CLI_MODULES if (source / (m.replace(".", "/") + ".py")).exists())
    return [sys.executable, "-m", module]


def backfill(source: Path, home: Path, profile: str, first: str, last: str, cache: Path) -> dict:
    shutil.copytree(cache, home / "source")
    env = _env(source, home, profile)
    started = time.monotonic()
    done = subprocess.run(_cli(source) + ["backfill", "--from", first, "--to", last, "--executor", "in_process"],
                          cwd=source, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{source}: backfill failed\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    runs = subprocess.run([sys.executable, "-c", RUN_COUNT], cwd=source, env=env, capture_output=True, text=True, check=True)
    return {"seconds": round(seconds, 1), "runs": int(runs.stdout.split()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--from", dest="first", default="2024-05")
    parser.add_argument("--to", dest="last", default="2024-07")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    out = {"profile": args.profile, "range": f"{args.first}..{args.last}", "before": args.before,
           "loadavg_start": os.getloadavg(), "rounds": []}
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as scratch:
        scratch = Path(scratch)
        sources = {"before": _export(args.before, scratch / "src-before"), "after": REPO}
        # The market is built once, outside the timings.
        subprocess.run([sys.executable, "-c", BUILD_SOURCE], cwd=REPO, env=_env(REPO, scratch / "market", args.profile), check=True)
        for index in range(args.rounds):
            results = {}
            for side in ("before", "after") if index % 2 == 0 else ("after", "before"):
                home = scratch / f"home-{side}-{index}"
                results[side] = backfill(sources[side], home, args.profile, args.first, args.last, scratch / "market" / "source")
            out["rounds"].append(results)
    for side in ("before", "after"):
        out[f"{side}_median_seconds"] = statistics.median(r[side]["seconds"] for r in out["rounds"])
    out["after_over_before"] = round(out["after_median_seconds"] / out["before_median_seconds"], 2)
    out["loadavg_end"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Is behaviour unchanged? A smoke backfill at two git revisions, compared file by file.

    python bench/compare_backfills.py --before 62eb78f            # before = that commit, after = the working tree
    python bench/compare_backfills.py --before main --after HEAD

Each side is checked out into its own temporary worktree and runs, with this interpreter, a smoke-profile
backfill of 2024-05..2024-07 (a June retrain, the GAN in `augment` mode and its GAN-off baseline) and the
report. Every file the pipeline writes (tables, sample arrays, checkpoints, GANs, reports) is compared
byte for byte; only the Dagster instance's own storage is left out. The DuckDB file holds views over
paths inside each home, so it is compared by what its views answer. Exits 1 and names each file that
differs. A refactor must leave this at "identical".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RANGE = ("2024-05", "2024-07")
# The CLI's module moved with the restructure of issue 11; either revision must run.
CLI_MODULES = ("factor_pipeline.pipeline.cli", "factor_pipeline.cli")
# Dagster's run/event storage and per-run logs hold run ids and times, never pipeline output.
NOT_PIPELINE_OUTPUT = ("dagster",)


def _checkout(revision: str | None, into: Path) -> Path:
    if revision is None:
        return REPO
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(into), revision],
                   check=True, capture_output=True)
    return into


def _cli_module(source: Path) -> str:
    for module in CLI_MODULES:
        if (source / (module.replace(".", "/") + ".py")).exists():
            return module
    raise SystemExit(f"no CLI module found in {source}")


def run_backfill(source: Path, home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTOR_PIPELINE_", "DAGSTER_"))}
    env.update(FACTOR_PIPELINE_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), FACTOR_PIPELINE_PROFILE="smoke",
               FACTOR_PIPELINE_SOURCE="synthetic", FACTOR_PIPELINE_GAN_MODE="augment", PYTHONPATH=str(source))
    cli = [sys.executable, "-m", _cli_module(source)]
    for args in (["backfill", "--from", RANGE[0], "--to", RANGE[1], "--executor", "in_process"], ["report"]):
        done = subprocess.run(cli + args, cwd=source, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{source}: {' '.join(args)} failed\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")


def _view_answers(database: Path) -> dict[str, str]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        views = con.execute(
            "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
        ).fetchall()
        return {
            f"{database.name}:{name}": hashlib.sha256(
                con.execute(f"SELECT * FROM {name} ORDER BY ALL").df().to_csv(index=False).encode()
            ).hexdigest()
            for (name,) in views
        }


def digests(home: Path) -> dict[str, str]:
    found = {}
    for path in sorted(home.rglob("*")):
        if not path.is_file() or path.relative_to(home).parts[0] in NOT_PIPELINE_OUTPUT:
            continue
        if path.suffix == ".duckdb":
            found.update(_view_answers(path))
        else:
            found[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _json_paths(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_paths(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_paths(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def _what_differs(before_home: Path, after_home: Path, name: str) -> str:
    """For a JSON file, the first fields that differ, so that a reader sees what changed."""
    if not name.endswith(".json"):
        return ""
    a = dict(_json_paths(json.loads((before_home / name).read_text())))
    b = dict(_json_paths(json.loads((after_home / name).read_text())))
    changed = [f"{key}: {a.get(key)!r} -> {b.get(key)!r}" for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)]
    return "".join(f"\n               {line}" for line in changed[:8])


def differences(before: dict[str, str], after: dict[str, str], homes: tuple[Path, Path] | None = None) -> list[str]:
    lines = [f"only before: {name}" for name in sorted(before.keys() - after.keys())]
    lines += [f"only after:  {name}" for name in sorted(after.keys() - before.keys())]
    lines += [
        f"differs:     {name}" + (_what_differs(*homes, name) if homes and ":" not in name else "")
        for name in sorted(before.keys() & after.keys())
        if before[name] != after[name]
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision of the reference run")
    parser.add_argument("--after", default=None, help="git revision to compare (default: the working tree)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="compare-backfills-") as scratch:
        scratch = Path(scratch)
        homes = {}
        try:
            for side, revision in (("before", args.before), ("after", args.after)):
                source = _checkout(revision, scratch / f"src-{side}")
                homes[side] = scratch / f"home-{side}"
                run_backfill(source, homes[side])
        finally:
            for side in ("before", "after"):
                if (scratch / f"src-{side}").exists():
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(scratch / f"src-{side}")],
                                   capture_output=True)
        before, after = digests(homes["before"]), digests(homes["after"])
        lines = differences(before, after, (homes["before"], homes["after"]))
        print(f"{len(before)} files before, {len(after)} after, {len(lines)} differences")
        for line in lines:
            print(line)
        return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())

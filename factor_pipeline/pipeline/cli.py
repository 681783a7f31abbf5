"""``factor-pipeline``: backfill months as a Dagster asset backfill, and print the factor report.

Each command lives in a module of its own: backfill_command (with backfill_plan, backfill_watch and
backfill_daemon), report_command; ``daemon`` is the dagster-daemon a backfill starts when none runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from factor_pipeline.market import session_calendar
from factor_pipeline.pipeline.backfill_daemon import DAEMON_INTERVAL_SECONDS
from factor_pipeline.storage import StorageError

# What a command reports as one line on stderr (exit status 2) rather than as a traceback.
USER_ERRORS = (
    session_calendar.PartitionKeyError, session_calendar.CalendarHorizonError, ValueError, OSError, StorageError, RuntimeError,
)


def _command(target: str):
    """The handler ``module:function``, imported when its command runs: the backfill's modules (the asset
    definitions, torch) and the report's (matplotlib) take about 4 s to import (-X importtime), which the
    daemon subprocess each backfill starts, and every other command, would otherwise pay first."""
    module, function = target.split(":")

    def handler(args):
        return getattr(importlib.import_module(f"factor_pipeline.pipeline.{module}"), function)(args)

    return handler


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="factor-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    back = commands.add_parser("backfill", help="materialise every month in a range, with the upstream months it needs")
    back.add_argument("--from", dest="first", required=True, metavar="YYYY-MM")
    back.add_argument("--to", dest="last", required=True, metavar="YYYY-MM")
    back.add_argument("--executor", choices=["in_process", "multiprocess"], default="in_process",
                      help="Dagster executor of each run (default in_process: a run's steps form a chain)")
    back.add_argument("--max-concurrent", type=int, default=2, help="steps at once within a multiprocess run")
    back.add_argument("--dry-run", action="store_true",
                      help="print what the backfill would fetch (the tushare source: calls and time per points tier) and stop")
    back.set_defaults(handler=_command("backfill_command:backfill"))
    rep = commands.add_parser("report", help="print the newest factor report (the seed's table)")
    rep.set_defaults(handler=_command("report_command:print_report"))
    daemon = commands.add_parser("daemon", help=argparse.SUPPRESS)
    daemon.add_argument("--interval", type=float, default=DAEMON_INTERVAL_SECONDS)
    daemon.add_argument("--parent", type=int, default=None)
    daemon.set_defaults(handler=_command("backfill_daemon:run_daemon_command"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except USER_ERRORS as exc:
        print(f"factor-pipeline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

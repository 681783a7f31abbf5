"""``factor-pipeline report``: print the newest factor report (the seed's table)."""

from __future__ import annotations

import sys

from factor_pipeline.evaluation.store import latest_report_table
from factor_pipeline.pipeline.resources import PipelineResource
from factor_pipeline.storage import StorageError


def print_report(args) -> int:
    layout = PipelineResource.from_env().layout
    try:
        print(latest_report_table(layout))
    except (StorageError, FileNotFoundError):
        print(f"no factor report under {layout.reports}: run `factor-pipeline backfill` first", file=sys.stderr)
        return 1
    print(f"\nfull report: {layout.reports}")
    return 0

"""What ``factor-pipeline backfill --from A --to B`` targets: every asset of every month in the range, and
the upstream months outside it that the range reads and that are not built yet (a training window reaching
back before the range, the previous month's factor, the next month's bars an evaluation needs)."""

from __future__ import annotations

import dagster as dg

from factor_pipeline.datasets import ASSET_DATASETS, ASSETS, MODEL_ASSETS
from factor_pipeline.market import session_calendar
from factor_pipeline.model import training
from factor_pipeline.pipeline.definitions import defs
from factor_pipeline.pipeline.resources import PipelineResource
from factor_pipeline.storage import Layout


def materialised(layout: Layout, asset: str, month: str) -> bool:
    """Whether the asset's month is on disk and was built from this source, profile and configuration.

    A month built under another identity counts as missing, so a backfill builds it again.
    """
    if asset == "factor_report":
        return (layout.reports / month / "report.md").exists()
    if asset == "samples" and not layout.partition("samples", month, "npy").exists():
        return False
    return layout.matches(ASSET_DATASETS[asset], month)


def refuse_history_before_the_source(months: list[str], layout: Layout, cfg) -> str:
    """The source's first month; raises, naming the first month that can be built, when a requested month's
    model trains on a window that starts before it (that history really is needed, and does not exist)."""
    first_data = layout.first_month or session_calendar.FIRST_MONTH
    if months[0] < first_data:
        raise session_calendar.PartitionKeyError(f"the source's first month is {first_data}: {months[0]} has no bars")

    def window_start(month: str) -> str:
        train_month = training.training_month(month, cfg.model.retrain_months)
        if training.window_start_position(train_month, cfg) < 0:
            return session_calendar.FIRST_MONTH
        return training.window_months(train_month, cfg)[0]

    short = [m for m in months if window_start(m) < first_data]
    if short:
        candidate = first_data
        while window_start(candidate) < first_data:
            candidate = session_calendar.shift_month(candidate, 1)
        raise session_calendar.PartitionKeyError(
            f"the model of {short[0]} trains on a window from {window_start(short[0])}, before the source's first "
            f"month {first_data}: the first month that can be backfilled is {candidate}"
        )
    return first_data


def backfill_targets(first: str, last: str, layout: Layout, cfg=None) -> dict[str, list[str]]:
    """The months of each asset that a backfill of first..last targets.

    Every asset of every month in the range, and every upstream month outside it that a targeted month reads
    and that is not built yet under this identity. A model step reads its own training window, not the
    longest one of any profile that its partition mapping declares, and nothing before the source's first
    month is ever targeted: the asset backfill waits only on the months it targets, so history that the
    mappings declare and no step reads cannot fail it.
    """
    cfg = cfg or PipelineResource.from_env().config

    graph = defs.resolve_asset_graph()
    valid = set(graph.get(dg.AssetKey("raw_bars")).partitions_def.get_partition_keys())
    requested = session_calendar.months_between(first, last)
    session_calendar.check_within_horizon(session_calendar.parse_month(last).end_time.normalize())
    outside = [m for m in requested if m not in valid]
    if outside:
        raise session_calendar.PartitionKeyError(
            f"months {outside[0]}..{outside[-1]} are outside the partitions {min(valid)}..{max(valid)}"
        )

    first_data = refuse_history_before_the_source(requested, layout, cfg)

    def parents(asset: str, month: str) -> set[tuple[str, str]]:
        child = dg.AssetKey(asset)
        window = None
        if asset in MODEL_ASSETS:
            window = set(training.window_months(training.training_month(month, cfg.model.retrain_months), cfg))
        found = set()
        for parent in graph.get(child).parent_keys:
            keys = graph.get_parent_partition_keys_for_child(month, parent, child).partitions_subset.get_partition_keys()
            if window is not None and parent.path[-1] in ("samples", "raw_bars"):
                keys = [key for key in keys if key in window]
            found |= {(parent.path[-1], key) for key in keys if key >= first_data}
        return found

    targeted = {(asset, month) for month in requested for asset in ASSETS}
    todo = sorted(targeted)
    seen: set[tuple[str, str]] = set()
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for parent in parents(*node):
            if parent[0] == node[0] == "factor_report":
                continue  # a report before the range is not read: each report reads the evaluations
            if parent not in targeted and not materialised(layout, *parent):
                targeted.add(parent)
                todo.append(parent)
    months: dict[str, list[str]] = {}
    for asset, month in targeted:
        months.setdefault(asset, []).append(month)
    return {asset: sorted(months[asset]) for asset in ASSETS if asset in months}


def describe_months(months: list[str]) -> str:
    """``2022-07..2023-03, 2024-01`` for a sorted list of months."""
    spans: list[list[str]] = []
    for month in months:
        if spans and session_calendar.shift_month(spans[-1][-1], 1) == month:
            spans[-1].append(month)
        else:
            spans.append([month])
    return ", ".join(span[0] if len(span) == 1 else f"{span[0]}..{span[-1]}" for span in spans)

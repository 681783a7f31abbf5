"""The DuckDB file users query: ``factor.duckdb`` holds only views over the Parquet partitions.

DuckDB lets one process write a database file at a time, so the pipeline never keeps tables in it:
each view reads a glob of Parquet files, and a month written later shows up in the view without
touching the database again. The database is opened for writing only to create a view that is missing,
which happens once per dataset; if a user's session holds the file then, the step logs it and carries
on, and the next write creates the view.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pandas as pd

from factor_pipeline.datasets import VIEW_DATASETS
from factor_pipeline.market import session_calendar
from factor_pipeline.storage import Layout, StorageError, load_sql, read_provenance, write_parquet

# (view, SQL file, datasets it reads, views it reads), in creation order
VIEWS = (
    ("raw.sessions", "create_view_raw_sessions", ("calendar",), ()),
    ("raw.daily_bars", "create_view_raw_daily_bars", ("raw_daily",), ()),
    ("raw.stocks", "create_view_raw_stocks", ("raw_stocks",), ()),
    ("truth.expected_return", "create_view_truth_expected_return", ("raw_truth",), ()),
    ("raw.data_issues", "create_view_raw_data_issues", ("raw_issues",), ()),
    ("features.daily", "create_view_features_daily", ("features",), ()),
    ("features.samples", "create_view_features_samples", ("samples",), ("raw.daily_bars", "raw.sessions")),
    ("main.pret", "create_view_factor_pret", ("factor",), ()),
    ("eval.ic", "create_view_eval_ic", ("eval_ic",), ()),
    ("eval.portfolio", "create_view_eval_portfolio", ("eval_portfolio",), ()),
    ("eval.industry_ic", "create_view_eval_industry_ic", ("eval_industry_ic",), ()),
    ("eval.industry_long_excess", "create_view_eval_industry_long_excess", ("eval_industry_long_excess",), ()),
    ("eval.group_returns", "create_view_eval_group_returns", ("eval_group_returns",), ()),
    ("eval.long_short", "create_view_eval_long_short", ("eval_long_short",), ()),
    ("eval.style_exposure", "create_view_eval_style_exposure", ("eval_style_exposure",), ()),
    ("eval.factor_profile", "create_view_eval_factor_profile", ("eval_factor_profile",), ()),
    ("eval.index_pools", "create_view_eval_index_pools", ("eval_index_pools",), ()),
    ("eval.ic_decay", "create_view_eval_ic_decay", ("eval_ic_decay",), ()),
)


def sql_string_literal(text: str) -> str:
    """Quote text as a SQL string literal.

    DuckDB cannot bind parameters in DDL ("This type of statement can't be prepared"), and a view must
    carry its file glob, so the storage root is the one value substituted into view SQL, always through
    this function. It comes from FACTOR_PIPELINE_HOME, never from input data.
    """
    return "'" + str(text).replace("'", "''") + "'"


def write_sessions(layout: Layout) -> Path:
    """The active session calendar as Parquet, so views can count sessions; rewritten whenever the sessions change."""
    calendar = session_calendar.active()
    path = layout.sessions_file
    stamp = {"calendar": calendar.fingerprint, "description": calendar.description}
    if path.exists():
        try:
            if read_provenance(path) == stamp:
                return path
        except StorageError:
            pass  # unreadable: rewrite it
    sessions = calendar.sessions
    frame = pd.DataFrame(
        {
            "trade_date": sessions.values.astype("datetime64[ns]"),
            "session_index": range(len(sessions)),
            "month": sessions.strftime("%Y-%m"),
        }
    )
    write_parquet(frame, path, stamp)
    return path


def _glob(layout: Layout, dataset: str) -> str:
    return str(layout.dataset(VIEW_DATASETS[dataset]) / "*.parquet")


def _has_files(layout: Layout, dataset: str) -> bool:
    return any(not p.name.startswith(".") for p in layout.dataset(VIEW_DATASETS[dataset]).glob("*.parquet"))


def render_view_sql(layout: Layout, sql_name: str) -> str:
    globs = {name: sql_string_literal(_glob(layout, name)) for name in VIEW_DATASETS}
    return load_sql(sql_name).format(**globs)


def _existing_views(path: Path) -> set[str] | None:
    """Views already in the file, or None when the file cannot be opened read-only right now."""
    if not path.exists():
        return set()
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute("SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        return {row[0] for row in rows}
    except duckdb.Error:
        return None


def missing_views(layout: Layout) -> list[tuple[str, str]]:
    """(view, SQL file) of views whose data exists but which the database lacks."""
    existing = _existing_views(layout.duckdb_path) or set()
    creatable: list[tuple[str, str]] = []
    available = set(existing)
    for view, sql_name, datasets, needs in VIEWS:
        if all(_has_files(layout, d) for d in datasets) and all(v in available for v in needs):
            available.add(view)
            if view not in existing:
                creatable.append((view, sql_name))
    return creatable


def ensure_views(layout: Layout, log=print, wait_seconds: float = 10.0) -> list[str]:
    """Create the views whose Parquet files exist and that the database lacks; return their names.

    When another process holds the database (a user's session, another step), retry for
    ``wait_seconds`` and then give up quietly: the data is safe in Parquet and the next step retries.
    """
    write_sessions(layout)
    todo = missing_views(layout)
    if not todo:
        return []
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with duckdb.connect(str(layout.duckdb_path)) as con:
                con.execute(load_sql("create_schemas"))
                for _, sql_name in todo:
                    con.execute(render_view_sql(layout, sql_name))
            return [view for view, _ in todo]
        except duckdb.IOException as exc:
            if time.monotonic() > deadline:
                log(f"factor.duckdb is busy ({exc}); views {[v for v, _ in todo]} will be created by the next step")
                return []
            time.sleep(0.5)

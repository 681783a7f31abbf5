"""The Dagster code location: monthly assets from raw bars to the factor report, their checks, jobs, schedules and sensor."""

from __future__ import annotations

import dagster as dg

from factor_pipeline.pipeline.assets import ALL_ASSETS
from factor_pipeline.pipeline.checks import factor_on_time
from factor_pipeline.pipeline.executors import executor_from_env
from factor_pipeline.pipeline.resources import PipelineResource
from factor_pipeline.pipeline.schedules import ALL_JOBS, ALL_SCHEDULES, ALL_SENSORS

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=[factor_on_time],
    jobs=ALL_JOBS,
    schedules=ALL_SCHEDULES,
    sensors=ALL_SENSORS,
    resources={"pipeline": PipelineResource.from_env()},
    executor=executor_from_env(),
)


def all_assets_job() -> dg.JobDefinition:
    """Module-level handle so a run can be reconstructed in another process (dagster.reconstructable)."""
    return defs.resolve_job_def("all_assets_job")

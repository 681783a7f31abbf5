import subprocess
import sys

import pytest

from factor_pipeline.pipeline.executors import executor_from_env

SCRIPT = """
import json
from factor_pipeline.pipeline.definitions import defs
job = defs.resolve_job_def("all_assets_job")
print(job.executor_def.name)
gru = defs.resolve_assets_def("gru_checkpoint")
print(json.loads(gru.op.tags["dagster-k8s/config"])["container_config"]["resources"]["limits"]["nvidia.com/gpu"])
"""


@pytest.mark.parametrize(
    "name, executor",
    [("multiprocess", "multi_or_in_process_executor"), ("k8s", "k8s_job_executor"), ("celery", "celery_executor")],
)
def test_definitions_load_with_each_executor(tmp_path, name, executor):
    env = {"FACTOR_PIPELINE_EXECUTOR": name, "FACTOR_PIPELINE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [executor, "1"]


def test_unknown_executor_is_rejected():
    with pytest.raises(ValueError, match="FACTOR_PIPELINE_EXECUTOR"):
        executor_from_env({"FACTOR_PIPELINE_EXECUTOR": "slurm"})

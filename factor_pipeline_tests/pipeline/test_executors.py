import json
import subprocess
import sys

import pytest
import yaml

from factor_pipeline.pipeline.executors import HOME_VOLUME, STEP_RESOURCES, TRAINING_RESOURCES, executor_from_env, instance_settings, instance_yaml
from factor_pipeline_tests.conftest import REPO

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


def test_the_postgres_instance_is_dagster_yaml_with_postgres_storage():
    plain = yaml.safe_load((REPO / "dagster.yaml").read_text())
    postgres = yaml.safe_load((REPO / "dagster.postgres.yaml").read_text())
    assert postgres.pop("storage") == {"postgres": {"postgres_url": {"env": "FACTOR_PIPELINE_POSTGRES_URL"}}}
    assert postgres == plain
    assert instance_yaml({}) == "dagster.yaml"
    assert instance_yaml({"FACTOR_PIPELINE_POSTGRES_URL": "postgresql+psycopg2://dagster@db:5432/dagster"}) == "dagster.postgres.yaml"


def test_the_package_ships_the_top_level_instance_and_sql_files():
    from factor_pipeline.storage import SQL_DIR

    assert instance_settings({}).read_bytes() == (REPO / "dagster.yaml").read_bytes()
    postgres = instance_settings({"FACTOR_PIPELINE_POSTGRES_URL": "postgresql+psycopg2://dagster@db:5432/dagster"})
    assert postgres.read_bytes() == (REPO / "dagster.postgres.yaml").read_bytes()
    assert sorted(p.name for p in SQL_DIR.iterdir()) == sorted(p.name for p in (REPO / "sql").iterdir())


def test_celery_workers_read_the_broker_from_the_environment(monkeypatch):
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("FACTOR_PIPELINE_CELERY_BROKER", "redis://broker.internal:6379/0")
    assert get_validated_config(str(REPO / "celery.yaml"))["broker"] == "redis://broker.internal:6379/0"


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""

# The Dagster Helm chart's instance: dagster-k8s reads its run launcher's settings for every step job.
K8S_RUN_LAUNCHER = """
run_launcher:
  module: dagster_k8s
  class: K8sRunLauncher
  config:
    service_account_name: dagster
    instance_config_map: dagster-instance
    dagster_home: /opt/dagster/dagster_home
    load_incluster_config: false
    kubeconfig_file: {kubeconfig}
"""

# Runs each asset's step through the k8s executor, with the one call that would reach a cluster replaced by
# a capture of the Kubernetes Job it was given.
RENDER = """
import json, sys
from unittest import mock
import dagster as dg
import kubernetes
from dagster_k8s.client import DagsterKubernetesClient
from factor_pipeline.pipeline.definitions import all_assets_job

jobs = {}

def capture(self, body, namespace, **kwargs):
    jobs[body.metadata.labels["dagster/op"]] = dict(kubernetes.client.ApiClient().sanitize_for_serialization(body), namespace=namespace)
    raise RuntimeError("rendered, not launched")

with mock.patch.object(DagsterKubernetesClient, "create_namespaced_job_with_retries", capture), dg.DagsterInstance.get() as instance:
    for asset in sys.argv[1:]:
        dg.execute_job(dg.reconstructable(all_assets_job), instance=instance, tags={"dagster/partition": "2024-06"},
                       asset_selection=[dg.AssetKey(asset)], raise_on_error=False)
print(json.dumps(jobs))
"""


def test_k8s_step_jobs_carry_the_image_resources_gpu_and_the_homes_volume(tmp_path):
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    (home / "dagster" / "dagster.yaml").write_text(
        (REPO / "dagster.yaml").read_text() + K8S_RUN_LAUNCHER.format(kubeconfig=tmp_path / "kubeconfig")
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
        "DAGSTER_HOME": str(home / "dagster"),
        "FACTOR_PIPELINE_HOME": str(home),
        "FACTOR_PIPELINE_PROFILE": "smoke",
        "FACTOR_PIPELINE_EXECUTOR": "k8s",
        "FACTOR_PIPELINE_K8S_IMAGE": "registry.example/factor-pipeline:1.0",
        "FACTOR_PIPELINE_K8S_NAMESPACE": "research",
        "FACTOR_PIPELINE_K8S_HOME_CLAIM": "factor-home",
    }
    steps = ["raw_bars", "gan_model", "gru_checkpoint"]
    result = subprocess.run([sys.executable, "-c", RENDER, *steps], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(jobs) == sorted(steps), result.stderr[-3000:]

    for step, job in jobs.items():
        assert job["namespace"] == "research"
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "registry.example/factor-pipeline:1.0"
        assert container["args"][:3] == ["dagster", "api", "execute_step"]
        expected = TRAINING_RESOURCES if step in ("gan_model", "gru_checkpoint") else STEP_RESOURCES
        assert container["resources"] == expected, step
        assert pod["volumes"] == [{"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": "factor-home"}}]
        assert container["volumeMounts"] == [{"name": HOME_VOLUME, "mountPath": str(home)}]
        variables = {variable["name"]: variable.get("value") for variable in container["env"]}
        assert variables["FACTOR_PIPELINE_HOME"] == str(home) and variables["FACTOR_PIPELINE_PROFILE"] == "smoke"
    assert jobs["gru_checkpoint"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "limits" not in jobs["raw_bars"]["spec"]["template"]["spec"]["containers"][0]["resources"]

"""Where steps run: one machine (the default), Kubernetes jobs or Celery workers, chosen by configuration only.

FACTOR_PIPELINE_EXECUTOR selects the executor of every job:
- ``multiprocess`` (default): Dagster's multi-or-in-process executor; runs default to the multiprocess
  executor and can be switched to ``in_process`` in the run config.
- ``k8s``: dagster-k8s runs each step as its own Kubernetes job in image FACTOR_PIPELINE_K8S_IMAGE, namespace
  FACTOR_PIPELINE_K8S_NAMESPACE (default ``default``), with the PersistentVolumeClaim FACTOR_PIPELINE_K8S_HOME_CLAIM
  mounted at FACTOR_PIPELINE_HOME; training steps request one ``nvidia.com/gpu``. dagster-k8s reads the run
  launcher's settings for every step, so the instance must use its K8sRunLauncher (the Dagster Helm chart's).
- ``celery``: dagster-celery sends each step to workers through FACTOR_PIPELINE_CELERY_BROKER; training
  steps go to the ``gpu`` queue, so only workers started with ``-q gpu`` (on GPU machines) take them.
With either scale-out executor, FACTOR_PIPELINE_HOME must be storage that every worker mounts at the
same path (a PersistentVolumeClaim, NFS/EFS, or a bucket mounted with a FUSE driver); see docs/operations.md.
"""

from __future__ import annotations

import importlib.resources
import os
from importlib.resources.abc import Traversable
from pathlib import Path

import dagster as dg

EXECUTORS = ("multiprocess", "k8s", "celery")

# Kubernetes requests per step. A step's own `resources` replace the executor's whole (dagster-k8s), so the
# training steps carry their requests beside the GPU. Sized for the `full` profile, whose training window
# alone (about 76 dates x 5,000 stocks x 40 x 18 float32) is 1 GiB; the smaller profiles need far less.
STEP_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}}
TRAINING_RESOURCES = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"nvidia.com/gpu": "1"}}

# Attached to the training steps; each executor reads only its own tag.
TRAINING_OP_TAGS = {
    "dagster-k8s/config": {"container_config": {"resources": TRAINING_RESOURCES}},
    "dagster-celery/queue": "gpu",
}

HOME_VOLUME = "factor-pipeline-home"


def instance_yaml(environ: dict | None = None) -> str:
    """The name of the instance settings file that belongs in DAGSTER_HOME: PostgreSQL storage when
    FACTOR_PIPELINE_POSTGRES_URL is set, which a scale-out needs, else SQLite files under DAGSTER_HOME."""
    environ = os.environ if environ is None else environ
    return "dagster.postgres.yaml" if environ.get("FACTOR_PIPELINE_POSTGRES_URL") else "dagster.yaml"


def instance_settings(environ: dict | None = None) -> Traversable:
    """The instance settings file that belongs in DAGSTER_HOME, as shipped in the package: the top-level
    dagster*.yaml and celery.yaml are linked under factor_pipeline/instance/ and copied into the wheel."""
    return importlib.resources.files("factor_pipeline") / "instance" / instance_yaml(environ)


def k8s_executor_config(environ: dict) -> dict:
    """The k8s_job_executor's configuration: image, namespace, step resources, the home's volume, and the
    pipeline's environment, which a step's pod needs to load the same home, source, profile and instance
    storage. DAGSTER_HOME is not passed: the pod's is the run launcher's (the Helm chart's instance)."""
    home = str(Path(environ.get("FACTOR_PIPELINE_HOME", "data")).resolve())
    passed = {k: v for k, v in environ.items() if k.startswith("FACTOR_PIPELINE_")}
    passed["FACTOR_PIPELINE_HOME"] = home
    config = {
        "job_namespace": environ.get("FACTOR_PIPELINE_K8S_NAMESPACE", "default"),
        "max_concurrent": 4,
        "resources": STEP_RESOURCES,
        "env_vars": [f"{k}={v}" for k, v in sorted(passed.items())],
        # Inside the cluster (a run pod) from the service account; elsewhere from the user's kubeconfig.
        "load_incluster_config": bool(environ.get("KUBERNETES_SERVICE_HOST")),
    }
    if environ.get("FACTOR_PIPELINE_K8S_IMAGE"):
        config["job_image"] = environ["FACTOR_PIPELINE_K8S_IMAGE"]
    if environ.get("FACTOR_PIPELINE_K8S_HOME_CLAIM"):
        claim = {"claim_name": environ["FACTOR_PIPELINE_K8S_HOME_CLAIM"]}
        config["volumes"] = [{"name": HOME_VOLUME, "persistent_volume_claim": claim}]
        config["volume_mounts"] = [{"name": HOME_VOLUME, "mount_path": home}]
    return config


def executor_from_env(environ: dict | None = None) -> dg.ExecutorDefinition:
    environ = os.environ if environ is None else environ
    name = environ.get("FACTOR_PIPELINE_EXECUTOR", "multiprocess")
    if name == "multiprocess":
        return dg.multi_or_in_process_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(k8s_executor_config(environ), name="k8s_job_executor")
    if name == "celery":
        from dagster_celery import celery_executor

        broker = environ.get("FACTOR_PIPELINE_CELERY_BROKER", "pyamqp://guest@localhost//")
        return celery_executor.configured({"broker": broker}, name="celery_executor")
    raise ValueError(f"FACTOR_PIPELINE_EXECUTOR={name!r} is not one of {', '.join(EXECUTORS)}")

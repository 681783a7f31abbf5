"""Where steps run: one machine (the default), Kubernetes jobs or Celery workers, chosen by configuration only.

FACTOR_PIPELINE_EXECUTOR selects the executor of every job:
- ``multiprocess`` (default): Dagster's multi-or-in-process executor; runs default to the multiprocess
  executor and can be switched to ``in_process`` in the run config.
- ``k8s``: dagster-k8s runs each step as its own Kubernetes job in image FACTOR_PIPELINE_K8S_IMAGE, namespace
  FACTOR_PIPELINE_K8S_NAMESPACE (default ``default``); training steps request one ``nvidia.com/gpu``.
- ``celery``: dagster-celery sends each step to workers through FACTOR_PIPELINE_CELERY_BROKER; training
  steps go to the ``gpu`` queue, so only workers started with ``-q gpu`` (on GPU machines) take them.
With either scale-out executor, FACTOR_PIPELINE_HOME must be storage that every worker mounts at the
same path (a PersistentVolumeClaim, NFS/EFS, or a bucket mounted with a FUSE driver); see README, Operations.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTORS = ("multiprocess", "k8s", "celery")

# Attached to the training steps; each executor reads only its own tag.
TRAINING_OP_TAGS = {
    "dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}},
    "dagster-celery/queue": "gpu",
}


def executor_from_env(environ: dict | None = None) -> dg.ExecutorDefinition:
    environ = os.environ if environ is None else environ
    name = environ.get("FACTOR_PIPELINE_EXECUTOR", "multiprocess")
    if name == "multiprocess":
        return dg.multi_or_in_process_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        config = {"job_namespace": environ.get("FACTOR_PIPELINE_K8S_NAMESPACE", "default"), "max_concurrent": 4}
        if environ.get("FACTOR_PIPELINE_K8S_IMAGE"):
            config["job_image"] = environ["FACTOR_PIPELINE_K8S_IMAGE"]
        return k8s_job_executor.configured(config, name="k8s_job_executor")
    if name == "celery":
        from dagster_celery import celery_executor

        broker = environ.get("FACTOR_PIPELINE_CELERY_BROKER", "pyamqp://guest@localhost//")
        return celery_executor.configured({"broker": broker}, name="celery_executor")
    raise ValueError(f"FACTOR_PIPELINE_EXECUTOR={name!r} is not one of {', '.join(EXECUTORS)}")

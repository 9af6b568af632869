"""The build Job (and its spec ConfigMap) and the build record that caches a finished build's result.

A build runs ``fulcrum build`` for one (content key, node pool). Its result comes back as compact JSON in the
pod's termination message; the operator copies it into a *build record* ConfigMap named after the key, so a
finished build is reused by every ModelDeployment in every namespace with the same key, and a failed build
is not retried until its inputs change (or someone deletes the record): no retry storm.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from fulcrum.api import ModelDeploymentSpec, NodePool
from fulcrum.resources import labels
from fulcrum.resources.common import (
    SCRATCH_DIR,
    Manifest,
    container_security_context,
    gpu_resources,
    pod_security_context,
    scheduling,
    storage_env_from,
    storage_volume,
)
from fulcrum.resources.settings import OperatorSettings

SPEC_MOUNT = "/etc/fulcrum"
SPEC_FILE = "modeldeployment.yaml"
RECORD_KEY = "result.json"
TERMINATION_LOG = "/dev/termination-log"


def _build_labels(key: str, pool: NodePool) -> dict[str, str]:
    return {
        labels.MANAGED_BY: labels.MANAGER,
        labels.COMPONENT: labels.COMPONENT_BUILD,
        labels.BUILD_KEY: key,
        labels.POOL: pool.name,
    }


def build_spec_configmap(
    md_name: str, spec: ModelDeploymentSpec, key: str, pool: NodePool, settings: OperatorSettings
) -> Manifest:
    """The ModelDeployment the builder reads (``--spec``), stripped of status and cluster metadata."""
    document = {
        "apiVersion": "fulcrum.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": md_name},
        "spec": spec.to_wire(),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": labels.build_spec_name(key),
            "namespace": settings.build_namespace,
            "labels": _build_labels(key, pool),
        },
        "data": {SPEC_FILE: yaml.safe_dump(document, sort_keys=True)},
    }


def build_job(key: str, pool: NodePool, settings: OperatorSettings) -> Manifest:
    """The Job that builds one key on one pool (TensorRT engines must be built on the GPU they serve on)."""
    volumes, mounts = storage_volume(settings.storage, read_only=False)
    volumes = [
        *volumes,
        {"name": "spec", "configMap": {"name": labels.build_spec_name(key)}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts = [
        *mounts,
        {"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": SCRATCH_DIR},
    ]
    container: Manifest = {
        "name": "builder",
        "image": settings.builder_image,
        "command": ["fulcrum", "build"],
        "args": [
            "--spec",
            f"{SPEC_MOUNT}/{SPEC_FILE}",
            "--out",
            settings.storage.repository_path(key),
            "--target",
            settings.build_target,
            "--node-pool",
            pool.name,
            "--termination-message",
            TERMINATION_LOG,
            # a local repository is profiled through the real tritonserver, as it will serve
            *(["--profile-server", "tritonserver"] if settings.build_target == "local" else []),
        ],
        "env": [{"name": "HOME", "value": SCRATCH_DIR}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
    }
    env_from = storage_env_from(settings.storage)
    if env_from:
        container["envFrom"] = env_from
    resources = gpu_resources(pool)
    if resources:
        container["resources"] = resources
    pod_labels = _build_labels(key, pool)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": labels.build_job_name(key),
            "namespace": settings.build_namespace,
            "labels": pod_labels,
        },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": settings.build_ttl_seconds,
            "activeDeadlineSeconds": settings.build_timeout_seconds,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(settings),
                    **scheduling(pool),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def build_record(key: str, pool: NodePool, result: dict[str, Any], settings: OperatorSettings) -> Manifest:
    """The ConfigMap caching a finished build's result (``result`` as the builder reported it)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": labels.build_record_name(key),
            "namespace": settings.build_namespace,
            "labels": {**_build_labels(key, pool), labels.COMPONENT: labels.COMPONENT_BUILD_RECORD},
        },
        "data": {RECORD_KEY: json.dumps(result, sort_keys=True, separators=(",", ":"))},
    }

"""The build Job (and its spec ConfigMap) and the build record that caches a finished build's result.

A build runs ``fulcrum build`` for one (content key, node pool). Its result comes back as compact JSON in the
pod's termination message; the operator copies it into a *build record* ConfigMap named after the key, so a
finished build is reused by every ModelDeployment in every namespace with the same key. A build the builder
rejected (a bad spec or model: ``fulcrum build`` exits 2) is final until its inputs change or someone deletes the
record; a build the infrastructure interrupted is retried with backoff (``fulcrum.reconcile.builds``): no retry
storm either way.

Every tier is gated, searched and profiled through the Triton it will serve with, on the pool's device and
under each replica's resources: the pod runs three containers in turn. The init container ``build`` (the
builder image, holding the pool's GPUs) exports, converts and builds the TensorRT engines (``--no-profile``);
then ``triton``, a native sidecar (an init container with ``restartPolicy: Always``) of the pool's *serving
image* with ``spec.serving.resources`` (a replica's CPU and memory limits), holds the same GPUs (the kubelet
hands the finished init container's devices on) and serves an emptyDir in explicit model-control mode; the main
container ``measure`` (the builder image, no GPU, no limit: the load it sends does not eat the server's CPU)
reuses the build and gates, searches and profiles each tier through the sidecar over loopback, and writes the
result. The Job completes when ``measure`` exits (the kubelet then stops the sidecar). The ``local`` target (the
dev cluster) works the same way, its serving image the CPU tritonserver of images/tritonserver-cpu.
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
TRITON_MODELS = "/var/run/fulcrum/triton-models"
"""The emptyDir the measure container copies tiers into and the Triton sidecar serves."""
TRITON_HTTP_PORT = 8000
SERVING_IMAGE_ANNOTATION = "fulcrum.dev/serving-image"
"""On the Job: the Triton image the build was measured with (a build record keeps it; serving uses it)."""
EXIT_UNUSABLE = 2  # ``fulcrum build``'s exit code when the spec or the model cannot be built (model_repo_builder.cli)
BUILD_POD_RETRIES = 2


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


def _builder_container(name: str, key: str, pool: NodePool, settings: OperatorSettings, extra: list[str]) -> Manifest:
    volumes_mounts = storage_volume(settings.storage, read_only=False)[1]
    container: Manifest = {
        "name": name,
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
            *extra,
        ],
        "env": [{"name": "HOME", "value": SCRATCH_DIR}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            *volumes_mounts,
            {"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": SCRATCH_DIR},
        ],
        "securityContext": container_security_context(),
    }
    env_from = storage_env_from(settings.storage)
    if env_from:
        container["envFrom"] = env_from
    return container


def triton_sidecar(pool: NodePool, serving_image: str, serving_resources: Manifest | None = None) -> Manifest:
    """The pool's own Triton, serving the measure container's copies of the tiers (explicit model control), with
    a serving replica's resources (``spec.serving.resources``)."""
    container: Manifest = {
        "name": "triton",
        "image": serving_image,
        "restartPolicy": "Always",  # a native sidecar: runs beside the main container, stopped after it
        "command": ["tritonserver"],
        "args": [
            f"--model-repository={TRITON_MODELS}",
            "--model-control-mode=explicit",
            "--strict-readiness=false",
            "--http-address=127.0.0.1",
            f"--http-port={TRITON_HTTP_PORT}",
            "--grpc-address=127.0.0.1",
            "--allow-metrics=false",
            "--exit-timeout-secs=5",
        ],
        "env": [{"name": "HOME", "value": SCRATCH_DIR}],
        # no probe: it listens on loopback only, and the measure container waits for /v2/health/live itself
        "volumeMounts": [
            {"name": "triton-models", "mountPath": TRITON_MODELS},
            {"name": "triton-tmp", "mountPath": SCRATCH_DIR},
        ],
        "securityContext": container_security_context(),
    }
    resources = gpu_resources(pool, serving_resources)
    if resources:
        container["resources"] = resources
    return container


def build_job(
    key: str,
    pool: NodePool,
    settings: OperatorSettings,
    *,
    serving_image: str,
    serving_resources: Manifest | None = None,
) -> Manifest:
    """The Job that builds one key on one pool (TensorRT engines must be built on the GPU they serve on)."""
    volumes = [
        *storage_volume(settings.storage, read_only=False)[0],
        {"name": "spec", "configMap": {"name": labels.build_spec_name(key)}},
        {"name": "tmp", "emptyDir": {}},
    ]
    resources = gpu_resources(pool)
    build = _builder_container("build", key, pool, settings, ["--no-profile"])
    if resources:
        build["resources"] = resources
    measure = _builder_container(
        "measure",
        key,
        pool,
        settings,
        ["--triton-url", f"127.0.0.1:{TRITON_HTTP_PORT}", "--triton-repository", TRITON_MODELS],
    )
    measure["volumeMounts"].append({"name": "triton-models", "mountPath": TRITON_MODELS})
    pod: Manifest = {
        "initContainers": [build, triton_sidecar(pool, serving_image, serving_resources)],
        "containers": [measure],
        "volumes": [
            *volumes,
            {"name": "triton-models", "emptyDir": {}},
            {"name": "triton-tmp", "emptyDir": {}},
        ],
    }
    builders = ["build", "measure"]  # not the Triton sidecar: only `fulcrum build` exits 2 for a bad model
    pod_labels = _build_labels(key, pool)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": labels.build_job_name(key),
            "namespace": settings.build_namespace,
            "labels": pod_labels,
            "annotations": {SERVING_IMAGE_ANNOTATION: serving_image},
        },
        "spec": {
            # a pod the infrastructure took away (preempted, evicted, its node drained) is simply replaced; other
            # pod failures are retried twice; the builder's exit code 2 (the spec or model is unusable) is final
            "backoffLimit": BUILD_POD_RETRIES,
            "podFailurePolicy": {
                "rules": [
                    *(
                        {
                            "action": "FailJob",
                            "onExitCodes": {"containerName": name, "operator": "In", "values": [EXIT_UNUSABLE]},
                        }
                        for name in builders
                    ),
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "ttlSecondsAfterFinished": settings.build_ttl_seconds,
            "activeDeadlineSeconds": settings.build_timeout_seconds,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(settings),
                    **scheduling(pool),
                    **pod,
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


def repository_cleanup_job(key: str, settings: OperatorSettings) -> Manifest | None:
    """A Job that removes one build's repository from a mounted storage (hostPath, PVC); None for object storage,
    whose prefix the operator does not delete (the bucket's lifecycle rules do)."""
    volumes, mounts = storage_volume(settings.storage, read_only=False)
    if not volumes:
        return None
    job_labels = {
        labels.MANAGED_BY: labels.MANAGER,
        labels.COMPONENT: labels.COMPONENT_BUILD_CLEANUP,
        labels.BUILD_KEY: key,
    }
    path = settings.storage.repository_path(key)
    container: Manifest = {
        "name": "cleanup",
        "image": settings.builder_image,
        "command": ["python3", "-c", "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)", path],
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": labels.dns_name("fulcrum-gc", key[:20]),
            "namespace": settings.build_namespace,
            "labels": job_labels,
        },
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 600,
            "activeDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": job_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(settings),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }

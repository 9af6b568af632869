"""The Triton Deployment of one (tier, pool), the Service in front of all of a ModelDeployment's Triton pods,
and their PodDisruptionBudget."""

from __future__ import annotations

from dataclasses import dataclass

from fulcrum.api import ModelDeploymentSpec, NodePool
from fulcrum.resources import labels
from fulcrum.resources.common import (
    SCRATCH_DIR,
    Manifest,
    container_security_context,
    gpu_resources,
    owner_reference,
    pod_security_context,
    scheduling,
    storage_env_from,
    storage_volume,
)
from fulcrum.resources.settings import OperatorSettings

HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002
PROBE_PERIOD_SECONDS = 5


@dataclass(frozen=True)
class ServingTarget:
    """What one Triton Deployment serves: a tier's model from a build's repository, on a pool."""

    tier: str
    pool: NodePool
    repository: str  # path or URI of the build's repository, as pods see it
    model_name: str  # the tier's model directory inside the repository
    replicas: int


def triton_args(target: ServingTarget) -> list[str]:
    return [
        f"--model-repository={target.repository}",
        "--model-control-mode=explicit",
        f"--load-model={target.model_name}",
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--http-port={HTTP_PORT}",
        f"--grpc-port={GRPC_PORT}",
        f"--metrics-port={METRICS_PORT}",
        "--allow-metrics=true",
        "--metrics-config=summary_latencies=true",
    ]


def server_deployment(
    md: Manifest, spec: ModelDeploymentSpec, target: ServingTarget, settings: OperatorSettings
) -> Manifest:
    md_name: str = md["metadata"]["name"]
    name = labels.server_deployment_name(md_name, target.tier, target.pool.name)
    selector = {**labels.server_selector(md_name), labels.TIER: target.tier, labels.POOL: target.pool.name}
    pod_labels = {**labels.owned_labels(md_name, labels.COMPONENT_SERVER), **selector}
    volumes, mounts = storage_volume(settings.storage, read_only=True)
    volumes = [*volumes, {"name": "tmp", "emptyDir": {}}]
    mounts = [*mounts, {"name": "tmp", "mountPath": SCRATCH_DIR}]
    startup_failures = max(3, target.pool.replica_startup_seconds // PROBE_PERIOD_SECONDS + 1)
    container: Manifest = {
        "name": "triton",
        "image": spec.serving.image or settings.triton_image,
        "command": ["tritonserver"],
        "args": triton_args(target),
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": [{"name": "HOME", "value": SCRATCH_DIR}],
        "startupProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "failureThreshold": startup_failures,
        },
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
    }
    env_from = storage_env_from(settings.storage)
    if env_from:
        container["envFrom"] = env_from
    base = spec.serving.resources.to_wire() if spec.serving.resources else None
    resources = gpu_resources(target.pool, base)
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": md["metadata"]["namespace"],
            "labels": pod_labels,
            "ownerReferences": [owner_reference(md)],
        },
        "spec": {
            "replicas": target.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(settings),
                    **scheduling(target.pool),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def _fleet_metadata(md: Manifest) -> Manifest:
    """Metadata of the objects in front of the whole fleet: named after, labelled for and owned by ``md``."""
    md_name: str = md["metadata"]["name"]
    return {
        "name": md_name,
        "namespace": md["metadata"]["namespace"],
        "labels": labels.owned_labels(md_name, labels.COMPONENT_SERVER),
        "ownerReferences": [owner_reference(md)],
    }


def server_service(md: Manifest) -> Manifest:
    md_name: str = md["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _fleet_metadata(md),
        "spec": {
            "selector": labels.server_selector(md_name),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def server_pdb(md: Manifest) -> Manifest:
    md_name: str = md["metadata"]["name"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _fleet_metadata(md),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels.server_selector(md_name)}},
    }

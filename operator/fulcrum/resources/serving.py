"""The Triton Deployment of a placement, the Service in front of all of a ModelDeployment's Triton pods, and
their PodDisruptionBudget.

A placement's Deployment is either a pool's *hot* Deployment (``<md>-<pool>``: each replica loads the pool's hot
tiers, the served name routes to one of them and a switch among them changes only the route) or a tier served
alone (``<md>-<tier>-<pool>``). Either way clients call the served name (``fulcrum.resources.routing``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fulcrum.api import ModelDeploymentSpec, NodePool
from fulcrum.resources import labels
from fulcrum.resources.build_key import GPU_PRODUCT_LABEL
from fulcrum.resources.common import (
    SCRATCH_DIR,
    Manifest,
    container_security_context,
    gpu_resources,
    owner_reference,
    pod_security_context,
    scheduling,
)
from fulcrum.resources.routing import ROUTING_REPOSITORY, key_env, restricted_api_args, routing_volume
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
from fulcrum.resources.storage import serving_repository, storage_for

HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002
PROBE_PERIOD_SECONDS = 5
MIN_STARTUP_ALLOWANCE_SECONDS = 60
DRAIN_SECONDS = 10
"""A deleted pod keeps serving this long before Triton stops: clients (kube-proxy, load balancers) that still
send to it meanwhile get answers, not reset connections (Triton closes its listeners at SIGTERM)."""
EXIT_TIMEOUT_SECONDS = 20
"""How long Triton then waits for requests in flight (--exit-timeout-secs)."""


@dataclass(frozen=True)
class ServingTarget:
    """What one Triton Deployment serves: tiers of a build's repository on a pool, the served name routed to one."""

    tier: str  # the tier the served name routes to
    pool: NodePool
    repository: str  # where the build published the repository (s3://.../<key> or /models/<key>)
    model_name: str  # the routed tier's model directory inside the repository
    replicas: int
    served_name: str = ""  # the model name clients call; empty: the tier's own name only (no routing model)
    loaded: tuple[tuple[str, str], ...] = ()  # (tier, model directory) each replica loads; empty: the tier alone
    hot: bool = False  # the pool's hot Deployment (named after the pool) rather than one tier alone
    key_digest: str = ""  # of the routing key that guards the model-repository API (fulcrum.resources.routing)
    image: str | None = None
    """The Triton image the build measured the tier with; None: the spec's (or the operator's) image."""
    gpu_product: str | None = None
    """A TensorRT tier's GPU model (``nvidia.com/gpu.product``): its plan runs only there."""

    @property
    def models(self) -> tuple[tuple[str, str], ...]:
        return self.loaded or ((self.tier, self.model_name),)

    def deployment_name(self, md_name: str) -> str:
        if self.hot:
            return labels.hot_deployment_name(md_name, self.pool.name)
        return labels.server_deployment_name(md_name, self.tier, self.pool.name)


def triton_image(spec: ModelDeploymentSpec, settings: OperatorSettings) -> str:
    """The Triton image a ModelDeployment serves with (and its builds gate and profile through)."""
    return spec.serving.image or settings.triton_image


def triton_args(target: ServingTarget, model_repository: str | None = None) -> list[str]:
    """Triton's command line; ``model_repository``: the build's repository as the Triton container sees it."""
    repositories = [f"--model-repository={model_repository or target.repository}"]
    loads = [f"--load-model={model}" for _, model in target.models]
    if target.served_name:
        repositories.append(f"--model-repository={ROUTING_REPOSITORY}")
        loads.append(f"--load-model={target.served_name}")  # after its tiers: the routing model needs them
    return [
        *repositories,
        "--model-control-mode=explicit",
        *loads,
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--http-port={HTTP_PORT}",
        f"--grpc-port={GRPC_PORT}",
        f"--metrics-port={METRICS_PORT}",
        "--allow-metrics=true",
        "--metrics-config=summary_latencies=true",
        f"--exit-timeout-secs={EXIT_TIMEOUT_SECONDS}",
        *(restricted_api_args() if target.served_name else []),
    ]


def pod_selector(md_name: str, target: ServingTarget) -> dict[str, str]:
    """The Deployment's selector: a hot Deployment's pods carry no tier label (their tier changes live)."""
    if target.hot:
        return {**labels.server_selector(md_name), labels.POOL: target.pool.name, labels.ROUTING: labels.ROUTING_HOT}
    return {**labels.server_selector(md_name), labels.TIER: target.tier, labels.POOL: target.pool.name}


def startup_probe_failures(replica_startup_seconds: int) -> int:
    """How many failed readiness checks the startup probe allows before the kubelet restarts Triton.

    ``replicaStartupSeconds`` is what a start usually takes (the policy plans with it), not the most it may
    take: a replica on a busy node, or under a small CPU limit, loading every tier, starts slower. Killing it
    then restarts the same slow start, forever (a 100m replica of ctr-ranker, startup 10 s declared, was
    restarted at 15 s while loading its four models). So the probe waits three times the declared start-up,
    at least a minute; a Triton that cannot start exits by itself (``--exit-on-error``)."""
    allowed = max(MIN_STARTUP_ALLOWANCE_SECONDS, 3 * replica_startup_seconds)
    return -(-allowed // PROBE_PERIOD_SECONDS) + 1


def server_deployment(
    md: Manifest, spec: ModelDeploymentSpec, target: ServingTarget, settings: OperatorSettings
) -> Manifest:
    md_name: str = md["metadata"]["name"]
    name = target.deployment_name(md_name)
    selector = pod_selector(md_name, target)
    pod_labels = {**labels.owned_labels(md_name, labels.COMPONENT_SERVER), **selector}
    storage = storage_of(target.repository, spec, settings)
    local_repository, volumes, mounts, init_containers = serving_repository(storage, target.repository, settings)
    volumes = [*volumes, {"name": "tmp", "emptyDir": {}}]
    mounts = [*mounts, {"name": "tmp", "mountPath": SCRATCH_DIR}]
    if target.served_name:
        routing, routing_mount = routing_volume(md_name, target.served_name, name)
        volumes, mounts = [*volumes, routing], [*mounts, routing_mount]
    startup_failures = startup_probe_failures(target.pool.replica_startup_seconds)
    container: Manifest = {
        "name": "triton",
        "image": target.image or triton_image(spec, settings),
        "command": ["tritonserver"],
        "args": triton_args(target, local_repository),
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": [{"name": "HOME", "value": SCRATCH_DIR}, *([key_env(md_name)] if target.served_name else [])],
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
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
    }
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
            # the Deployment (not its pods) names the tier it routes to: it changes without a roll
            "labels": {**pod_labels, labels.TIER: target.tier},
            "annotations": {labels.LOADED_TIERS: ",".join(tier for tier, _ in target.models)},
            "ownerReferences": [owner_reference(md)],
        },
        "spec": {
            "replicas": target.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    **({"annotations": {labels.ROUTING_KEY: target.key_digest}} if target.served_name else {}),
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": DRAIN_SECONDS + EXIT_TIMEOUT_SECONDS + 5,
                    "securityContext": pod_security_context(settings),
                    **_scheduling(target),
                    **({"initContainers": init_containers} if init_containers else {}),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def _scheduling(target: ServingTarget) -> Manifest:
    """The pool's scheduling, narrowed to the GPU model a TensorRT plan was built on."""
    out = scheduling(target.pool)
    if target.gpu_product:
        out["nodeSelector"] = dict(
            sorted({**out.get("nodeSelector", {}), GPU_PRODUCT_LABEL: target.gpu_product}.items())
        )
    return out


def storage_of(repository: str, spec: ModelDeploymentSpec, settings: OperatorSettings) -> RepositoryStorage:
    """The storage a published repository belongs to: the ModelDeployment's, else the operator's default (a
    build made before ``spec.repository`` changed keeps serving from where it was published)."""
    own = storage_for(spec, settings)
    for storage in (own, settings.storage):
        if storage.owns(repository):
            return storage
    return own


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

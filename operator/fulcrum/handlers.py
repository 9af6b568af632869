"""Kopf handlers: thin glue between the watch streams and the reconciler.

Kopf watches ModelDeployments and Fulcrum's children and feeds the object cache; every change enqueues
the ModelDeployment it concerns; workers reconcile from the cache. No Kopf change-detection handlers are
used, so Kopf writes no annotations and no finalizers on user objects (GitOps tools see no drift), and
deletion is left to owner references.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import start_http_server

from fulcrum.controller import telemetry
from fulcrum.controller.cache import Key, ObjectCache
from fulcrum.controller.collector import Collector, collector_store
from fulcrum.controller.control import ControlLoop
from fulcrum.controller.kube import KubeClient
from fulcrum.controller.metrics_server import KubeAuthorizer, SecureMetricsServer
from fulcrum.controller.queue import WorkQueue
from fulcrum.controller.reconciler import Reconciler
from fulcrum.metrics.sources import source_from_spec
from fulcrum.resources import labels
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage

log = logging.getLogger("fulcrum")

MANAGED = {labels.MANAGED_BY: labels.MANAGER}
RESYNC_SECONDS = 300.0
GC_INTERVAL_SECONDS = 600.0


class Runtime:
    """The operator's process-wide state, created at startup."""

    def __init__(self) -> None:
        self.cache = ObjectCache()
        self.queue: WorkQueue[Key] = WorkQueue()
        self.reconciler: Reconciler | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.errors = 0
        self.metrics_server: SecureMetricsServer | None = None


RUNTIME = Runtime()


def settings_from_environment() -> OperatorSettings:
    """Operator settings from FULCRUM_* variables (set by `fulcrum run` flags and the Helm chart)."""
    defaults = OperatorSettings()
    env = os.environ
    storage = defaults.storage
    if env.get("FULCRUM_REPOSITORY"):
        storage = RepositoryStorage.parse(
            env["FULCRUM_REPOSITORY"],
            endpoint=env.get("FULCRUM_S3_ENDPOINT") or None,
            region=env.get("FULCRUM_S3_REGION") or None,
            secret=env.get("FULCRUM_REPOSITORY_SECRET") or None,
            serving_secret=env.get("FULCRUM_SERVING_SECRET") or None,
        )
    return OperatorSettings(
        build_namespace=env.get("FULCRUM_BUILD_NAMESPACE", defaults.build_namespace),
        storage=storage,
        triton_image=env.get("FULCRUM_TRITON_IMAGE", defaults.triton_image),
        builder_image=env.get("FULCRUM_BUILDER_IMAGE", defaults.builder_image),
        storage_image=env.get("FULCRUM_STORAGE_IMAGE") or defaults.storage_image,
        build_target="local" if env.get("FULCRUM_BUILD_TARGET") == "local" else "triton",
        retention_seconds=int(env.get("FULCRUM_RETENTION_SECONDS") or defaults.retention_seconds),
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "fulcrum.dev/finalizer"
    settings.posting.enabled = False  # Fulcrum posts its own, meaningful events
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.error_backoffs = [1, 2, 5, 10, 30, 60]
    settings.batching.worker_limit = 4
    settings.scanning.disabled = True  # no cluster-wide namespace/CRD listing: least-privilege RBAC has none
    operator_settings = settings_from_environment()
    kube = KubeClient.from_environment(os.environ.get("KUBECONFIG"))
    await kube.ensure_namespace(operator_settings.build_namespace)
    tick = float(os.environ.get("FULCRUM_TICK_SECONDS", "15"))
    RUNTIME.reconciler = Reconciler(
        kube,
        RUNTIME.cache,
        operator_settings,
        control=ControlLoop(tick_seconds=tick),
        metrics=source_from_spec(os.environ.get("FULCRUM_METRICS_SOURCE", "scrape")),
    )
    telemetry.track_queue(lambda: len(RUNTIME.queue))
    telemetry.LEADER.set(1)  # standalone: this process is the only one that reconciles
    metrics_port = int(os.environ.get("FULCRUM_METRICS_PORT", "0"))
    if metrics_port:
        address = os.environ.get("FULCRUM_METRICS_ADDRESS", "0.0.0.0")  # noqa: S104 - the pod's network
        if os.environ.get("FULCRUM_METRICS_SECURE") == "1":
            cert_dir = os.environ.get("FULCRUM_METRICS_CERT_DIR")
            RUNTIME.metrics_server = SecureMetricsServer(
                KubeAuthorizer(lambda path, body: kube.request("POST", path, body=body)),
                address,
                metrics_port,
                Path(cert_dir) if cert_dir else None,
            )
            await RUNTIME.metrics_server.start()
        else:
            start_http_server(metrics_port, addr=address)
    workers = int(os.environ.get("FULCRUM_WORKERS", "4"))
    for _worker in range(workers):
        RUNTIME.tasks.append(asyncio.create_task(RUNTIME.queue.run_worker(_reconcile, _on_error)))
    RUNTIME.tasks.append(asyncio.create_task(_resync()))
    collector = Collector(kube, RUNTIME.cache, operator_settings, collector_store(operator_settings))
    interval = float(os.environ.get("FULCRUM_GC_INTERVAL_SECONDS") or GC_INTERVAL_SECONDS)
    RUNTIME.tasks.append(asyncio.create_task(collector.run_forever(interval, first_delay=min(60.0, interval))))
    if operator_settings.storage.kind == "hostPath":
        log.warning(
            "repository storage is hostPath %s: builds and Triton pods must run on the same node, so this works "
            "on single-node clusters only; use s3://bucket/prefix or a ReadWriteMany claim (pvc://) elsewhere",
            operator_settings.storage.location,
        )
    log.info("fulcrum operator started: %s", operator_settings)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    for task in RUNTIME.tasks:
        task.cancel()
    if RUNTIME.metrics_server is not None:
        await RUNTIME.metrics_server.stop()
    if RUNTIME.reconciler is not None:
        await RUNTIME.reconciler.kube.close()
        if RUNTIME.reconciler.metrics is not None:
            await RUNTIME.reconciler.metrics.close()


async def _reconcile(key: Key) -> float | None:
    assert RUNTIME.reconciler is not None
    with telemetry.RECONCILE_SECONDS.time():
        return await RUNTIME.reconciler.reconcile(key)


def _on_error(key: Key, exc: Exception) -> None:
    RUNTIME.errors += 1
    telemetry.RECONCILE_ERRORS.inc()
    log.warning("reconciling %s/%s failed (will retry with backoff): %s", key[0], key[1], exc)


async def _resync() -> None:
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        for key in RUNTIME.cache.keys("ModelDeployment"):
            RUNTIME.queue.add(key)


def _track(kind: str, event: kopf.RawEvent) -> dict[str, Any]:
    body: dict[str, Any] = dict(event["object"])
    meta: dict[str, Any] = body["metadata"]
    if event.get("type") == "DELETED":
        RUNTIME.cache.remove(kind, meta.get("namespace", ""), meta["name"])
    else:
        RUNTIME.cache.put(kind, body)
    return body


@kopf.on.event("fulcrum.dev", "v1alpha1", "modeldeployments")
def modeldeployment_changed(event: kopf.RawEvent, **_: Any) -> None:
    body = _track("ModelDeployment", event)
    RUNTIME.queue.add((body["metadata"]["namespace"], body["metadata"]["name"]))


def _enqueue_owner(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    owner = meta.get("labels", {}).get(labels.MODEL_DEPLOYMENT)
    if owner:
        RUNTIME.queue.add((meta["namespace"], owner))


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
def deployment_changed(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue_owner(_track("Deployment", event))


@kopf.on.event("v1", "services", labels=MANAGED)
def service_changed(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue_owner(_track("Service", event))


@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=MANAGED)
def pdb_changed(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue_owner(_track("PodDisruptionBudget", event))


def _enqueue_builders(body: dict[str, Any]) -> None:
    key = body["metadata"].get("labels", {}).get(labels.BUILD_KEY)
    if key and RUNTIME.reconciler is not None:
        for md in list(RUNTIME.reconciler.waiting_on_build.get(key, ())):
            RUNTIME.queue.add(md)


@kopf.on.event("discovery.k8s.io", "v1", "endpointslices", labels=MANAGED)
def endpointslice_changed(event: kopf.RawEvent, **_: Any) -> None:
    body = _track("EndpointSlice", event)
    meta = body["metadata"]
    service = meta.get("labels", {}).get("kubernetes.io/service-name")
    if service and (meta.get("namespace", ""), service) in RUNTIME.cache.keys("ModelDeployment"):
        RUNTIME.queue.add((meta["namespace"], service))


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
def job_changed(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue_builders(_track("Job", event))


@kopf.on.event("v1", "configmaps", labels=MANAGED)
def configmap_changed(event: kopf.RawEvent, **_: Any) -> None:
    body = _track("ConfigMap", event)
    _enqueue_builders(body)  # a build's record
    _enqueue_owner(body)  # a ModelDeployment's routes


@kopf.on.probe(id="queue")
def queue_depth(**_: Any) -> int:
    return len(RUNTIME.queue)

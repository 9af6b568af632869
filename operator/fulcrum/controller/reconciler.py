"""Reconcile one ModelDeployment: read the cache, ask the pure planner, apply what changed, write status."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from fulcrum.api import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    format_validation_error,
    parse_model_deployment,
)
from fulcrum.controller import telemetry
from fulcrum.controller.cache import Key, ObjectCache
from fulcrum.controller.control import ControlLoop, parse_time
from fulcrum.controller.kube import KubeClient, KubeError
from fulcrum.controller.outcome import fold_tick
from fulcrum.controller.routing import Router
from fulcrum.loadgen.endpoints import ready_addresses
from fulcrum.metrics.sources import MetricsSource
from fulcrum.metrics.window import FleetMetrics
from fulcrum.reconcile.builds import BuildPhase, BuildResult, merge_tiers, result_from_termination_message
from fulcrum.reconcile.conditions import ordered, set_condition
from fulcrum.reconcile.layout import hot_sets
from fulcrum.reconcile.plan import Event, LiveServer, Plan, PoolBuild, plan, pool_builds, servable
from fulcrum.reconcile.pods import pod_problem
from fulcrum.reconcile.routing import fold_report, hot_switch_message
from fulcrum.resources import labels
from fulcrum.resources.build import RECORD_KEY, SERVING_IMAGE_ANNOTATION, build_job, build_record
from fulcrum.resources.build_key import REBUILD_ANNOTATION
from fulcrum.resources.routing import KEY_KEY, routing_configmap_name
from fulcrum.resources.settings import OperatorSettings
from fulcrum.resources.storage import storage_for

log = logging.getLogger("fulcrum.reconciler")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_subset(desired: Any, live: Any) -> bool:
    """Whether every field Fulcrum sets already has that value (then applying would change nothing)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(desired) == len(live) and all(map(is_subset, desired, live))
    return bool(desired == live)


def job_phase(job: dict[str, Any]) -> BuildPhase:
    for condition in job.get("status", {}).get("conditions", []) or []:
        if condition.get("status") == "True" and condition.get("type") == "Complete":
            return "Succeeded"
        if condition.get("status") == "True" and condition.get("type") == "Failed":
            return "Failed"
    return "Running"


def rebuild_token(body: dict[str, Any]) -> str:
    return str((body["metadata"].get("annotations") or {}).get(REBUILD_ANNOTATION, ""))


def termination_message(pods: list[dict[str, Any]]) -> str | None:
    """The build's result: the last container (publish) of the newest pod, else the message of the step that
    stopped it (an init container: fetch or build)."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True):
        status = pod.get("status", {})
        statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        messages = [((c.get("state") or {}).get("terminated") or {}).get("message") for c in statuses]
        found = [m for m in messages if m]
        if found:
            return str(found[-1])
    return None


def status_patch(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch turning ``old`` into ``new``: fields that disappeared are set to null."""
    patch: dict[str, Any] = {k: None for k in (old or {}) if k not in new}
    patch.update(new)
    return patch


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        cache: ObjectCache,
        settings: OperatorSettings,
        *,
        clock: Callable[[], str] = utc_now,
        control: ControlLoop | None = None,
        metrics: MetricsSource | None = None,
        router: Router | None = None,
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.control = control
        self.metrics = metrics
        self.router = router if router is not None else Router(kube)
        self.waiting_on_build: dict[str, set[Key]] = defaultdict(set)  # build key -> ModelDeployments

    # --- the loop body ---------------------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        body = self.cache.get("ModelDeployment", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            if self.control is not None:
                self.control.forget(key)
            self.router.forget(key)
            telemetry.forget(namespace, name)
            return None  # children go with their owner references
        try:
            md = parse_model_deployment({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body})
        except ValidationError as exc:
            await self._write_invalid(body, format_validation_error(exc))
            return None
        status = ModelDeploymentStatus.model_validate(body.get("status") or {})
        rebuild = rebuild_token(body)
        results, phases, problems = await self._build_states(md.spec, key, rebuild)
        builds = pool_builds(md.spec, self.settings, results, phases, namespace, rebuild=rebuild, problems=problems)
        servers = self._servers(namespace, name)
        tiers = merge_tiers([t.name for t in md.spec.tiers], {b.pool.name: b.result for b in builds if b.result})
        tick = None
        choice = None
        rollout = None
        decided_at: float | None = None
        if self.control is not None and servable(md.spec, tiers):
            if self.control.due(key):
                observed = await self._observe(key, md.spec, md.served_name, servers, status)
                tick = self.control.tick(
                    key,
                    spec=md.spec,
                    status=status,
                    tiers=tiers,
                    servers=servers,
                    observed=observed,
                    hot_tiers=hot_sets(md.spec, tiers),
                )
                decided_at = time.monotonic()
            choice = self.control.remembered_choice(key)
            rollout = self.control.rollout(key)
        result = plan(
            md=body,
            spec=md.spec,
            status=status,
            settings=self.settings,
            builds=builds,
            servers=servers,
            now=self.clock(),
            choice=choice,
            previous_build=self._previous_build(md.spec, status, builds),
            rollout=rollout,
            live_routes=(routes := self._live_routes(namespace, name)),
            routing_key=routes.get(KEY_KEY) or secrets.token_urlsafe(24),
            pod_problem=await self._pod_problem(namespace, name, servers),
        )
        if tick is not None and self.control is not None:
            result.status, events = fold_tick(
                spec=md.spec,
                status=result.status,
                previous=status,
                tick=tick,
                now=self.control.clock(),
                generation=md.generation,
            )
            result.events += events
        await self._apply(body, md.spec, result)
        await self._route(key, result, tick=tick is not None, decided_at=decided_at)
        routing_incomplete = self.router.retry_in(key) is not None
        await self._write_status(body, result.status.to_wire())
        for event in result.events:
            await self._post_event(body, event)
        telemetry.export_model(
            key,
            spec=md.spec,
            previous=status,
            status=result.status,
            servers=servers,
            builds=builds,
            observed=tick.observed if tick is not None else None,
            decision=tick.decision if tick is not None else None,
            ticked=tick is not None,
            created=body["metadata"].get("creationTimestamp"),
            now=parse_time(self.clock()) or 0.0,
        )
        if any(b.result is None for b in builds):
            return 30.0
        if routing_incomplete:
            return self.router.retry_in(key)
        return self.control.tick_seconds if self.control is not None and choice is not None else None

    async def _route(self, key: Key, result: Plan, *, tick: bool, decided_at: float | None) -> None:
        """Point the served name of every ready pod of the target Deployment at the planned tier (a hot switch
        is only this), and fold what the pods said into status."""
        intent = result.routing
        if intent is None or result.status.serving is None:
            return
        endpoints = frozenset(self._ready_endpoints(*key, "http"))
        try:
            outcome = await self.router.ensure(key, intent, endpoints, tick=tick, decided_at=decided_at)
        except KubeError as exc:
            log.warning("%s/%s: listing pods to route: %s", *key, exc)
            return
        if outcome is None:
            return
        report, seconds = outcome
        result.status.serving = fold_report(result.status.serving, report)
        if seconds is not None:
            result.events.append(Event("Normal", "HotSwitch", hot_switch_message(intent, report, seconds)))
            telemetry.record_hot_switch(key, intent.previous_tier or "", intent.tier, seconds)
        for pod, why in sorted(report.failed.items()):
            log.warning("%s/%s: routing pod %s: %s", *key, pod, why)
        if self.router.newly_failing(key, report):
            if intent.previous_tier:
                telemetry.record_hot_switch(key, intent.previous_tier, intent.tier, None, outcome="Failed")
            pods = ", ".join(sorted(report.failed))
            message = f"{intent.served_name} could not be routed to {intent.tier} on {pods}"
            result.events.append(Event("Warning", "RoutingFailed", message))

    async def _observe(
        self,
        key: Key,
        spec: ModelDeploymentSpec,
        served: str,
        servers: list[LiveServer],
        status: ModelDeploymentStatus,
    ) -> FleetMetrics | None:
        if self.metrics is None or not servers:
            return None
        targets = self._metrics_targets(*key)
        if not targets:
            return None
        # the served name counts each request once (its tier counts it again); a fleet from before served
        # names has none: every model then
        model = served if status.serving is not None and status.serving.model_name == served else None
        return await self.metrics.observe(key, targets, model, float(spec.slo.percentile))

    async def _pod_problem(self, namespace: str, name: str, servers: list[LiveServer]) -> str | None:
        """While a Triton Deployment waits for replicas, why (read from its pods' statuses)."""
        if all(s.ready_replicas >= s.replicas for s in servers):
            return None
        try:
            pods = await self.kube.list("Pod", namespace, f"{labels.MODEL_DEPLOYMENT}={name}")
        except KubeError as error:
            log.debug("cannot list the pods of %s/%s: %s", namespace, name, error)
            return None
        return pod_problem(pods)

    def _ready_endpoints(self, namespace: str, name: str, port: str) -> list[str]:
        slices = [
            s
            for s in self.cache.all("EndpointSlice")
            if s["metadata"].get("namespace") == namespace
            and s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == name
        ]
        return ready_addresses(slices, port)

    def _metrics_targets(self, namespace: str, name: str) -> list[str]:
        return [f"http://{address}/metrics" for address in self._ready_endpoints(namespace, name, "metrics")]

    def _live_routes(self, namespace: str, name: str) -> dict[str, str]:
        configmap = self.cache.get("ConfigMap", namespace, routing_configmap_name(name))
        return dict((configmap or {}).get("data") or {})

    # --- builds ------------------------------------------------------------------------------------------------

    async def _build_states(
        self, spec: ModelDeploymentSpec, md_key: Key, rebuild: str = ""
    ) -> tuple[dict[str, BuildResult], dict[str, BuildPhase], dict[str, str]]:
        results: dict[str, BuildResult] = {}
        phases: dict[str, BuildPhase] = {}
        problems: dict[str, str] = {}
        for build in pool_builds(spec, self.settings, {}, {}, md_key[0], rebuild=rebuild):
            self.waiting_on_build[build.key].add(md_key)
            record = self.cache.get("ConfigMap", self.settings.build_namespace, labels.build_record_name(build.key))
            if record is not None:
                results[build.key] = BuildResult.from_record(json.loads(record.get("data", {}).get(RECORD_KEY, "{}")))
                continue
            job = self.cache.get("Job", build.namespace, labels.build_job_name(build.key))
            if job is None:
                continue
            phase = job_phase(job)
            if phase == "Running":
                phases[build.key] = phase
                problem = await self._build_problem(job, build)
                if problem:
                    problems[build.key] = problem
            else:
                results[build.key] = await self._harvest(job, build, spec, phase == "Succeeded")
                telemetry.record_build(md_key, build.pool.name, results[build.key].phase, job)
        return results, phases, problems

    async def _build_problem(self, job: dict[str, Any], build: PoolBuild) -> str | None:
        """What keeps a running build's pod waiting (a missing Secret or claim), read from its pods' statuses."""
        try:
            pods = await self.kube.list("Pod", build.namespace, f"job-name={job['metadata']['name']}")
        except KubeError as error:
            log.debug("cannot list the pods of build %s: %s", build.key[:12], error)
            return None
        return pod_problem(pods, exits=False)

    async def _harvest(
        self, job: dict[str, Any], build: PoolBuild, spec: ModelDeploymentSpec, succeeded: bool
    ) -> BuildResult:
        """Read a finished build's termination message into a build record (once: the record is the cache)."""
        key = build.key
        pods = await self.kube.list("Pod", build.namespace, f"job-name={job['metadata']['name']}")
        result = result_from_termination_message(
            termination_message(pods), succeeded=succeeded, storage=storage_for(spec, self.settings)
        )
        image = (job["metadata"].get("annotations") or {}).get(SERVING_IMAGE_ANNOTATION)
        result = dataclasses.replace(result, serving_image=image)
        record = build_record(key, build.pool, result.to_record(), self.settings)
        await self.kube.create(record)
        self.cache.put("ConfigMap", record)
        log.info("build %s on %s: %s %s", key[:12], build.pool.name, result.phase, result.reason)
        return result

    def _previous_build(
        self, spec: ModelDeploymentSpec, status: ModelDeploymentStatus, builds: list[PoolBuild]
    ) -> PoolBuild | None:
        """The recorded build that served before the spec changed, if it is not one of the current builds."""
        key = status.build.key if status.build is not None else None
        if not key or any(b.key == key for b in builds):
            return None
        record = self.cache.get("ConfigMap", self.settings.build_namespace, labels.build_record_name(key))
        if record is None:
            return None
        pool_name = record["metadata"].get("labels", {}).get(labels.POOL)
        pool = next((p for p in spec.node_pools if p.name == pool_name), None)
        if pool is None:
            return None
        result = BuildResult.from_record(json.loads(record.get("data", {}).get(RECORD_KEY, "{}")))
        return PoolBuild(pool, key, result)

    def _servers(self, namespace: str, name: str) -> list[LiveServer]:
        servers = []
        for dep in self.cache.owned_by("Deployment", namespace, name):
            meta_labels = dep["metadata"].get("labels", {})
            if meta_labels.get(labels.COMPONENT) != labels.COMPONENT_SERVER:
                continue
            loaded = (dep["metadata"].get("annotations") or {}).get(labels.LOADED_TIERS, "")
            selector = (dep.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
            servers.append(
                LiveServer(
                    name=dep["metadata"]["name"],
                    tier=meta_labels.get(labels.TIER, ""),
                    pool=meta_labels.get(labels.POOL, ""),
                    replicas=int(dep.get("spec", {}).get("replicas", 0) or 0),
                    ready_replicas=int(dep.get("status", {}).get("readyReplicas", 0) or 0),
                    loaded=tuple(t for t in loaded.split(",") if t),
                    hot=selector.get(labels.ROUTING) == labels.ROUTING_HOT,
                )
            )
        return sorted(servers, key=lambda s: s.name)

    # --- writes ------------------------------------------------------------------------------------------------

    async def _apply(self, body: dict[str, Any], spec: ModelDeploymentSpec, result: Plan) -> None:
        name = body["metadata"]["name"]
        for build in result.start_builds:
            ns = build.namespace or self.settings.build_namespace
            job = build_job(
                build.key, build.pool, self.settings, spec,
                serving_image=build.serving_image, namespace=ns, md_name=name,
            )  # fmt: skip
            await self.kube.create(job)
        for manifest in result.apply:
            meta = manifest["metadata"]
            live = self.cache.get(manifest["kind"], meta["namespace"], meta["name"])
            stale = manifest["kind"] == "ConfigMap" and live is not None and live.get("data") != manifest["data"]
            if live is None or stale or not is_subset(manifest, live):
                applied = await self.kube.apply(manifest)
                self.cache.put(manifest["kind"], applied)
        for deployment, replicas in result.scale_deployments.items():
            await self.kube.scale("Deployment", body["metadata"]["namespace"], deployment, replicas)
        for deployment in result.delete_deployments:
            await self.kube.delete("Deployment", body["metadata"]["namespace"], deployment)
            self.cache.remove("Deployment", body["metadata"]["namespace"], deployment)

    async def _write_status(self, body: dict[str, Any], new: dict[str, Any]) -> None:
        old = body.get("status") or {}
        if old == new:
            return
        meta = body["metadata"]
        await self.kube.patch_status(meta["namespace"], meta["name"], status_patch(old, new))
        body["status"] = new  # the watch will bring the same; avoids a second write meanwhile

    async def _write_invalid(self, body: dict[str, Any], message: str) -> None:
        status = ModelDeploymentStatus.model_validate(body.get("status") or {})
        generation = int(body["metadata"].get("generation", 0))
        now = self.clock()
        stalled = [
            set_condition(
                status.conditions, t, status=s, reason="InvalidSpec", message=message, generation=generation, now=now
            )
            for t, s in (("Ready", False), ("Stalled", True), ("Reconciling", False))
        ]
        status.conditions = ordered(
            [*stalled, *(c for c in status.conditions if c.type not in ("Ready", "Stalled", "Reconciling"))]
        )
        status.observed_generation = generation
        await self._write_status(body, status.to_wire())

    async def _post_event(self, body: dict[str, Any], event: Event) -> None:
        meta = body["metadata"]
        now = self.clock()
        await self.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
                "involvedObject": {
                    "apiVersion": body["apiVersion"],
                    "kind": body["kind"],
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta.get("uid"),
                },
                "type": event.type,
                "reason": event.reason,
                "message": event.message[:1024],
                "source": {"component": "fulcrum"},
                "reportingComponent": "fulcrum.dev/operator",
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            }
        )

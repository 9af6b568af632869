"""Reconcile one ModelDeployment: read the cache, ask the pure planner, apply what changed, write status.

Only the leading replica reconciles. Its writes are still safe against anyone else's: status is patched with
the resourceVersion it was computed from (409 on a stale read: read again and redo), build records are created
once per Job (on 409 the stored record wins) and replaced only with their resourceVersion.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import InvalidOperation
from typing import Any

from kubernetes.utils.quantity import parse_quantity
from pydantic import ValidationError

from fulcrum.api import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    format_validation_error,
    parse_model_deployment,
)
from fulcrum.controller import telemetry
from fulcrum.controller.cache import Body, Key, ObjectCache
from fulcrum.controller.control import ControlLoop, parse_time
from fulcrum.controller.kube import KubeClient, KubeError
from fulcrum.controller.outcome import fold_tick
from fulcrum.controller.routing import Router
from fulcrum.controller.uploads import UploadSigner, reported_content_key
from fulcrum.metrics.sources import MetricsSource, Reading, Target
from fulcrum.reconcile.builds import (
    BuildPhase,
    BuildResult,
    job_failure,
    result_from_termination_message,
    with_retry,
)
from fulcrum.reconcile.conditions import ordered, set_condition
from fulcrum.reconcile.layout import hot_sets
from fulcrum.reconcile.plan import (
    Event,
    LiveServer,
    Plan,
    PoolBuild,
    plan,
    pool_builds,
    servable,
    serving_tiers_of,
)
from fulcrum.reconcile.pods import pod_problem
from fulcrum.reconcile.routing import fold_report, hot_switch_message
from fulcrum.resources import labels
from fulcrum.resources.build import (
    RECORD_KEY,
    SERVING_IMAGE_ANNOTATION,
    build_job,
    build_record,
    upload_form_secret,
    upload_form_secret_name,
)
from fulcrum.resources.build_key import REBUILD_ANNOTATION
from fulcrum.resources.endpoints import ready_addresses, ready_endpoints
from fulcrum.resources.routing import KEY_KEY, routing_configmap_name
from fulcrum.resources.settings import OperatorSettings
from fulcrum.resources.storage import signs_uploads, storage_for
from fulcrum.storage.form import content_key_of

log = logging.getLogger("fulcrum.reconciler")

HARVESTED = "fulcrum.dev/harvested"
"""Annotation on a finished build Job whose result is in its record: a Job with it and no record means someone
deleted the record to ask for a rebuild."""
QUANTITY_KEYS = frozenset({"requests", "limits"})
QUANTITY_FIELDS = frozenset({"sizeLimit"})
PENDING_BUILD_POLL_SECONDS = 30.0
CONFLICT_RETRY_SECONDS = 0.5


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _same_quantity(desired: Any, live: Any) -> bool:
    try:
        return bool(parse_quantity(desired) == parse_quantity(live))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, InvalidOperation):
        return False


def is_subset(desired: Any, live: Any, *, key: str = "", quantities: bool = False) -> bool:
    """Whether every field Fulcrum sets already has that value (then applying would change nothing).

    Resource quantities compare by value: the API server normalises them (``cpu: "0.5"`` comes back as ``500m``,
    ``nvidia.com/gpu: 1`` as ``"1"``), and a textual comparison would apply such a manifest on every reconcile.
    """
    if isinstance(desired, dict):
        inner = key in QUANTITY_KEYS  # the values of requests / limits are quantities
        return isinstance(live, dict) and all(
            k in live and is_subset(v, live[k], key=k, quantities=inner) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v, key=key) for d, v in zip(desired, live, strict=True))
        )
    if desired == live:
        return True
    return (quantities or key in QUANTITY_FIELDS) and _same_quantity(desired, live)


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
        found = [m for m in messages if m and content_key_of(m) is None]  # not the fetch step's request
        if found:
            return str(found[-1])
    return None


def status_patch(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch turning ``old`` into ``new``: fields that disappeared are set to null."""
    patch: dict[str, Any] = {k: None for k in (old or {}) if k not in new}
    patch.update(new)
    return patch


def meta_key(meta: dict[str, Any]) -> tuple[str, str]:
    return meta["namespace"], meta["name"]


def _record_of(body: Body | None) -> BuildResult | None:
    if body is None:
        return None
    return BuildResult.from_record(json.loads((body.get("data") or {}).get(RECORD_KEY, "{}")))


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        cache: ObjectCache,
        settings: OperatorSettings,
        *,
        clock: Callable[[], str] = utc_now,
        wall: Callable[[], float] = time.time,
        control: ControlLoop | None = None,
        metrics: MetricsSource | None = None,
        router: Router | None = None,
        signer: UploadSigner | None = None,
    ) -> None:
        self.kube = kube
        self.signer = signer
        self._forms_signed: set[str] = set()  # uids of build Jobs whose upload form exists
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.control = control
        self.metrics = metrics
        self.router = router if router is not None else Router(kube)
        self.waiting_on_build: dict[str, set[Key]] = defaultdict(set)  # build key -> ModelDeployments
        self._builds_of: dict[Key, set[str]] = {}  # ModelDeployment -> build keys it waits on

    # --- per-object memory ---------------------------------------------------------------------------------------

    def builders(self, build_key: str) -> set[Key]:
        """The ModelDeployments that wait on a build key (its Job and record are shared)."""
        return set(self.waiting_on_build.get(build_key, ()))

    def _wait_on(self, key: Key, build_keys: set[str]) -> None:
        for old in self._builds_of.get(key, set()) - build_keys:
            waiting = self.waiting_on_build.get(old)
            if waiting is not None:
                waiting.discard(key)
                if not waiting:
                    del self.waiting_on_build[old]
        for new in build_keys:
            self.waiting_on_build[new].add(key)
        if build_keys:
            self._builds_of[key] = set(build_keys)
        else:
            self._builds_of.pop(key, None)

    def forget(self, key: Key) -> None:
        """The ModelDeployment is gone: drop everything kept for it (policy memory, metrics window, series)."""
        if self.control is not None:
            self.control.forget(key)
        if self.metrics is not None:
            self.metrics.forget(key)
        self.router.forget(key)
        self._wait_on(key, set())
        telemetry.forget(*key)

    # --- the loop body -----------------------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        body = self.cache.get("ModelDeployment", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(key)
            return None  # children go with their owner references
        try:
            md = parse_model_deployment({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body})
        except ValidationError as exc:
            self._wait_on(key, set())
            return await self._write_invalid(body, format_validation_error(exc))
        status = ModelDeploymentStatus.model_validate(body.get("status") or {})
        builds, retry_in = await self._build_states(md.spec, key, rebuild_token(body))
        builds = [self._with_pod_problem(b) for b in builds]
        servers = self._servers(namespace, name)
        previous_build = self._previous_build(md.spec, status, builds)
        serving_tiers = serving_tiers_of(md.spec, builds, previous_build)  # what serves now, rebuilds included
        tick = choice = rollout = None
        decided_at: float | None = None
        ticked = False
        if self.control is not None and servable(md.spec, serving_tiers):
            if self.control.due(key):
                reading = await self._observe(key, md.spec, md.served_name, servers, status)
                tick = self.control.tick(
                    key,
                    spec=md.spec,
                    status=status,
                    tiers=serving_tiers,
                    servers=servers,
                    reading=reading,
                    hot_tiers=hot_sets(md.spec, serving_tiers),
                )
                decided_at = time.monotonic()
                ticked = True
            else:
                tick = self.control.unrecorded(key)
            choice = self.control.remembered_choice(key)
            rollout = self.control.rollout(key)
        routes = self._live_routes(namespace, name)
        result = plan(
            md=body,
            spec=md.spec,
            status=status,
            settings=self.settings,
            builds=builds,
            servers=servers,
            now=self.clock(),
            choice=choice,
            previous_build=previous_build,
            rollout=rollout,
            live_routes=routes,
            routing_key=routes.get(KEY_KEY) or secrets.token_urlsafe(24),
        )
        if tick is not None:
            result.status, events = fold_tick(
                spec=md.spec, status=result.status, previous=status, tick=tick, generation=md.generation
            )
            result.events += events
        await self._apply(body, md.spec, result)
        await self._route(key, result, tick=ticked, decided_at=decided_at)
        if not await self._write_status(body, result.status.to_wire()):
            return CONFLICT_RETRY_SECONDS  # stale: redo once the watch has brought the changed object
        if tick is not None and self.control is not None:
            self.control.recorded(key)
        await asyncio.gather(*(self._post_event(body, event) for event in result.events))
        telemetry.export_model(
            key,
            spec=md.spec,
            previous=status,
            status=result.status,
            servers=servers,
            builds=builds,
            observed=tick.reading.metrics if tick is not None and tick.reading is not None else None,
            decision=tick.decision if tick is not None else None,
            ticked=tick is not None,  # once per tick: when its status was written (a failed write replays it)
            created=body["metadata"].get("creationTimestamp"),
            now=parse_time(self.clock()) or 0.0,
        )
        routing = self.router.retry_in(key)
        retry_in = routing if retry_in is None or (routing is not None and routing < retry_in) else retry_in
        return self._next_look(key, builds, retry_in, choice is not None)

    def _next_look(self, key: Key, builds: list[PoolBuild], retry_in: float | None, serving: bool) -> float | None:
        """Seconds until this object needs a look without any event: its next tick, a build retry or poll."""
        waits = []
        if self.control is not None and serving:
            waits.append(max(self.control.until_due(key), 0.1 * self.control.tick_seconds))
        if retry_in is not None:
            waits.append(retry_in)
        if any(b.result is None and b.job_phase != "Retrying" for b in builds):
            waits.append(PENDING_BUILD_POLL_SECONDS)  # a safety net: the Job's watch events come first
        return min(waits) if waits else None

    async def _route(self, key: Key, result: Plan, *, tick: bool, decided_at: float | None) -> None:
        """Point the served name of every ready pod of the target Deployment at the planned tier (a hot switch
        is only this), and fold what the pods said into status."""
        intent = result.routing
        if intent is None or result.status.serving is None:
            return
        endpoints = frozenset(self._ready_addresses(*key, "http"))
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
    ) -> Reading | None:
        if self.metrics is None:
            return None
        if not any(s.ready_replicas for s in servers):
            return Reading(None, False, "NoReadyPods", "no Triton pod is ready yet", healthy=None)
        # the served name counts each request once (its tier counts it again); a fleet from before served
        # names has none: every model then
        model = served if status.serving is not None and status.serving.model_name == served else None
        return await self.metrics.observe(key, self._metrics_targets(*key), model, float(spec.slo.percentile))

    def _slices(self, namespace: str, name: str) -> list[Body]:
        return [
            s
            for s in self.cache.owned_by("EndpointSlice", namespace, name)
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name
        ]

    def _ready_addresses(self, namespace: str, name: str, port: str) -> list[str]:
        return ready_addresses(self._slices(namespace, name), port)

    def _metrics_targets(self, namespace: str, name: str) -> list[Target]:
        endpoints = ready_endpoints(self._slices(namespace, name), "metrics")
        return [Target(e.pod, f"http://{e.host_port}/metrics", e.pod_uid) for e in endpoints]

    def _live_routes(self, namespace: str, name: str) -> dict[str, str]:
        configmap = self.cache.get("ConfigMap", namespace, routing_configmap_name(name))
        return dict((configmap or {}).get("data") or {})

    # --- builds ------------------------------------------------------------------------------------------------

    async def _build_states(
        self, spec: ModelDeploymentSpec, md_key: Key, rebuild: str = ""
    ) -> tuple[list[PoolBuild], float | None]:
        """Each pool's build as the cluster says it is; harvests finished Jobs. Also: seconds until a retry.

        Records live in the build namespace; a Job runs there or, when the spec names a Secret or claim of its own
        namespace, beside the ModelDeployment (``PoolBuild.namespace``)."""
        ns = self.settings.build_namespace
        results: dict[str, BuildResult] = {}
        phases: dict[str, BuildPhase] = {}
        details: dict[str, str] = {}
        retry_in: float | None = None
        keys = pool_builds(spec, self.settings, {}, {}, md_key[0], rebuild=rebuild)
        self._wait_on(md_key, {b.key for b in keys})
        for build in keys:
            job_ns = build.namespace or ns
            record_body = self.cache.get("ConfigMap", ns, labels.build_record_name(build.key))
            record = _record_of(record_body)
            job = self.cache.get("Job", job_ns, labels.build_job_name(build.key))
            if job is not None and job["metadata"].get("deletionTimestamp"):
                phases[build.key] = "Running"  # a Job on its way out (a retry or a rebuild): wait for it to go
                continue
            if job is not None:
                phase = job_phase(job)
                if phase == "Running":
                    phases[build.key] = "Running"
                    await self._sign_upload_form(job)
                    continue
                uid = job["metadata"].get("uid")
                if record is None and HARVESTED in (job["metadata"].get("annotations") or {}):
                    # the record was deleted: a request to build again. The Job must go first (same name).
                    log.info("build %s: record deleted, rebuilding", build.key[:12])
                    await self.kube.delete("Job", job_ns, job["metadata"]["name"], uid=uid)
                    phases[build.key] = "Running"
                    continue
                if record is None or record.job_uid != uid:
                    record = await self._harvest(job, build, spec, phase == "Succeeded", record_body)
                    if record is None:
                        phases[build.key] = "Running"
                        retry_in = CONFLICT_RETRY_SECONDS
                        continue
                    telemetry.record_build(md_key, build.pool.name, record.phase, job)
            if record is None:
                continue  # nothing yet: the planner starts the build
            if record.final:
                results[build.key] = record
                continue
            due = (parse_time(record.retry_at) or 0.0) - self.wall()
            if job is not None:
                await self.kube.delete("Job", job_ns, job["metadata"]["name"], uid=job["metadata"].get("uid"))
                phases[build.key] = "Retrying"
                details[build.key] = f"{record.message} (attempt {record.attempts}); retrying"
            elif due > 0:
                phases[build.key] = "Retrying"
                details[build.key] = f"{record.message} (attempt {record.attempts}); retrying at {record.retry_at}"
                retry_in = due if retry_in is None else min(retry_in, due)
            # else: due and the Job is gone: no phase, so the planner starts the next attempt
        return pool_builds(spec, self.settings, results, phases, md_key[0], details=details, rebuild=rebuild), retry_in

    def _with_pod_problem(self, build: PoolBuild) -> PoolBuild:
        """A running build whose pod cannot go on (an image that cannot be pulled, a missing Secret or claim) says
        so, instead of a silent wait. Failed pods are the Job's to retry: their result says why."""
        if build.result is not None or build.job_phase != "Running":
            return build
        namespace = build.namespace or self.settings.build_namespace
        pods = [
            p
            for p in self.cache.all("Pod")
            if p["metadata"].get("namespace") == namespace
            and p["metadata"].get("labels", {}).get(labels.BUILD_KEY) == build.key
        ]
        problem = pod_problem(pods, exits=False)
        return replace(build, problem=problem) if problem is not None else build

    async def _sign_upload_form(self, job: Body) -> None:
        """Give a running build Job that publishes through an upload form its form, once its fetch step has
        reported the content key. The Secret is created once (a 409 means it is there) and goes with the Job."""
        meta = job["metadata"]
        uid = meta.get("uid")
        if self.signer is None or not uid or uid in self._forms_signed or upload_form_secret_name(job) is None:
            return
        pods = [
            p
            for p in self.cache.all("Pod")
            if p["metadata"].get("namespace") == meta["namespace"]
            and (p["metadata"].get("labels") or {}).get("job-name") == meta["name"]
        ]
        key = reported_content_key(pods)
        if key is None:
            return
        build_key = (meta.get("labels") or {}).get(labels.BUILD_KEY, "")
        form = self.signer.sign(key)
        try:
            await self.kube.create(upload_form_secret(build_key, job, form))
        except KubeError as exc:  # the build waits for its form (and fails as transient after a while): say why
            log.warning("build %s: cannot create its upload form: %s", build_key[:12], exc)
            return
        self._forms_signed.add(uid)
        log.info("build %s: signed an upload form for %s until %s", build_key[:12], form.prefix, form.expires)

    async def _harvest(
        self, job: Body, build: PoolBuild, spec: ModelDeploymentSpec, succeeded: bool, stored: Body | None
    ) -> BuildResult | None:
        """Read a finished build into its record (once per Job: the record is the cache of the result).

        The result is the publish step's termination message, or the message of the step that stopped the build;
        whether a failure is retried comes from the Job (``job_failure``): exit 2 (the spec, a source or the
        model is unusable) is final, anything else (the store unreachable, the pod evicted or killed) is retried
        with backoff. None when another writer recorded it first: the stored record wins, read from the cache
        next time."""
        key, pool = build.key, build.pool
        meta = job["metadata"]
        job_ns = build.namespace or self.settings.build_namespace
        pods = await self.kube.list("Pod", job_ns, f"job-name={meta['name']}")
        pods.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""))
        message = termination_message(pods)
        storage = storage_for(spec, self.settings)
        transient = False
        if succeeded:
            result = result_from_termination_message(message, succeeded=True, storage=storage)
        else:
            transient, reason, detail = job_failure(job, pods)
            if message:  # the step that stopped the build said why (a source, the store, the model)
                result = result_from_termination_message(message, succeeded=False, storage=storage)
            else:  # the pod went without a word: the infrastructure's doing, or a crash
                result = BuildResult("Failed", reason, detail)
        image = (meta.get("annotations") or {}).get(SERVING_IMAGE_ANNOTATION)
        result = replace(
            with_retry(result, transient, _record_of(stored), self.wall()), job_uid=meta.get("uid"), serving_image=image
        )
        record = build_record(key, pool, result.to_record(), self.settings)
        if await self._write_record(record, stored) is None:
            log.info("build %s: its record was written meanwhile; reading that one", key[:12])
            return None
        if result.final:
            await self.kube.annotate("Job", job_ns, meta["name"], {HARVESTED: "true"})
        retry = "" if result.final else f" (attempt {result.attempts}; the next at {result.retry_at})"
        log.info("build %s on %s: %s %s%s", key[:12], pool.name, result.phase, result.reason, retry)
        return result

    async def _write_record(self, record: Body, stored: Body | None) -> Body | None:
        """Create the record (after deleting the one of an earlier attempt). None when another writer was first:
        the stored record wins, and the watch brings it to the cache (ours is never cached in its place)."""
        ns, name = record["metadata"]["namespace"], record["metadata"]["name"]
        if stored is not None:
            await self.kube.delete("ConfigMap", ns, name, uid=stored["metadata"].get("uid"))
            self.cache.remove("ConfigMap", ns, name)
        written = await self.kube.create(record)
        if written is not None:
            self.cache.record("ConfigMap", written)
        return written

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
        result = _record_of(record)
        return None if result is None or not result.final else PoolBuild(pool, key, result)

    def _servers(self, namespace: str, name: str) -> list[LiveServer]:
        servers = []
        for dep in self.cache.owned_by("Deployment", namespace, name):
            meta_labels = dep["metadata"].get("labels", {})
            if meta_labels.get(labels.COMPONENT) != labels.COMPONENT_SERVER:
                continue
            loaded = (dep["metadata"].get("annotations") or {}).get(labels.LOADED_TIERS, "")
            selector = (dep.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
            pods = [
                p
                for p in self.cache.owned_by("Pod", namespace, name)
                if selector and selector.items() <= p["metadata"].get("labels", {}).items()
            ]
            servers.append(
                LiveServer(
                    name=dep["metadata"]["name"],
                    tier=meta_labels.get(labels.TIER, ""),
                    pool=meta_labels.get(labels.POOL, ""),
                    replicas=int(dep.get("spec", {}).get("replicas", 0) or 0),
                    ready_replicas=int(dep.get("status", {}).get("readyReplicas", 0) or 0),
                    loaded=tuple(t for t in loaded.split(",") if t),
                    hot=selector.get(labels.ROUTING) == labels.ROUTING_HOT,
                    problem=pod_problem(pods),
                )
            )
        return sorted(servers, key=lambda s: s.name)

    # --- writes ------------------------------------------------------------------------------------------------

    async def _apply(self, body: Body, spec: ModelDeploymentSpec, result: Plan) -> None:
        name = body["metadata"]["name"]
        for build in result.start_builds:
            job = build_job(
                build.key, build.pool, self.settings, spec,
                serving_image=build.serving_image, namespace=build.namespace or self.settings.build_namespace,
                md_name=name,
                upload_form=labels.upload_form_name(build.key, secrets.token_hex(3))
                if self.signer is not None
                and signs_uploads(spec, self.settings)
                else None,
            )  # fmt: skip
            created = await self.kube.create(job)
            if created is not None:
                self.cache.record("Job", created)
        changed = []
        for manifest in result.apply:
            meta = manifest["metadata"]
            live = self.cache.get(manifest["kind"], meta["namespace"], meta["name"])
            if live is None or not is_subset(manifest, live):
                changed.append(manifest)
        # the Deployment, Service and PDB are independent: one round trip for all that changed
        for manifest, applied in zip(changed, await asyncio.gather(*map(self.kube.apply, changed)), strict=True):
            self.cache.record(manifest["kind"], applied)
        for deployment, replicas in result.scale_deployments.items():
            await self.kube.scale("Deployment", body["metadata"]["namespace"], deployment, replicas)
        for deployment in result.delete_deployments:
            await self.kube.delete("Deployment", body["metadata"]["namespace"], deployment)
            self.cache.remove("Deployment", body["metadata"]["namespace"], deployment)

    async def _write_status(self, body: Body, new: dict[str, Any]) -> bool:
        """Patch status if it changed, conditional on the resourceVersion it was computed from.

        False when that version is stale (someone changed the object since): nothing else of this reconcile
        (events) happens, and the caller reconciles again once the watch has brought the changed object.
        """
        old = body.get("status") or {}
        if old == new:
            return True
        meta = body["metadata"]
        try:
            written = await self.kube.patch_status(
                meta["namespace"], meta["name"], status_patch(old, new), meta.get("resourceVersion")
            )
        except KubeError as exc:
            if exc.status == 404:
                return True  # deleted meanwhile: its DELETED event follows
            if not exc.conflict:
                raise
            log.info("%s/%s changed while reconciling (409); again from the fresh object", *meta_key(meta))
            return False
        if written:
            self.cache.record("ModelDeployment", written)
        return True

    async def _write_invalid(self, body: Body, message: str) -> float | None:
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
        return None if await self._write_status(body, status.to_wire()) else CONFLICT_RETRY_SECONDS

    async def _post_event(self, body: Body, event: Event) -> None:
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

"""Point each pod's served model name at the planned tier, through Triton's model-control API.

Asking a pod where its served name routes is ``GET /v2/models/<served>/config`` (the routing model's one step);
re-routing it is ``POST /v2/repository/models/<served>/load`` with the whole new config as JSON. Triton loads the
new routing model beside the old one and swaps them while requests keep flowing; the tiers stay loaded. A config
given this way lives in the server's memory only: a pod that restarts reads its Deployment's route from the
routing ConfigMap (``fulcrum.resources.routing``), which the planner has already updated.

Pods are checked when the plan's route changes, when the Service's ready endpoints change (a pod started or
restarted) and at every control tick; a hot switch is timed from the decision until every ready pod is routed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fulcrum.controller.kube import KubeClient
from fulcrum.reconcile.routing import PodRoute, RoutingIntent, RoutingReport, to_route
from fulcrum.resources.routing import KEY_HEADER, routed_model
from fulcrum.resources.serving import HTTP_PORT

log = logging.getLogger("fulcrum.routing")

ASK_TIMEOUT_SECONDS = 5.0
LOAD_TIMEOUT_SECONDS = 120.0  # a routing model loads in milliseconds; a tier Triton finds modified reloads with it
SWITCH_RETRY_SECONDS = 1.0
SWITCH_PATIENCE_SECONDS = 60.0

Key = tuple[str, str]


class RoutingError(Exception):
    """A pod did not answer, or refused the route."""


@dataclass
class TritonRouting:
    """The two model-control calls, against one Triton HTTP endpoint (``http://ip:port``)."""

    _session: aiohttp.ClientSession | None = None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def routed(self, endpoint: str, served_name: str) -> str | None:
        """The model the served name routes to on that server; None when it has no routing model loaded."""
        session = await self._http()
        try:
            async with session.get(
                f"{endpoint}/v2/models/{served_name}/config", timeout=aiohttp.ClientTimeout(total=ASK_TIMEOUT_SECONDS)
            ) as response:
                if response.status != 200:
                    return None
                return routed_model(await response.json())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RoutingError(f"{endpoint}: {type(exc).__name__}: {exc}") from exc

    async def route(self, endpoint: str, served_name: str, config: Mapping[str, Any], key: str) -> None:
        """Load the routing model with ``config``: from its answer on, the served name routes there.

        ``key``: the routing key the pod's model-repository API takes (a header; never logged).
        """
        session = await self._http()
        body = {"parameters": {"config": json.dumps(config, separators=(",", ":"))}}
        try:
            async with session.post(
                f"{endpoint}/v2/repository/models/{served_name}/load",
                json=body,
                headers={KEY_HEADER: key},
                timeout=aiohttp.ClientTimeout(total=LOAD_TIMEOUT_SECONDS),
            ) as response:
                if response.status != 200:
                    text = await response.text()
                    raise RoutingError(f"{endpoint}: load {served_name}: HTTP {response.status}: {text[:300]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RoutingError(f"{endpoint}: load {served_name}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def pod_routes(pods: list[dict[str, Any]]) -> list[PodRoute]:
    """The pods as routing sees them: ready, not terminating, with an address."""
    out = []
    for pod in pods:
        meta, status = pod.get("metadata", {}), pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        serving = ready and not meta.get("deletionTimestamp")
        out.append(PodRoute(meta.get("name", ""), status.get("podIP") or "", serving))
    return sorted(out, key=lambda p: p.name)


@dataclass
class Switch:
    """A hot switch not yet confirmed on every ready pod."""

    intent: RoutingIntent
    decided_at: float  # monotonic


@dataclass
class Router:
    """Checks and re-routes the ready pods of the Deployment each plan serves from; times hot switches."""

    kube: KubeClient
    triton: TritonRouting = field(default_factory=TritonRouting)
    clock: Callable[[], float] = time.monotonic
    port: int = HTTP_PORT  # Triton's HTTP port on each pod
    pending: dict[Key, Switch] = field(default_factory=dict)
    verified: dict[Key, tuple[str, str, frozenset[str]]] = field(default_factory=dict)
    failing: dict[Key, frozenset[str]] = field(default_factory=dict)  # pods whose last call failed

    def forget(self, key: Key) -> None:
        self.pending.pop(key, None)
        self.verified.pop(key, None)
        self.failing.pop(key, None)

    def newly_failing(self, key: Key, report: RoutingReport) -> bool:
        """Whether the set of pods that failed changed to a non-empty one (worth one Warning, not one a retry)."""
        failed = frozenset(report.failed)
        changed = failed != self.failing.get(key, frozenset())
        self.failing[key] = failed
        return changed and bool(failed)

    def due(self, key: Key, intent: RoutingIntent, endpoints: frozenset[str], *, tick: bool) -> bool:
        """Whether the pods need asking: the route changed, the ready endpoints changed, a switch runs, a tick."""
        if not intent.routable:
            return False
        return tick or key in self.pending or self.verified.get(key) != (intent.deployment, intent.model, endpoints)

    async def ensure(
        self,
        key: Key,
        intent: RoutingIntent,
        endpoints: frozenset[str],
        *,
        tick: bool = False,
        decided_at: float | None = None,
    ) -> tuple[RoutingReport, float | None] | None:
        """Route every ready pod of the intent's Deployment; None when nothing needed asking.

        Returns the report and, when this call completed a hot switch, its seconds from ``decided_at`` (the
        decision) to the last pod routed.
        """
        if intent.hot_switch:
            switch = self.pending.get(key)
            if switch is None or (switch.intent.deployment, switch.intent.tier) != (intent.deployment, intent.tier):
                self.pending[key] = Switch(intent, decided_at if decided_at is not None else self.clock())
        elif key in self.pending and (self.pending[key].intent.deployment, self.pending[key].intent.tier) != (
            intent.deployment,
            intent.tier,
        ):
            self.pending.pop(key)  # the plan moved on (a cold switch, another tier): that switch is over
        if not self.due(key, intent, endpoints, tick=tick):
            return None
        selector = ",".join(f"{k}={v}" for k, v in sorted(intent.selector.items()))
        pods = pod_routes(await self.kube.list("Pod", key[0], selector))
        report = await self.route_pods(intent, pods)
        # asked: the next ask is at the next tick, or when the endpoints or the route change (a switch retries)
        self.verified[key] = (intent.deployment, intent.model, endpoints)
        seconds = None
        switch = self.pending.get(key)
        if switch is not None and report.complete and report.ready > 0:
            seconds = self.clock() - switch.decided_at
            del self.pending[key]
        return report, seconds

    def retry_in(self, key: Key) -> float | None:
        """Seconds until the next try of a hot switch some ready pod has not taken yet; None: no such switch.

        A switch retries quickly for :data:`SWITCH_PATIENCE_SECONDS` after its decision, then at control ticks.
        """
        switch = self.pending.get(key)
        if switch is None or self.clock() - switch.decided_at > SWITCH_PATIENCE_SECONDS:
            return None
        return SWITCH_RETRY_SECONDS

    async def route_pods(self, intent: RoutingIntent, pods: list[PodRoute]) -> RoutingReport:
        """Ask each ready pod where its served name routes; re-route the ones that differ."""
        ready = [p for p in pods if p.ready and p.address]
        report = RoutingReport(ready=len(ready))

        async def ask(pod: PodRoute) -> PodRoute:
            try:
                routed = await self.triton.routed(_endpoint(pod, self.port), intent.served_name)
            except RoutingError as exc:
                report.failed[pod.name] = str(exc)
                routed = None
            return PodRoute(pod.name, pod.address, pod.ready, routed)

        asked = list(await asyncio.gather(*(ask(p) for p in ready)))
        report.routed = sum(1 for p in asked if p.routed == intent.model)

        async def route(pod: PodRoute) -> None:
            assert intent.config is not None
            try:
                await self.triton.route(_endpoint(pod, self.port), intent.served_name, intent.config, intent.key)
            except RoutingError as exc:
                report.failed[pod.name] = str(exc)
                return
            report.failed.pop(pod.name, None)
            report.rerouted.append(pod.name)
            report.routed += 1

        await asyncio.gather(*(route(p) for p in to_route(intent, asked)))
        if report.rerouted:
            log.info(
                "%s: routed %s to %s on %s", intent.deployment, intent.served_name, intent.tier, sorted(report.rerouted)
            )
        return report

    async def close(self) -> None:
        await self.triton.close()


def _endpoint(pod: PodRoute, port: int) -> str:
    host = f"[{pod.address}]" if ":" in pod.address else pod.address
    return f"http://{host}:{port}"

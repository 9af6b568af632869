"""Where each pod's served name should route, and what status says about it. Pure: no I/O, no clock.

The planner states a :class:`RoutingIntent` for the Deployment that serves the choice; the controller
(``fulcrum.controller.routing``) asks each ready pod of it where the served name routes and re-routes the ones
that differ (:func:`to_route`): that is the whole of a hot switch. Status counts the pods confirmed routed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fulcrum.api import ColdTier, ServingStatus
from fulcrum.reconcile.layout import Placement, cold_tiers
from fulcrum.resources.serving import pod_selector


@dataclass(frozen=True)
class RoutingIntent:
    """The served name of every ready pod of ``deployment`` must route to ``model`` (tier ``tier``)."""

    deployment: str
    tier: str
    pool: str
    served_name: str  # "" when the build lacks what a routing model needs: the tier answers under its own name
    model: str
    config: Mapping[str, Any] | None  # the routing model's config, as the model-control API takes it
    selector: Mapping[str, str]  # the Deployment's pod selector
    hot_tiers: tuple[str, ...] = ()
    cold: tuple[ColdTier, ...] = ()
    previous_tier: str | None = None  # the tier this Deployment routed to before, when that differs: a hot switch
    replicas: int = 0
    key: str = field(default="", repr=False)  # the routing key the pods' model-repository API takes

    @classmethod
    def of(cls, md_name: str, serving: Placement, live_tier: str | None) -> RoutingIntent:
        """The intent of serving a placement; ``live_tier``: where its Deployment routes now, if it exists."""
        target = serving.target
        return cls(
            deployment=target.deployment_name(md_name),
            tier=target.tier,
            pool=target.pool.name,
            served_name=target.served_name,
            model=target.model_name,
            config=serving.config,
            selector=pod_selector(md_name, target),
            hot_tiers=tuple(t for t, _ in target.models),
            cold=tuple(cold_tiers(serving.layout)),
            previous_tier=live_tier if live_tier is not None and live_tier != target.tier else None,
            replicas=target.replicas,
            key=serving.key,
        )

    @property
    def routable(self) -> bool:
        """Whether the pods have a routing model to point (False: a build from before served names)."""
        return bool(self.served_name) and self.config is not None

    @property
    def hot_switch(self) -> bool:
        """Whether this plan moves a running Deployment's served name to another of its loaded tiers."""
        return self.previous_tier is not None


@dataclass(frozen=True)
class PodRoute:
    """One pod of the target Deployment as the controller found it."""

    name: str
    address: str  # pod IP ("" before it has one)
    ready: bool
    routed: str | None = None  # the model its served name routes to; None: not asked, or it did not answer


def to_route(intent: RoutingIntent, pods: list[PodRoute]) -> list[PodRoute]:
    """Ready pods whose served name routes elsewhere (or did not say where): each gets one model-control call."""
    if not intent.routable:
        return []
    return [p for p in pods if p.ready and p.address and p.routed != intent.model]


@dataclass
class RoutingReport:
    """The outcome of checking and re-routing a Deployment's ready pods."""

    ready: int = 0
    routed: int = 0  # ready pods confirmed to route to the intent's model
    rerouted: list[str] = field(default_factory=list)  # pods this pass re-routed
    failed: dict[str, str] = field(default_factory=dict)  # pod -> why its call failed

    @property
    def complete(self) -> bool:
        return self.ready == self.routed and not self.failed


def serving_status(
    served_name: str, intent: RoutingIntent | None, previous: ServingStatus | None, ready: int
) -> ServingStatus | None:
    """``status.serving`` as the plan knows it; routed pods carried over while nothing about them changed."""
    if intent is None:
        return None
    routed: int | None = None
    if (
        previous is not None
        and previous.routed_tier == intent.tier
        and previous.pods == ready
        and previous.hot_tiers == list(intent.hot_tiers)
    ):
        routed = previous.routed_pods
    return ServingStatus(
        model_name=served_name if intent.routable else intent.tier,
        routed_tier=intent.tier,
        hot_tiers=list(intent.hot_tiers),
        cold_tiers=list(intent.cold),
        pods=ready,
        routed_pods=routed,
    )


def fold_report(status: ServingStatus, report: RoutingReport) -> ServingStatus:
    """``status.serving`` with what the pods said."""
    return status.model_copy(update={"pods": report.ready, "routed_pods": report.routed})


def hot_switch_message(intent: RoutingIntent, report: RoutingReport, seconds: float | None) -> str:
    """The HotSwitch event: which tiers, where, how many pods, how long from the decision."""
    took = "" if seconds is None else f" in {seconds:.2f} s from the decision"
    return (
        f"{intent.served_name} routes to {intent.tier} (was {intent.previous_tier}) on pool {intent.pool}: "
        f"{report.routed} of {report.ready} ready pods of {intent.deployment} routed{took}, no pod started"
    )

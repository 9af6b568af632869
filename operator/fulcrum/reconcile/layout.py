"""Which Deployment serves a choice, what its replicas load, and what the served name routes to. Pure.

A pool's Ready tiers that fit together (:func:`fulcrum.policy.hot.hot_tiers`) are loaded in every replica of
the pool's hot Deployment ``<md>-<pool>``; a choice of one of them is served there, routed to that tier, so a
switch among them changes the route and nothing else. A tier left out is served alone by ``<md>-<tier>-<pool>``
(a cold placement: a switch to or from it starts pods). Both keep the served name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fulcrum.api import ColdTier, ManifestTensor, ModelDeploymentSpec, NodePool
from fulcrum.policy.hot import HotLayout, hot_layout
from fulcrum.reconcile.builds import MergedTier
from fulcrum.resources.routing import Route, ServedIO, ensemble_config, ensemble_pbtxt, key_digest
from fulcrum.resources.serving import ServingTarget


def tier_bytes(tiers: list[MergedTier], pool: str) -> dict[str, int | None]:
    """Each Ready tier built for ``pool``: its size there (None when the build did not record it)."""
    return {t.name: t.sizes.get(pool) for t in tiers if t.state == "Ready" and pool in t.paths}


def pool_layouts(spec: ModelDeploymentSpec, tiers: list[MergedTier]) -> dict[str, HotLayout]:
    """The hot layout of every pool of the spec (what each of its replicas loads together)."""
    return {pool.name: hot_layout(spec, pool, tier_bytes(tiers, pool.name)) for pool in spec.node_pools}


def hot_sets(spec: ModelDeploymentSpec, tiers: list[MergedTier]) -> dict[str, frozenset[str]]:
    """Pool name -> the tiers each of its replicas loads, where that is two or more (the policy's ``hot_tiers``).

    A pool whose build lacks what a routing model needs (see :func:`placement`) has none: nothing switches there.
    """
    by_name = {t.name: t for t in tiers}
    out = {}
    for pool, layout in pool_layouts(spec, tiers).items():
        if layout.hot and served_io(spec, by_name[layout.tiers[0]], pool) is not None:
            out[pool] = frozenset(layout.tiers)
    return out


def cold_tiers(layout: HotLayout) -> list[ColdTier]:
    return [ColdTier(name=x.tier, reason=x.reason, message=x.message) for x in layout.left_out]


def served_io(spec: ModelDeploymentSpec, tier: MergedTier, pool: str) -> ServedIO | None:
    """The served IO of a tier's build on ``pool``: its manifest's, else the spec's (torch formats give both)."""
    if pool in tier.io:
        return tier.io[pool]
    model = spec.model
    if model.inputs and model.outputs:
        return ServedIO(
            tuple(ManifestTensor(name=t.name, data_type=t.data_type, dims=list(t.dims)) for t in model.inputs),
            tuple(ManifestTensor(name=t.name, data_type=t.data_type, dims=list(t.dims)) for t in model.outputs),
            model.max_batch_size,
        )
    return None


@dataclass(frozen=True)
class Placement:
    """How a choice is served: the Deployment's target and the served name's route (None: no routing model)."""

    target: ServingTarget
    route: Route | None
    layout: HotLayout
    key: str = ""  # the routing key the pods' model-repository API takes

    @property
    def pbtxt(self) -> str | None:
        return None if self.route is None else ensemble_pbtxt(self.route)

    @property
    def config(self) -> dict[str, object] | None:
        return None if self.route is None else ensemble_config(self.route)


def placement(
    spec: ModelDeploymentSpec,
    *,
    pool: NodePool,
    tier: str,
    replicas: int,
    tiers: list[MergedTier],
    served_name: str,
    routing_key: str = "",
) -> Placement:
    """Serve ``tier`` on ``pool``: in the pool's hot Deployment when the tier is one of its hot tiers, else alone.

    Without a known IO (a build recorded before served names, an onnx model without spec IO) the tier is served
    alone under its own name only, as before served names existed.
    """
    by_name = {t.name: t for t in tiers}
    merged = by_name[tier]
    repository, model_dir = merged.paths[pool.name]
    layout = hot_layout(spec, pool, tier_bytes(tiers, pool.name))
    io = served_io(spec, merged, pool.name)
    hot = io is not None and tier in layout.tiers and layout.hot  # without a routing model nothing can switch
    loaded = tuple((name, by_name[name].paths[pool.name][1]) for name in layout.tiers) if hot else ()
    if hot and any(by_name[name].paths[pool.name][0] != repository for name in layout.tiers):
        hot, loaded = False, ()  # tiers from different builds (one rebuilding) never share a replica
    route = None if io is None else Route(served_name, model_dir, io)
    target = ServingTarget(
        tier=tier,
        pool=pool,
        repository=repository,
        model_name=model_dir,
        replicas=replicas,
        served_name=served_name if route is not None else "",
        loaded=loaded,
        hot=hot,
        key_digest=key_digest(routing_key) if route is not None else "",
    )
    return Placement(target, route, layout, routing_key)


def routes(target_name: str, pbtxt: str | None, live: Mapping[str, str], keep: list[str]) -> dict[str, str]:
    """The routing ConfigMap's routes: the target's new one, and the current one of every Deployment kept."""
    out = {name: live[name] for name in keep if name in live and name != target_name}
    if pbtxt is not None:
        out[target_name] = pbtxt
    return out

"""Candidate placements and how many replicas of each a demand needs, what that costs, what fits the budget."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fulcrum.api import ModelDeploymentSpec
from fulcrum.policy.capacity import Curve, ProfileTable
from fulcrum.policy.types import Placement, PolicyState, ReplicaGroup

EPSILON = 1e-9


@dataclass(frozen=True)
class Candidate:
    """A Ready tier on a pool with a usable profile."""

    placement: Placement
    rank: int
    """Position of the tier in ``spec.tiers`` (0 = most accurate)."""
    capacity: float
    """Requests per second one replica serves within the SLO (margin and correction applied)."""
    unit_cost: float
    """Cost of one replica per hour."""
    startup: float
    """Seconds until a new replica serves."""


@dataclass(frozen=True)
class Option:
    """A candidate sized for a demand."""

    candidate: Candidate
    replicas: int
    meets: bool
    """Whether ``replicas`` serve the demand within the SLO."""
    least: int | None = None
    """The fewest replicas that still hold the demand (some of it on a hot tier); None: ``replicas``."""

    @property
    def fewest(self) -> int:
        return self.replicas if self.least is None else self.least

    @property
    def placement(self) -> Placement:
        return self.candidate.placement

    @property
    def cost(self) -> float:
        return self.replicas * self.candidate.unit_cost

    @property
    def capacity(self) -> float:
        return self.replicas * self.candidate.capacity


def served_latency(spec: ModelDeploymentSpec, curve: Curve | None, latency_ms: float) -> float:
    """The latency target capacity is taken at, ``latency_ms`` (the SLO, less the margin) or tighter.

    With a queue timeout ``T`` (``serving.dynamicBatching.queueTimeoutMicroseconds``) Triton rejects a request
    that waited longer than ``T``, so a request is served only if its latency is at most ``T`` plus its service
    time (the profile's unloaded median): capacity is taken at the lower of the two, scaled by the same margin.
    """
    timeout_us = spec.serving.dynamic_batching.queue_timeout_microseconds
    if timeout_us is None or curve is None:
        return latency_ms
    served = timeout_us / 1000.0 + curve.latency_at(curve.rates[0], 50.0)
    return min(latency_ms, served * latency_ms / float(spec.slo.latency_ms))


Demand = Callable[[Candidate], float]
"""Demand (rps) a candidate must be sized for; it may depend on the candidate's startup time."""


class Planner:
    """Sizes candidates against the spec's replica bounds and budget."""

    def __init__(
        self, spec: ModelDeploymentSpec, table: ProfileTable, state: PolicyState, latency_ms: float, percentile: float
    ) -> None:
        self.spec = spec
        self.min_replicas = spec.scaling.min_replicas
        self.max_replicas = spec.scaling.max_replicas
        ceiling = spec.budget.max_cost_per_hour
        self.budget: float | None = None if ceiling is None else float(ceiling)
        self._pool_cost = {p.name: float(p.cost_per_hour) for p in spec.node_pools}
        key = (
            latency_ms,
            percentile,
            tuple(t.name for t in spec.tiers),
            tuple((p.name, p.cost_per_hour, p.replica_startup_seconds) for p in spec.node_pools),
            tuple(sorted(state.corrections.items())),
        )
        memo = table.candidates_memo
        cached = memo.get(key)
        if cached is None:
            cached = tuple(self._candidates(spec, table, state, latency_ms, percentile))
            if len(memo) > 256:
                memo.clear()
            memo[key] = cached
        self.candidates: tuple[Candidate, ...] = cached
        self._by_placement = {c.placement: c for c in cached}

    @staticmethod
    def _candidates(
        spec: ModelDeploymentSpec, table: ProfileTable, state: PolicyState, latency_ms: float, percentile: float
    ) -> list[Candidate]:
        candidates: list[Candidate] = []
        for rank, tier in enumerate(spec.tiers):
            for pool in spec.node_pools:
                target = served_latency(spec, table.curve(tier.name, pool.name), latency_ms)
                capacity = table.capacity(tier.name, pool.name, target, percentile)
                if capacity <= 0.0:
                    continue
                capacity *= state.correction(tier.name, pool.name)
                candidates.append(
                    Candidate(
                        Placement(tier.name, pool.name),
                        rank,
                        capacity,
                        float(pool.cost_per_hour),
                        float(pool.replica_startup_seconds),
                    )
                )
        return candidates

    def candidate(self, placement: Placement) -> Candidate | None:
        return self._by_placement.get(placement)

    def unit_cost(self, pool: str) -> float:
        return self._pool_cost.get(pool, 0.0)

    def fleet_cost(self, fleet: Iterable[ReplicaGroup], exclude: Placement | None = None) -> float:
        """Cost per hour of the replicas that exist (starting ones included), optionally without one placement."""
        return sum(g.total * self.unit_cost(g.node_pool) for g in fleet if g.placement != exclude)

    def switch_cost(self, fleet: Iterable[ReplicaGroup], leaving: Placement) -> float:
        """Cost per hour that stays during a switch away from ``leaving``: its ready replicas and everything else.

        Replicas of the placement being left that are still starting are dropped at the switch.
        """
        return sum((g.ready if g.placement == leaving else g.total) * self.unit_cost(g.node_pool) for g in fleet)

    def affordable(self, cost: float, already: float = 0.0) -> bool:
        return self.budget is None or cost + already <= self.budget + EPSILON

    def budget_replicas(self, candidate: Candidate, already: float = 0.0) -> int:
        """Most replicas of a candidate the budget allows next to ``already`` (cost per hour)."""
        if self.budget is None or candidate.unit_cost <= 0.0:
            return self.max_replicas
        return max(0, math.floor((self.budget - already) / candidate.unit_cost + EPSILON))

    def needed(self, candidate: Candidate, demand: float) -> int:
        """Replicas that serve ``demand`` within the SLO, before bounds."""
        if demand <= 0.0:
            return 0
        return math.ceil(demand / candidate.capacity - EPSILON)

    def size(self, candidate: Candidate, demand: float) -> Option:
        """Replicas for a demand, within min/max replicas (not capped by the budget)."""
        needed = self.needed(candidate, demand)
        replicas = min(self.max_replicas, max(self.min_replicas, needed))
        return Option(candidate, replicas, needed <= self.max_replicas)

    def best(
        self,
        demand: Demand,
        objective: str,
        exclude: Placement | None = None,
        already: float = 0.0,
    ) -> Option | None:
        """The objective's best option meeting its demand within the budget (next to ``already``), or None."""
        fitting = []
        for candidate in self.candidates:
            if candidate.placement == exclude:
                continue
            option = self.size(candidate, demand(candidate))
            if option.meets and self.affordable(option.cost, already):
                fitting.append(option)
        if not fitting:
            return None
        if objective == "Cost":
            return min(fitting, key=lambda o: (o.cost, o.candidate.rank, -o.capacity))
        return min(fitting, key=lambda o: (o.candidate.rank, o.cost, -o.capacity))

    def best_effort(self, demand: Demand, objective: str, already: float = 0.0) -> Option | None:
        """When nothing meets the SLO within the budget: the affordable option serving the most in time."""
        best: tuple[tuple[float, float, float], Option] | None = None
        fits = [c for c in self.candidates if self.budget_replicas(c, already) >= max(1, self.min_replicas)]
        for candidate in fits or self.candidates:  # a placement whose fewest replicas break the budget comes last
            affordable = min(self.max_replicas, self.budget_replicas(candidate, already))
            replicas = max(self.min_replicas, min(affordable, self.needed(candidate, demand(candidate))))
            option = Option(candidate, replicas, False)
            served = min(demand(candidate), option.capacity)
            tie = float(candidate.rank) if objective == "Quality" else option.cost
            key = (-served, tie, option.cost)
            if best is None or key < best[0]:
                best = (key, option)
        return None if best is None else best[1]

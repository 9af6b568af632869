"""Candidate placements and how many replicas of each a demand needs, what that costs, what fits the budget."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fulcrum.api import ModelDeploymentSpec
from fulcrum.policy.capacity import ProfileTable
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

    @property
    def placement(self) -> Placement:
        return self.candidate.placement

    @property
    def cost(self) -> float:
        return self.replicas * self.candidate.unit_cost

    @property
    def capacity(self) -> float:
        return self.replicas * self.candidate.capacity


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
        candidates: list[Candidate] = []
        for rank, tier in enumerate(spec.tiers):
            for pool in spec.node_pools:
                capacity = table.capacity(tier.name, pool.name, latency_ms, percentile)
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
        self.candidates: tuple[Candidate, ...] = tuple(candidates)
        self._by_placement = {c.placement: c for c in candidates}

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
        for candidate in self.candidates:
            affordable = min(self.max_replicas, self.budget_replicas(candidate, already))
            replicas = max(self.min_replicas, min(affordable, self.needed(candidate, demand(candidate))))
            option = Option(candidate, replicas, False)
            served = min(demand(candidate), option.capacity)
            tie = float(candidate.rank) if objective == "Quality" else option.cost
            key = (-served, tie, option.cost)
            if best is None or key < best[0]:
                best = (key, option)
        return None if best is None else best[1]

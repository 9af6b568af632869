"""Shared builders for the policy and simulator tests (no tests here): a small spec, model-made profiles, and a
replay of decisions against the simulator's fleet model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fulcrum.api import LatencyQuantiles, ModelDeploymentSpec, Profile, ProfilePoint, parse_spec
from fulcrum.policy import Decision, Observation, PolicyState, ProfileTable, ReplicaGroup, decide
from fulcrum.policy.rollout import replica_capacities
from fulcrum.simulate.fleet import SimFleet

UTILISATIONS = (0.05, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def model_profile(pool: str, capacity: float, base: float = 4.0, jitter: float = 1.0) -> Profile:
    """latency_p = base + -ln(1-p) * jitter / (1 - utilisation), as in examples/profiles/make_profiles.py."""
    points = []
    for u in UTILISATIONS:
        q = {f"p{p}": base - math.log(1 - p / 100) * jitter / (1 - u) for p in (50, 90, 95, 99)}
        points.append(ProfilePoint(requests_per_second=u * capacity, latency_ms=LatencyQuantiles(**q)))
    return Profile(node_pool=pool, points=points)


def make_spec(
    *,
    budget: str | None = "10.00",
    min_replicas: int = 1,
    max_replicas: int = 20,
    objective: str = "Quality",
    cooldown: int = 600,
    stabilization: int = 300,
    percentile: Any = 99,
) -> ModelDeploymentSpec:
    spec: dict[str, Any] = {
        "model": {"source": {"uri": "file:model.onnx", "format": "onnx"}},
        "tiers": [
            {"name": "fp32", "precision": "fp32"},
            {"name": "int8", "precision": "int8"},
        ],
        "slo": {"latencyMs": 25, "percentile": percentile},
        "nodePools": [
            {"name": "l4", "costPerHour": "1.00", "replicaStartupSeconds": 60},
            {"name": "cpu", "gpusPerReplica": 0, "costPerHour": "0.25", "replicaStartupSeconds": 30},
        ],
        "scaling": {
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "scaleDownStabilizationSeconds": stabilization,
            "tierSwitchCooldownSeconds": cooldown,
            "objective": objective,
        },
    }
    if budget is not None:
        spec["budget"] = {"maxCostPerHour": budget}
    return parse_spec(spec)


def make_table() -> ProfileTable:
    """fp32: 1000 rps/replica saturation on l4, 200 on cpu; int8: 3000 on l4, 900 on cpu."""
    return ProfileTable.from_mapping(
        {
            "fp32": [model_profile("l4", 1000.0), model_profile("cpu", 200.0, base=6.0)],
            "int8": [model_profile("l4", 3000.0, base=3.0), model_profile("cpu", 900.0, base=4.0)],
        }
    )


@dataclass
class FleetReplay:
    decisions: list[Decision]
    fleets: list[tuple[ReplicaGroup, ...]]
    """What the operator saw at each step, after the step's decision was applied."""
    fleet: SimFleet
    """The fleet at the end."""


def replay_on_fleet(
    spec: ModelDeploymentSpec,
    rates: list[float],
    *,
    table: ProfileTable | None = None,
    hot: Mapping[str, frozenset[str]] | None = None,
    step: float = 10.0,
) -> FleetReplay:
    """Tick through ``rates`` against the simulator's fleet model (the rules ``decide`` projects with), its pools'
    start-up and cost from the spec, checking the budget at every step; the first placement is ready at once."""
    table = table or make_table()
    estimate = replica_capacities(spec, table, PolicyState())
    startup = {p.name: float(p.replica_startup_seconds) for p in spec.node_pools}
    unit_cost = {p.name: float(p.cost_per_hour) for p in spec.node_pools}
    fleet = SimFleet(startup, unit_cost, capacity=estimate, hot=dict(hot or {}))
    budget = spec.budget.max_cost_per_hour if spec.budget is not None else None
    state = PolicyState()
    out = FleetReplay([], [], fleet)
    observation: Observation | None = None
    for i, rate in enumerate(rates):
        now = i * step
        decision = decide(spec, table, observation, state.with_fleet(fleet.observed(now)), now, hot_tiers=hot or {})
        fleet.apply(decision.config, now, instant=i == 0)
        fleet.advance(now, rates[i - 1] if i else None)
        assert budget is None or fleet.cost_per_hour() <= float(budget) + 1e-9, decision.reason
        state = decision.state
        out.decisions.append(decision)
        out.fleets.append(fleet.observed(now))
        observation = Observation(rate)
    return out

"""Step one policy through a trace: decide, apply to the fleet, serve, pay."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fulcrum.api import ModelDeploymentSpec, ProfilesFile
from fulcrum.policy import Config, Observation, Placement, PolicyState, ProfileTable
from fulcrum.policy.rollout import replica_capacities
from fulcrum.simulate.fleet import SimFleet
from fulcrum.simulate.policies import POLICY_NAMES, Setting, make_policy
from fulcrum.simulate.serving import serve_step
from fulcrum.simulate.trace import FloatArray, Trace

BUDGET_EPSILON = 1e-9


@dataclass
class Run:
    """One policy's simulation: totals and per-step series."""

    policy: str
    tiers: list[str]
    times: FloatArray
    rates: FloatArray
    capacity: FloatArray
    """Requests per second the serving replicas handle within the SLO (truth, no margin)."""
    cost_per_hour: FloatArray
    replicas: dict[str, FloatArray]
    """Replicas per tier (starting ones included)."""
    requests: float = 0.0
    in_time: float = 0.0
    top_tier_requests: float = 0.0
    cost: float = 0.0
    budget_violation_seconds: float = 0.0
    tier_switches: int = 0
    scale_events: int = 0
    timeline: list[tuple[float, str, str, int]] = field(default_factory=list)

    @property
    def slo_attainment(self) -> float:
        return 1.0 if self.requests <= 0 else self.in_time / self.requests

    @property
    def top_tier_share(self) -> float:
        return 0.0 if self.requests <= 0 else self.top_tier_requests / self.requests

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0


def make_setting(
    spec: ModelDeploymentSpec,
    profiles: ProfilesFile,
    trace: Trace,
    step_seconds: float,
    speed: float = 1.0,
    *,
    rolling: bool = True,
) -> Setting:
    """Only tiers named in the spec are used; ``speed`` makes the simulated fleet faster/slower than profiled."""
    table = ProfileTable.from_file(profiles).only(t.name for t in spec.tiers)
    truth = ProfileTable({k: c.scaled(speed) for k, c in table.curves.items()})
    rates = trace.step_rates(step_seconds)
    return Setting(spec, table, truth, [float(r) for r in rates], step_seconds, rolling)


def simulate_policy(setting: Setting, name: str) -> Run:
    spec = setting.spec
    policy = make_policy(name, setting)
    step = setting.step_seconds
    rates = np.asarray(setting.step_rates, dtype=np.float64)
    steps = len(rates)
    tiers = [t.name for t in spec.tiers]
    slo_ms, percentile, budget = setting.slo_ms, setting.percentile, setting.budget
    timeout_us = spec.serving.dynamic_batching.queue_timeout_microseconds
    queue_timeout = None if timeout_us is None else timeout_us / 1e6  # Triton rejects what waited longer
    capacity_of = {k: c.capacity(slo_ms, percentile) for k, c in setting.truth.curves.items()}
    # a rolling switch is driven by the operator's estimate (the policy's margin), not by the truth
    estimate = replica_capacities(spec, setting.profiles, PolicyState())
    fleet = SimFleet(
        {p.name: float(p.replica_startup_seconds) for p in spec.node_pools},
        {p.name: float(p.cost_per_hour) for p in spec.node_pools},
        rolling=setting.rolling,
        capacity=estimate,
    )
    times = step * np.arange(steps, dtype=np.float64)
    run = Run(
        name,
        tiers,
        times,
        rates,
        np.zeros(steps),
        np.zeros(steps),
        {t: np.zeros(steps) for t in tiers},
    )
    observation: Observation | None = Observation(float(rates[0]) if steps else 0.0)
    backlogs: dict[Placement, float] = {}
    previous: Config | None = None
    for k in range(steps):
        now = float(times[k])
        config = policy.act(k, now, observation, fleet.observed(now))
        fleet.apply(config, now, instant=policy.instant or k == 0)
        fleet.advance(now, float(rates[k - 1]) if k > 0 else None)
        _count(run, previous, config, now)
        previous = config
        rate = float(rates[k])
        parts = fleet.serving_parts(now)
        # the Service spreads requests evenly over the ready replicas of both placements during a rolling switch
        weights = [float(ready) for _, ready in parts]
        total_weight = sum(weights)
        per_replica_capacity = min(
            (capacity_of.get((p.tier, p.node_pool), 0.0) for p, ready in parts if ready > 0), default=0.0
        )
        latency = queue = 0.0
        ready_total = 0
        if not parts:
            outcome = serve_step(
                None,
                0,
                rate,
                0.0,
                seconds=step,
                slo_ms=slo_ms,
                percentile=percentile,
                queue_timeout_seconds=queue_timeout,
            )
            run.requests += outcome.requests
            latency, queue = outcome.latency_ms, outcome.queue_ms
        for (placement, ready), weight in zip(parts, weights, strict=True):
            share = weight / total_weight if total_weight > 0 else (1.0 if placement == parts[0][0] else 0.0)
            curve = setting.truth.curve(placement.tier, placement.node_pool)
            outcome = serve_step(
                curve,
                ready,
                rate * share,
                backlogs.get(placement, 0.0),
                seconds=step,
                slo_ms=slo_ms,
                percentile=percentile,
                queue_timeout_seconds=queue_timeout,
            )
            backlogs[placement] = outcome.backlog
            run.requests += outcome.requests
            run.in_time += outcome.in_time
            if placement.tier == tiers[0]:
                run.top_tier_requests += outcome.requests
            latency += share * outcome.latency_ms
            queue += share * outcome.queue_ms
            ready_total += ready
        run.capacity[k] = total_weight * per_replica_capacity
        cost_rate = fleet.cost_per_hour()
        run.cost += cost_rate * step / 3600.0
        if budget is not None and cost_rate > budget + BUDGET_EPSILON:
            run.budget_violation_seconds += step
        run.cost_per_hour[k] = cost_rate
        for tier, count in fleet.replicas_by_tier().items():
            if tier in run.replicas:
                run.replicas[tier][k] = count
        observation = Observation(rate, latency if ready_total > 0 else None, queue)
    return run


def _count(run: Run, previous: Config | None, config: Config, now: float) -> None:
    if previous == config:
        return
    run.timeline.append((now, config.tier, config.node_pool, config.replicas))
    if previous is None:
        return
    if previous.placement != config.placement:
        run.tier_switches += 1
    else:
        run.scale_events += 1


def simulate(setting: Setting, policies: list[str]) -> dict[str, Run]:
    """Run each policy; ``oracle`` is always run (costVsOracle needs it) but only returned if asked for."""
    unknown = [p for p in policies if p not in POLICY_NAMES]
    if unknown:
        raise ValueError(f"unknown policies {', '.join(unknown)}; known: {', '.join(POLICY_NAMES)}")
    runs = {name: simulate_policy(setting, name) for name in dict.fromkeys([*policies, "oracle"])}
    if "oracle" not in policies:
        runs["_oracle"] = runs.pop("oracle")
    return runs

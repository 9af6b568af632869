"""Step one policy through a trace: decide, apply to the fleet, serve, pay."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from fulcrum.api import ModelDeploymentSpec, ProfilesFile
from fulcrum.policy import Config, Curve, Observation, PolicyState, ProfileTable, Tuning
from fulcrum.policy.fleet import FleetModel, FleetRow, Part
from fulcrum.policy.hot import hot_tiers
from fulcrum.policy.plan import served_latency
from fulcrum.policy.rollout import replica_capacities
from fulcrum.simulate.policies import POLICY_NAMES, Setting, make_policy
from fulcrum.simulate.serving import StepOutcome, serve_step
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
    """Requests per second the serving replicas handle within the SLO (truth, no margin; with a queue timeout,
    within the timeout and the service time when that is tighter, as the serving model and the policy take it)."""
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
    fleet: list[tuple[float, FleetRow]] = field(default_factory=list)
    """Every placement that existed at every step (``fulcrum simulate --fleet``)."""
    codes: list[str] = field(default_factory=list)
    """The policy's decision codes per step (fulcrum only)."""
    late: FloatArray = field(default_factory=lambda: np.zeros(0))
    """Requests per step not served within the SLO (late, queued past the run's end, or rejected)."""

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
    hot: Mapping[str, Collection[str]] | None = None,
    metrics_window_seconds: float | None = None,
) -> Setting:
    """Only tiers named in the spec are used; ``speed`` makes the simulated fleet faster/slower than profiled.

    ``hot``: pool -> tiers each replica of that pool loads (a switch among them is hot); none by default.
    ``metrics_window_seconds``: the trailing window of the observed rate (:attr:`Setting.metrics_window_seconds`).
    """
    table = ProfileTable.from_file(profiles).only(t.name for t in spec.tiers)
    truth = ProfileTable({k: c.scaled(speed) for k, c in table.curves.items()})
    rates = trace.step_rates(step_seconds)
    hot_tiers = {pool: frozenset(tiers) for pool, tiers in (hot or {}).items() if len(tiers) > 1}
    return Setting(
        spec, table, truth, [float(r) for r in rates], step_seconds, rolling, hot_tiers, metrics_window_seconds
    )


def all_hot_tiers(spec: ModelDeploymentSpec, profiles: ProfilesFile) -> dict[str, tuple[str, ...]]:
    """Every pool's hot tiers when each replica loads every tier profiled on it (``hot_tiers`` with unknown sizes)."""
    profiled: dict[str, dict[str, int | None]] = {}
    for tier in profiles.tiers:
        for profile in tier.profiles:
            if profile.points:
                profiled.setdefault(profile.node_pool, {})[tier.name] = None
    hot = {pool.name: hot_tiers(spec, pool, profiled.get(pool.name, {})) for pool in spec.node_pools}
    return {pool: tiers for pool, tiers in hot.items() if len(tiers) > 1}


def simulate_policy(setting: Setting, name: str, *, record_fleet: bool = False, tuning: Tuning | None = None) -> Run:
    spec = setting.spec
    policy = make_policy(name, setting, tuning)
    step = setting.step_seconds
    rates = list(setting.step_rates)
    steps = len(rates)
    tiers = [t.name for t in spec.tiers]
    top = tiers[0]
    slo_ms, percentile, budget = setting.slo_ms, setting.percentile, setting.budget
    timeout_us = spec.serving.dynamic_batching.queue_timeout_microseconds
    queue_timeout = None if timeout_us is None else timeout_us / 1e6  # Triton rejects what waited longer
    # what a replica truly serves within the SLO: with a queue timeout, within the timeout and its service time
    capacity_of = {k: c.capacity(served_latency(spec, c, slo_ms), percentile) for k, c in setting.truth.curves.items()}
    # a rolling switch is driven by the operator's estimate (the policy's margin), not by the truth
    estimate = replica_capacities(spec, setting.profiles, PolicyState())
    fleet = FleetModel(
        {p.name: float(p.replica_startup_seconds) for p in spec.node_pools},
        {p.name: float(p.cost_per_hour) for p in spec.node_pools},
        rolling=setting.rolling,
        capacity=estimate,
        hot=setting.hot,
    )
    capacity_series = [0.0] * steps
    cost_series = [0.0] * steps
    replica_series: dict[str, list[float]] = {t: [0.0] * steps for t in tiers}
    run = Run(name, tiers, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), {})
    window = setting.metrics_window_seconds
    window_steps = 1 if window is None else max(1, round(window / step))  # the steps the observed rate spans
    observation: Observation | None = Observation(rates[0] if steps else 0.0)
    backlogs: dict[str, float] = {}
    previous: Config | None = None
    requests = in_time = top_requests = cost = over = 0.0
    late_series = [0.0] * steps
    for k in range(steps):
        requests_before, in_time_before = requests, in_time
        now = k * step
        config = policy.act(k, now, observation, fleet.observed(now))
        fleet.apply(config, now, instant=policy.instant or k == 0)
        fleet.advance(now, rates[k - 1] if k > 0 else None)
        _count(run, previous, config, now)
        previous = config
        rate = rates[k]
        parts = fleet.serving_parts(now, step)
        # the Service spreads requests evenly over the ready replicas of both placements during a rolling switch
        total_weight = float(sum(part.ready for part in parts))
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
            requests += outcome.requests
            latency, queue = outcome.latency_ms, outcome.queue_ms
        per_replica_capacity = 0.0
        for part in parts:
            share = part.ready / total_weight if total_weight > 0 else (1.0 if part is parts[0] else 0.0)
            outcome = _serve_part(setting, part, rate * share, backlogs.get(part.key, 0.0), step, queue_timeout)
            backlogs[part.key] = outcome.backlog
            requests += outcome.requests
            in_time += outcome.in_time
            if part.placement.tier == top:
                top_requests += outcome.requests * (1.0 - part.switch_seconds / step)
            elif part.previous_tier == top:
                top_requests += outcome.requests * part.switch_seconds / step
            latency += share * outcome.latency_ms
            queue += share * outcome.queue_ms
            ready_total += part.ready
            if part.ready > 0:
                here = capacity_of.get((part.placement.tier, part.placement.node_pool), 0.0)
                per_replica_capacity = here if per_replica_capacity <= 0.0 else min(per_replica_capacity, here)
        capacity_series[k] = total_weight * per_replica_capacity
        late_series[k] = max(0.0, (requests - requests_before) - (in_time - in_time_before))
        cost_rate = fleet.cost_per_hour()
        cost += cost_rate * step / 3600.0
        if budget is not None and cost_rate > budget + BUDGET_EPSILON:
            over += step
        cost_series[k] = cost_rate
        for tier, count in fleet.replicas_by_tier().items():
            if tier in replica_series:
                replica_series[tier][k] = count
        if record_fleet:
            run.fleet.extend((now, row) for row in fleet.rows(now, step))
        first = max(0, k + 1 - window_steps)
        observed = sum(rates[first : k + 1]) / (k + 1 - first)  # the last step's rate when the window is one step
        observation = Observation(observed, latency if ready_total > 0 else None, queue)
    run.times = step * np.arange(steps, dtype=np.float64)
    run.rates = np.asarray(rates, dtype=np.float64)
    run.capacity = np.asarray(capacity_series)
    run.cost_per_hour = np.asarray(cost_series)
    run.late = np.asarray(late_series)
    run.replicas = {t: np.asarray(v) for t, v in replica_series.items()}
    run.requests, run.in_time, run.top_tier_requests = requests, in_time, top_requests
    run.cost, run.budget_violation_seconds = cost, over
    run.codes = list(getattr(policy, "codes", []))
    return run


def _serve_part(  # noqa: PLR0917 - the step's inputs
    setting: Setting, part: Part, rate: float, backlog: float, step: float, queue_timeout: float | None
) -> StepOutcome:
    """Serve one part for a step; during a hot switch its first seconds on the tier it leaves."""
    curve = setting.truth.curve(part.placement.tier, part.placement.node_pool)
    if part.previous_tier is None or part.switch_seconds <= 0.0:
        return _serve(setting, curve, part.ready, rate, backlog, step, queue_timeout)
    before = setting.truth.curve(part.previous_tier, part.placement.node_pool)
    first = _serve(setting, before, part.ready, rate, backlog, part.switch_seconds, queue_timeout)
    rest = _serve(setting, curve, part.ready, rate, first.backlog, step - part.switch_seconds, queue_timeout)
    weight = part.switch_seconds / step
    return StepOutcome(
        first.requests + rest.requests,
        first.in_time + rest.in_time,
        weight * first.latency_ms + (1.0 - weight) * rest.latency_ms,
        weight * first.queue_ms + (1.0 - weight) * rest.queue_ms,
        rest.backlog,
    )


def _serve(  # noqa: PLR0917 - serve_step's inputs
    setting: Setting,
    curve: Curve | None,
    ready: int,
    rate: float,
    backlog: float,
    seconds: float,
    queue_timeout: float | None,
) -> StepOutcome:
    return serve_step(
        curve,
        ready,
        rate,
        backlog,
        seconds=seconds,
        slo_ms=setting.slo_ms,
        percentile=setting.percentile,
        queue_timeout_seconds=queue_timeout,
    )


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


def simulate(setting: Setting, policies: list[str], *, record_fleet: bool = False) -> dict[str, Run]:
    """Run each policy; ``oracle`` is always run (costVsOracle needs it) but only returned if asked for."""
    unknown = [p for p in policies if p not in POLICY_NAMES]
    if unknown:
        raise ValueError(f"unknown policies {', '.join(unknown)}; known: {', '.join(POLICY_NAMES)}")
    runs = {
        name: simulate_policy(setting, name, record_fleet=record_fleet) for name in dict.fromkeys([*policies, "oracle"])
    }
    if "oracle" not in policies:
        runs["_oracle"] = runs.pop("oracle")
    return runs

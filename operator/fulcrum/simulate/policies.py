"""The policies a simulation compares: ``fulcrum`` (the real ``decide``) and the baselines.

- ``hpa``: Kubernetes HPA on the fp32 tier (first tier) on its most cost-effective pool. Metric: utilisation =
  per-replica rate / profiled saturation rate; target 70 %, tolerance 10 %; scale up at once (at most
  doubling or +4 per step), scale down to the highest recommendation of the last 300 s; capped to the budget.
- ``kpa``: Knative's KPA on the same tier and pool. Concurrency (Little's law: rate x latency) against a
  per-replica target of 70 % of the concurrency a replica holds at its SLO capacity; stable window 60 s,
  panic window 6 s (the last observation when steps are longer), panic when the panic window asks for twice
  the ready replicas, no scale-down while panicking and for 60 s after; scale-down at most halves.
- ``static``: the first tier on the same pool, sized once for the trace's peak within the budget.
- ``oracle``: knows each step's rate; takes the objective's best configuration for it using the profile
  with no safety margin; changes are instant (no startup, no overlap).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fulcrum.api import ModelDeploymentSpec
from fulcrum.policy import (
    Candidate,
    Config,
    Observation,
    Placement,
    Planner,
    PolicyState,
    ProfileTable,
    ReplicaGroup,
    Tuning,
    decide,
)
from fulcrum.policy.plan import EPSILON
from fulcrum.policy.types import DEFAULT_TUNING
from fulcrum.simulate.serving import serve_step

POLICY_NAMES = ("fulcrum", "hpa", "kpa", "static", "oracle")


class SimPolicy(Protocol):
    name: str
    instant: bool

    def act(self, step: int, now: float, observation: Observation | None, fleet: tuple[ReplicaGroup, ...]) -> Config:
        """The desired configuration from ``now`` on."""


@dataclass(frozen=True)
class Setting:
    """What every policy may know: the spec, the profiles, the SLO and the step rates (for peak / oracle)."""

    spec: ModelDeploymentSpec
    profiles: ProfileTable
    truth: ProfileTable
    step_rates: Sequence[float]
    step_seconds: float
    rolling: bool = True
    """Switches roll (old replicas removed as new ones become ready, what the operator does), else blue/green."""
    hot: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Pool -> tiers each of its replicas loads: a switch among them is hot (no new pods)."""
    metrics_window_seconds: float | None = None
    """The rate the reactive policies observe: the mean over this trailing window (rounded to whole steps), as the
    operator's Prometheus source reads ``rate(...[30s])``. None: each step's own rate, what the operator's scrape
    source reads at a 15 s tick (its window is 15 s)."""

    @property
    def slo_ms(self) -> float:
        return float(self.spec.slo.latency_ms)

    @property
    def percentile(self) -> float:
        return float(self.spec.slo.percentile)

    @property
    def budget(self) -> float | None:
        ceiling = self.spec.budget.max_cost_per_hour
        return None if ceiling is None else float(ceiling)

    def clamp(self, replicas: int, unit_cost: float) -> int:
        """Within min/max replicas and, where it can be, within the budget."""
        scaling = self.spec.scaling
        if self.budget is not None and unit_cost > 0:
            replicas = min(replicas, math.floor(self.budget / unit_cost + 1e-9))
        return max(scaling.min_replicas, min(scaling.max_replicas, replicas))


def first_tier_placement(setting: Setting) -> tuple[Placement, float, float, float]:
    """The first tier on the pool where it serves the SLO cheapest: (placement, SLO capacity, saturation, cost)."""
    tier = setting.spec.tiers[0].name
    best: tuple[float, Placement, float, float, float] | None = None
    for pool in setting.spec.node_pools:
        curve = setting.profiles.curve(tier, pool.name)
        if curve is None:
            continue
        capacity = curve.capacity(setting.slo_ms, setting.percentile)
        if capacity <= 0:
            continue
        cost = float(pool.cost_per_hour)
        key = cost / capacity
        if best is None or key < best[0]:
            best = (key, Placement(tier, pool.name), capacity, curve.saturation_rps, cost)
    if best is None:
        raise ValueError(f"the first tier {tier!r} has no profile that meets the SLO on any pool")
    return best[1], best[2], best[3], best[4]


class FulcrumPolicy:
    name = "fulcrum"
    instant = False

    def __init__(self, setting: Setting, tuning: Tuning | None = None) -> None:
        self.setting = setting
        self.tuning = replace(tuning or DEFAULT_TUNING, rolling_switch=setting.rolling)
        self.state = PolicyState()
        self.codes: list[str] = []

    def act(self, step: int, now: float, observation: Observation | None, fleet: tuple[ReplicaGroup, ...]) -> Config:
        state = self.state.with_fleet(fleet)
        decision = decide(
            self.setting.spec,
            self.setting.profiles,
            observation,
            state,
            now,
            tuning=self.tuning,
            hot_tiers=self.setting.hot,
        )
        self.state = decision.state
        self.codes.append(decision.code)
        return decision.config


class HpaPolicy:
    name = "hpa"
    instant = False
    target = 0.7
    tolerance = 0.1
    window_seconds = 300.0

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.placement, self.capacity, self.saturation, self.unit_cost = first_tier_placement(setting)
        self.replicas = 0
        self.recommendations: deque[tuple[float, int]] = deque()

    def act(self, step: int, now: float, observation: Observation | None, fleet: tuple[ReplicaGroup, ...]) -> Config:
        rate = None if observation is None else observation.requests_per_second
        ready = sum(g.ready for g in fleet if g.placement == self.placement)
        if step == 0 or self.replicas == 0:
            wanted = math.ceil((rate or 0.0) / (self.target * self.saturation))
            self.replicas = self.setting.clamp(wanted, self.unit_cost)
            return Config(self.placement.tier, self.placement.node_pool, self.replicas)
        if rate is None or ready == 0:
            return Config(self.placement.tier, self.placement.node_pool, self.replicas)
        ratio = rate / (ready * self.saturation) / self.target
        proposal = self.replicas if abs(ratio - 1.0) <= self.tolerance else math.ceil(ready * ratio)
        proposal = min(proposal, max(2 * self.replicas, self.replicas + 4))
        self.recommendations.append((now, proposal))
        while self.recommendations and now - self.recommendations[0][0] >= self.window_seconds:
            self.recommendations.popleft()
        if proposal < self.replicas:
            proposal = min(self.replicas, max(n for _, n in self.recommendations))
        self.replicas = self.setting.clamp(proposal, self.unit_cost)
        return Config(self.placement.tier, self.placement.node_pool, self.replicas)


class KpaPolicy:
    name = "kpa"
    instant = False
    utilisation = 0.7
    stable_seconds = 60.0
    panic_seconds = 6.0
    panic_threshold = 2.0
    max_scale_down = 2.0

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.placement, self.capacity, self.saturation, self.unit_cost = first_tier_placement(setting)
        curve = setting.profiles.curve(self.placement.tier, self.placement.node_pool)
        assert curve is not None
        self.curve = curve
        # concurrency one replica holds at its SLO capacity (Little's law with the median latency)
        held = self.capacity * curve.latency_at(self.capacity, 50.0) / 1000.0
        self.target_per_replica = max(1e-6, self.utilisation * held)
        self.replicas = 0
        self.samples: deque[tuple[float, float]] = deque()
        self.panic_until = -math.inf

    def act(self, step: int, now: float, observation: Observation | None, fleet: tuple[ReplicaGroup, ...]) -> Config:
        rate = None if observation is None else observation.requests_per_second
        if step == 0 or self.replicas == 0:
            rate0 = rate or 0.0
            concurrency = rate0 * self.curve.latency_at(min(rate0, self.capacity), 50.0) / 1000.0
            self.replicas = self.setting.clamp(math.ceil(concurrency / self.target_per_replica), self.unit_cost)
            return Config(self.placement.tier, self.placement.node_pool, self.replicas)
        if observation is None or rate is None:
            return Config(self.placement.tier, self.placement.node_pool, self.replicas)
        ready = max(1, sum(g.ready for g in fleet if g.placement == self.placement))
        per_replica = rate / ready
        median = self.curve.latency_at(min(per_replica, self.saturation), 50.0) + (observation.queue_ms or 0.0)
        concurrency = rate * median / 1000.0
        self.samples.append((now, concurrency))
        while self.samples and now - self.samples[0][0] >= self.stable_seconds:
            self.samples.popleft()
        stable = sum(c for _, c in self.samples) / len(self.samples)
        panic_samples = [c for t, c in self.samples if now - t < self.panic_seconds] or [concurrency]
        panic = sum(panic_samples) / len(panic_samples)
        want_stable = math.ceil(stable / self.target_per_replica)
        want_panic = math.ceil(panic / self.target_per_replica)
        if want_panic >= self.panic_threshold * ready:
            self.panic_until = now + self.stable_seconds
        if now < self.panic_until:
            wanted = max(self.replicas, want_panic)
        else:
            wanted = max(want_stable, math.ceil(self.replicas / self.max_scale_down))
        self.replicas = self.setting.clamp(wanted, self.unit_cost)
        return Config(self.placement.tier, self.placement.node_pool, self.replicas)


@dataclass
class StaticPolicy:
    setting: Setting
    name: str = "static"
    instant: bool = False
    config: Config | None = field(default=None, init=False)

    def act(self, step: int, now: float, observation: Observation | None, fleet: tuple[ReplicaGroup, ...]) -> Config:
        if self.config is None:
            placement, capacity, _, unit_cost = first_tier_placement(self.setting)
            peak = max(self.setting.step_rates) if len(self.setting.step_rates) else 0.0
            replicas = self.setting.clamp(math.ceil(peak / capacity - 1e-9), unit_cost)
            self.config = Config(placement.tier, placement.node_pool, replicas)
        return self.config


class OraclePolicy:
    """Each step's best configuration for that step's rate, from the true profile, changed instantly.

    What no real policy can beat on cost or on the share of the most accurate tier while meeting the SLO at
    every step: it knows the rate, pays no start-up and no overlap, and sizes to the SLO with no margin. It is
    *not* an upper bound on SLO attainment (a fleet sized with room to spare does better than one sized to the
    SLO's percentile exactly): that bound is :func:`attainment_bound`.
    """

    name = "oracle"
    instant = True

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        planner = Planner(setting.spec, setting.truth, PolicyState(), setting.slo_ms, setting.percentile)
        if not planner.candidates:
            raise ValueError("no tier has a profile that meets the SLO on any pool")
        self.configs = oracle_configs(planner, setting.spec.scaling.objective, setting.step_rates)

    def act(self, step: int, now: float, observation: Observation | None, fleet: tuple[ReplicaGroup, ...]) -> Config:
        return self.configs[min(step, len(self.configs) - 1)]


def oracle_configs(planner: Planner, objective: str, rates: Sequence[float]) -> list[Config]:
    """The oracle's choice for every step at once: ``Planner.best`` for the step's rate (vectorised)."""
    candidates = planner.candidates
    r = np.asarray(rates, dtype=np.float64)
    capacity = np.array([c.capacity for c in candidates])[:, None]
    unit = np.array([c.unit_cost for c in candidates])[:, None]
    rank = np.array([float(c.rank) for c in candidates])[:, None]
    needed = np.where(r[None, :] > 0.0, np.ceil(r[None, :] / capacity - EPSILON), 0.0)
    replicas = np.clip(needed, planner.min_replicas, planner.max_replicas)
    cost = replicas * unit
    ok = needed <= planner.max_replicas
    if planner.budget is not None:
        ok &= cost <= planner.budget + EPSILON
    keys = (cost, rank) if objective == "Cost" else (rank, cost)
    chosen = _lexicographic_argmin([*keys, -replicas * capacity], ok)
    configs: list[Config] = []
    for k, index in enumerate(chosen.tolist()):
        if index < 0:
            option = planner.best_effort(_constant(float(r[k])), objective)
            assert option is not None
            configs.append(Config(option.placement.tier, option.placement.node_pool, option.replicas))
        else:
            c = candidates[index]
            configs.append(Config(c.placement.tier, c.placement.node_pool, int(replicas[index, k])))
    return configs


def _constant(rate: float) -> Callable[[Candidate], float]:
    return lambda _: rate


def _lexicographic_argmin(keys: list[npt.NDArray[np.float64]], allowed: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Per column, the row minimising the keys in order among the allowed rows; -1 where none is allowed."""
    mask = allowed.copy()
    for key in keys:
        masked = np.where(mask, key, np.inf)
        mask &= masked <= masked.min(axis=0, keepdims=True)
    chosen = np.argmax(mask, axis=0)
    return np.where(mask.any(axis=0), chosen, -1)


def attainment_bound(setting: Setting) -> float:
    """The most SLO attainment any policy could reach: each step, the affordable fleet with the most in time.

    Every placement at the most replicas that max replicas and the budget allow (more replicas never serve fewer
    requests in time), known rates, no start-up, no queue carried over. A mixed fleet (two placements while a
    switch rolls) serves at the slower placement's per-replica rate, so it never does better than the best
    single placement.
    """
    spec = setting.spec
    budget = setting.budget
    timeout_us = spec.serving.dynamic_batching.queue_timeout_microseconds
    queue_timeout = None if timeout_us is None else timeout_us / 1e6
    fleets = []
    for (tier, pool), curve in setting.truth.curves.items():
        unit = next((float(p.cost_per_hour) for p in spec.node_pools if p.name == pool), None)
        if unit is None or tier not in {t.name for t in spec.tiers}:
            continue
        most = spec.scaling.max_replicas
        if budget is not None and unit > 0.0:
            most = min(most, max(spec.scaling.min_replicas, math.floor(budget / unit + 1e-9)))
        if most > 0:
            fleets.append((curve, most))
    requests = in_time = 0.0
    for rate in setting.step_rates:
        best = 0.0
        for curve, replicas in fleets:
            outcome = serve_step(
                curve,
                replicas,
                rate,
                0.0,
                seconds=setting.step_seconds,
                slo_ms=setting.slo_ms,
                percentile=setting.percentile,
                queue_timeout_seconds=queue_timeout,
            )
            best = max(best, outcome.in_time)
        requests += rate * setting.step_seconds
        in_time += best
    return 1.0 if requests <= 0.0 else in_time / requests


def make_policy(name: str, setting: Setting, tuning: Tuning | None = None) -> SimPolicy:
    """``tuning``: fulcrum's knobs (its defaults when None; the setting decides rolling or blue/green)."""
    if name == "fulcrum":
        return FulcrumPolicy(setting, tuning)
    if name == "hpa":
        return HpaPolicy(setting)
    if name == "kpa":
        return KpaPolicy(setting)
    if name == "static":
        return StaticPolicy(setting)
    if name == "oracle":
        return OraclePolicy(setting)
    raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICY_NAMES)}")

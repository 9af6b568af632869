"""The control loop of one ModelDeployment: observe the fleet, ask the policy, remember its state.

What survives an operator restart (or a failover to the standby replica), and how:

- **persisted in status**: the desired configuration (``activeTier``, ``activeNodePool``, ``replicas``), the time
  the last switch started and the speed corrections the policy learned (``status.policy``, written only when they
  change at two significant digits), so a restarted policy neither switches again inside the cooldown nor
  forgets how fast the fleet really is;
- **rebuilt from the cluster**: the fleet (the Deployments that exist, ready and starting), and a switch in
  progress (both placements' Deployments exist: no new switch starts, and the old one keeps every ready replica
  until the new one's replicas are ready, as nothing says what the fleet served when the switch started);
- **rebuilt from scratch**: the rate history, the scale-down window and the metrics window. The first tick after
  a restart is only a metrics baseline, so the policy gets *no observation* (unknown, never zero load), and the
  policy scales in only after a whole stabilization window of complete observations.

The tick schedule runs on the monotonic clock; the policy's times (which status persists) are wall-clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from fulcrum.api import ModelDeploymentSpec, ModelDeploymentStatus, TierProfiles
from fulcrum.metrics.sources import Reading
from fulcrum.policy import Decision, Observation, PolicyState, ProfileTable, ReplicaGroup, decide
from fulcrum.policy.rollout import mixed_capacity, replica_capacities
from fulcrum.policy.types import Config
from fulcrum.reconcile.builds import MergedTier
from fulcrum.reconcile.plan import Choice, LiveServer, Rollout

SWITCH_ACTIONS = ("SwitchTier", "SwitchPool")


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def format_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def significant(value: float, digits: int = 3) -> str:
    """A decimal string rounded to a few significant digits, so noise does not rewrite status every tick."""
    if value == 0:
        return "0"
    quantum = Decimal(1).scaleb(Decimal(repr(abs(value))).adjusted() - digits + 1)
    return format(Decimal(repr(value)).quantize(quantum).normalize(), "f")


@dataclass
class Memory:
    state: PolicyState
    starting: dict[tuple[str, str], list[float]]  # (tier, pool) -> start times of replicas not ready yet
    last_tick: float | None = None  # monotonic
    capacities: dict[tuple[str, str], float] = field(default_factory=dict)  # the policy's, per replica
    rate: float | None = None  # observed at the last tick, when every pod counted (else unknown)
    references: dict[tuple[str, str], float] = field(default_factory=dict)  # placement left -> capacity then
    unrecorded: Tick | None = None  # the last tick, until status has recorded it


@dataclass(frozen=True)
class Tick:
    decision: Decision
    reading: Reading | None
    at: float = 0.0
    """Wall-clock time of the tick (the decision's time in status)."""


def observation_of(reading: Reading | None) -> Observation | None:
    """The policy's input: None (unknown) without a usable window; ``complete`` False when the rate is a lower bound."""
    if reading is None or reading.metrics is None:
        return None
    metrics = reading.metrics
    return Observation(metrics.requests_per_second, metrics.latency_ms, metrics.queue_ms, complete=reading.complete)


def restored_state(status: ModelDeploymentStatus) -> PolicyState:
    """The policy state a restarted operator starts from: what status persisted, with no history."""
    desired = None
    if status.active_tier and status.active_node_pool and status.replicas is not None:
        desired = Config(status.active_tier, status.active_node_pool, status.replicas)
    memory = status.policy
    switched = parse_time(memory.last_switch_time) if memory is not None else None
    last = status.last_decision
    if switched is None and last is not None and last.action in SWITCH_ACTIONS:
        switched = parse_time(last.time)
    corrections = {k: float(v) for k, v in memory.speed_corrections.items()} if memory is not None else {}
    return PolicyState(desired=desired, last_switch_at=switched, corrections=corrections)


class ControlLoop:
    def __init__(
        self,
        tick_seconds: float = 15.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tick_seconds = tick_seconds
        self.clock = clock
        self.monotonic = monotonic
        self.memory: dict[tuple[str, str], Memory] = {}

    def due(self, key: tuple[str, str]) -> bool:
        """Whether a reconcile now should tick: a tick interval has passed (90 % of it: a reconcile that an event
        brings a little early still ticks, so an event never pushes the next tick a whole interval away)."""
        memory = self.memory.get(key)
        if memory is None or memory.last_tick is None:
            return True
        return self.monotonic() - memory.last_tick >= self.tick_seconds * 0.9

    def until_due(self, key: tuple[str, str]) -> float:
        """Seconds until the next tick of ``key`` should run (0: now): one tick interval after the last."""
        memory = self.memory.get(key)
        if memory is None or memory.last_tick is None:
            return 0.0
        return max(0.0, memory.last_tick + self.tick_seconds - self.monotonic())

    def forget(self, key: tuple[str, str]) -> None:
        self.memory.pop(key, None)

    def _memory(self, key: tuple[str, str], status: ModelDeploymentStatus) -> Memory:
        memory = self.memory.get(key)
        if memory is None:
            memory = Memory(restored_state(status), {})
            self.memory[key] = memory
        return memory

    def fleet(self, memory: Memory, servers: list[LiveServer], now: float) -> list[ReplicaGroup]:
        groups = []
        for server in servers:
            waiting = max(0, server.replicas - server.ready_replicas)
            known = memory.starting.get((server.tier, server.pool), [])
            starts = (known + [now] * waiting)[:waiting] if waiting else []
            memory.starting[(server.tier, server.pool)] = starts
            groups.append(ReplicaGroup(server.tier, server.pool, server.ready_replicas, tuple(starts)))
        return groups

    def tick(
        self,
        key: tuple[str, str],
        *,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        tiers: list[MergedTier],
        servers: list[LiveServer],
        reading: Reading | None,
        hot_tiers: Mapping[str, frozenset[str]] | None = None,
    ) -> Tick:
        """One control tick. ``hot_tiers``: pool -> the tiers each of its replicas loads (a switch among them is
        a routing change, no new pods)."""
        now = self.clock()
        memory = self._memory(key, status)
        ready = [TierProfiles(name=t.name, profiles=t.profiles) for t in tiers if t.state == "Ready" and t.profiles]
        observation = observation_of(reading)
        state = memory.state.with_fleet(self.fleet(memory, servers, now))
        profiles = ProfileTable.from_tiers(ready)
        decision = decide(spec, profiles, observation, state, now, hot_tiers=hot_tiers or {})
        memory.state = decision.state
        memory.last_tick = self.monotonic()
        capacities = replica_capacities(spec, profiles, decision.state)
        memory.capacities = {(p.tier, p.node_pool): c for p, c in capacities.items()}
        memory.rate = observation.requests_per_second if observation is not None and observation.complete else None
        self._remember_switch(memory, decision, servers)
        memory.unrecorded = Tick(decision, reading, now)
        return memory.unrecorded

    def unrecorded(self, key: tuple[str, str]) -> Tick | None:
        """The last tick while status has not recorded it yet (its status write failed or was not tried)."""
        memory = self.memory.get(key)
        return None if memory is None else memory.unrecorded

    def recorded(self, key: tuple[str, str]) -> None:
        memory = self.memory.get(key)
        if memory is not None:
            memory.unrecorded = None

    @staticmethod
    def _remember_switch(memory: Memory, decision: Decision, servers: list[LiveServer]) -> None:
        """At a switch, what the fleet serves within the SLO: the old placement goes capacity-for-capacity."""
        target = (decision.tier, decision.node_pool)
        live = {(s.tier, s.pool) for s in servers}
        memory.references = {k: v for k, v in memory.references.items() if k in live and k != target}
        previous = decision.previous
        if previous is None or (previous.tier, previous.node_pool) == target:
            return
        left = (previous.tier, previous.node_pool)
        old_ready = sum(s.ready_replicas for s in servers if (s.tier, s.pool) == left)
        new_ready = sum(s.ready_replicas for s in servers if (s.tier, s.pool) == target)
        memory.references[left] = mixed_capacity(
            old_ready, memory.capacities.get(left, 0.0), new_ready, memory.capacities.get(target, 0.0)
        )

    def rollout(self, key: tuple[str, str]) -> Rollout | None:
        """The numbers the planner needs to roll a switch (None before the first tick)."""
        memory = self.memory.get(key)
        if memory is None or not memory.capacities:
            return None
        return Rollout(dict(memory.capacities), memory.rate, dict(memory.references))

    def remembered_choice(self, key: tuple[str, str]) -> Choice | None:
        memory = self.memory.get(key)
        if memory is None or memory.state.desired is None:
            return None
        desired = memory.state.desired
        return Choice(desired.tier, desired.node_pool, desired.replicas)

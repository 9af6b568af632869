"""The fleet model: replica groups per placement, start-up delays, rolling (cold) switches and hot switches. Pure.

The simulator runs it step by step (``fulcrum.simulate``), and the policy reads the same rules when it projects
what a plan would give (``fulcrum.policy.decide``), so both agree on what a decision does:

- New replicas serve ``replicaStartupSeconds`` after they are created (at the first step boundary after).
- Scaling down removes replicas that are still starting first (newest first), then serving ones.
- A **cold** switch (another pool, or a tier its replicas do not load) drops the old placement's replicas still
  starting (they would never serve); a further change of placement during a switch drops the replicas of the
  abandoned placement.
- ``rolling=True`` (what the operator does): the old placement's ready replicas keep serving beside the new
  placement's ready ones (the Service splits traffic evenly over ready replicas), and at every step the old
  placement is cut to :func:`fulcrum.policy.rollout.old_replicas_to_keep`: capacity-for-capacity as new replicas
  become ready, and to what the last observed load still needs of it. The switch ends when no old replica is
  left. ``capacity`` holds the per-replica SLO capacities the operator would use (the policy's). Going back to
  the placement a roll is leaving reverses the roll: the placement it rolled to becomes the one left, and its
  ready replicas are cut by the same rule (the operator rolls down any Deployment that is not the choice).
- ``rolling=False`` (blue/green): the old placement keeps serving, and paying, until the new placement has as
  many ready replicas as were asked for at the switch; then it goes at once (cutover).
- A **hot** switch (same pool, both tiers in ``hot[pool]``: every replica of the pool loads them all) creates
  no pod: every replica of the pool, starting ones included, routes to the new tier ``hot_switch_seconds``
  later. It costs nothing extra; a replica that starts later comes up routed to the current tier.
- ``instant`` (the oracle) makes every replica ready at once, so there is no overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fulcrum.policy.rollout import mixed_capacity, old_replicas_to_keep
from fulcrum.policy.types import DEFAULT_TUNING, Config, Placement, ReplicaGroup

DEFAULT_HOT_SWITCH_SECONDS = DEFAULT_TUNING.hot_switch_seconds
"""What the policy assumes a hot switch takes (``Tuning.hot_switch_seconds``): one number for both."""


@dataclass
class _Group:
    placement: Placement
    """The tier its requests go to, on its pool."""
    count: int
    ready_at: float
    started_at: float
    created_for: str
    """The tier its Deployment was created for (differs from ``placement.tier`` after a hot switch)."""


@dataclass(frozen=True)
class Part:
    """Replicas that serve together: one placement's ready replicas (two parts while a cold switch rolls)."""

    placement: Placement
    ready: int
    key: str
    """Identity of the pods (their queue carries over a hot switch): the pool if hot, else the placement."""
    previous_tier: str | None = None
    """During a hot switch: the tier served until ``switch_seconds`` into the step."""
    switch_seconds: float = 0.0


@dataclass(frozen=True)
class FleetRow:
    """One placement that exists, for ``fulcrum simulate --fleet``."""

    tier: str
    """The tier its Deployment was created for."""
    node_pool: str
    ready: int
    starting: int
    serving_tier: str
    """The tier its requests go to (differs from ``tier`` after a hot switch)."""


class FleetModel:
    """Replica groups and the placement that serves."""

    def __init__(
        self,
        startup: Mapping[str, float],
        unit_cost: Mapping[str, float],
        *,
        rolling: bool = True,
        capacity: Mapping[Placement, float] | None = None,
        hot: Mapping[str, frozenset[str]] | None = None,
        hot_switch_seconds: float = DEFAULT_HOT_SWITCH_SECONDS,
    ) -> None:
        self._startup = startup
        self._unit_cost = unit_cost
        self.rolling = rolling
        self._capacity = capacity or {}
        self.hot = {pool: tiers for pool, tiers in (hot or {}).items() if len(tiers) > 1}
        self.hot_switch_seconds = hot_switch_seconds
        self._reference: float | None = None
        self._hot_switch: dict[str, tuple[str, float]] = {}
        self.groups: list[_Group] = []
        self.serving: Placement | None = None
        self.desired: Placement | None = None
        self._switch_target = 0

    def is_hot(self, placement: Placement) -> bool:
        return placement.tier in self.hot.get(placement.node_pool, ())

    def hot_switch_from(self, current: Placement | None, target: Placement) -> bool:
        """Whether going from ``current`` to ``target`` is a hot switch (no new pods)."""
        return (
            current is not None
            and current != target
            and current.node_pool == target.node_pool
            and self.is_hot(current)
            and self.is_hot(target)
        )

    def apply(self, config: Config, now: float, instant: bool = False) -> None:
        placement = config.placement
        if self.is_hot(placement):
            self._retag(placement, now, instant)
        if placement != self.desired:
            rolled_to = self.desired
            if self.rolling and placement == self.serving and rolled_to is not None and self.ready(rolled_to, now):
                # back to the placement a roll was leaving: the one it rolled to is now the one left, and is rolled
                # down as the operator rolls any Deployment that is not the choice (not dropped at once)
                self.serving = rolled_to
            # the old placement keeps what serves; its replicas still starting would never serve: dropped
            self.groups = [
                g
                for g in self.groups
                if g.placement == placement or (g.placement == self.serving and g.ready_at <= now)
            ]
            self.desired = placement
            self._switch_target = config.replicas
            if self.serving is not None and self.serving != placement:
                self._reference = mixed_capacity(
                    self.ready(self.serving, now),
                    self._capacity.get(self.serving, 0.0),
                    self.ready(placement, now),
                    self._capacity.get(placement, 0.0),
                )
        elif self.serving != placement:
            self._switch_target = min(self._switch_target, config.replicas)
        have = sum(g.count for g in self.groups if g.placement == placement)
        if config.replicas > have:
            delay = 0.0 if instant else self._startup.get(placement.node_pool, 0.0)
            created_for = next((g.created_for for g in self.groups if g.placement == placement), placement.tier)
            self.groups.append(_Group(placement, config.replicas - have, now + delay, now, created_for))
        elif config.replicas < have:
            self._remove(placement, have - config.replicas)
        if self.serving is None or instant:  # instant: no overlap, the old placement goes at once
            self.groups = [g for g in self.groups if g.placement == placement]
            self.serving = placement
        self.advance(now)

    def _retag(self, placement: Placement, now: float, instant: bool) -> None:
        """Route every replica of the pool that loads ``placement.tier`` to it (a hot switch, if it changes)."""
        pool, loaded = placement.node_pool, self.hot[placement.node_pool]
        previous = None
        for group in self.groups:
            if group.placement.node_pool == pool and group.placement.tier in loaded and group.placement != placement:
                previous = group.placement.tier
                group.placement = placement
        if self.serving is not None and self.serving.node_pool == pool and self.serving.tier in loaded:
            self.serving = placement
        if self.desired is not None and self.desired.node_pool == pool and self.desired.tier in loaded:
            self.desired = placement
        if previous is not None and not instant:
            self._hot_switch[pool] = (previous, now + self.hot_switch_seconds)

    def _remove(self, placement: Placement, count: int) -> None:
        for group in sorted(
            (g for g in self.groups if g.placement == placement), key=lambda g: g.ready_at, reverse=True
        ):
            taken = min(count, group.count)
            group.count -= taken
            count -= taken
            if count == 0:
                break
        self.groups = [g for g in self.groups if g.count > 0]

    def advance(self, now: float, rate: float | None = None) -> None:
        """Cut over to the desired placement once enough of it is ready (``rate``: the load, for rolling)."""
        desired = self.desired
        if desired is None or self.serving == desired:
            return
        if self.rolling:
            self._roll(desired, now, rate)
        elif self.ready(desired, now) >= self._switch_target:
            self.groups = [g for g in self.groups if g.placement == desired]
            self.serving = desired

    def _roll(self, desired: Placement, now: float, rate: float | None) -> None:
        """Cut the old placement to what it must still serve beside the new one's ready replicas."""
        old = self.serving
        assert old is not None
        old_capacity = self._capacity.get(old, 0.0)
        new_capacity = self._capacity.get(desired, 0.0)
        if old_capacity <= 0.0 or new_capacity <= 0.0:  # no estimate: the operator cuts over as blue/green does
            if self.ready(desired, now) >= self._switch_target:
                self.groups = [g for g in self.groups if g.placement == desired]
        else:
            keep = old_replicas_to_keep(
                old_ready=self.ready(old, now),
                old_capacity=old_capacity,
                new_ready=self.ready(desired, now),
                new_capacity=new_capacity,
                rate=rate,
                reference=self._reference,
            )
            have = sum(g.count for g in self.groups if g.placement == old)
            if have > keep:
                self._remove(old, have - keep)
        if not any(g.placement == old for g in self.groups):
            self.serving = desired

    def ready(self, placement: Placement, now: float) -> int:
        return sum(g.count for g in self.groups if g.placement == placement and g.ready_at <= now)

    def serving_ready(self, now: float) -> int:
        return 0 if self.serving is None else self.ready(self.serving, now)

    def serving_parts(self, now: float, step: float = 0.0) -> list[Part]:
        """The placements that take traffic over ``[now, now + step)`` and their ready replicas."""
        if self.serving is None:
            return []
        placements = [self.serving]
        if self.rolling and self.desired is not None and self.desired != self.serving:
            placements.append(self.desired)
        parts = []
        for placement in placements:
            ready = self.ready(placement, now)
            if ready <= 0 and placement != self.serving:
                continue
            hot = self.is_hot(placement)
            key = placement.node_pool if hot else str(placement)
            previous, seconds = None, 0.0
            if hot and placement.node_pool in self._hot_switch:
                old_tier, done = self._hot_switch[placement.node_pool]
                if done > now:
                    previous, seconds = old_tier, min(step, done - now)
            parts.append(Part(placement, ready, key, previous, seconds))
        return parts

    def cost_per_hour(self) -> float:
        return sum(g.count * self._unit_cost.get(g.placement.node_pool, 0.0) for g in self.groups)

    def replicas_by_tier(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for group in self.groups:
            totals[group.placement.tier] = totals.get(group.placement.tier, 0) + group.count
        return totals

    def observed(self, now: float) -> tuple[ReplicaGroup, ...]:
        """What the operator would see: per placement, ready replicas and start times of the others."""
        merged: dict[Placement, tuple[int, list[float]]] = {}
        for group in self.groups:
            ready, starting = merged.get(group.placement, (0, []))
            if group.ready_at <= now:
                ready += group.count
            else:
                starting = starting + [group.started_at] * group.count
            merged[group.placement] = (ready, starting)
        return tuple(
            ReplicaGroup(p.tier, p.node_pool, ready, tuple(starting)) for p, (ready, starting) in merged.items()
        )

    def rows(self, now: float, step: float = 0.0) -> list[FleetRow]:
        """Every placement that exists over ``[now, now + step)``: its Deployment's tier and the tier it serves."""
        merged: dict[tuple[str, str, str], list[int]] = {}
        for group in self.groups:
            serving = group.placement.tier
            switch = self._hot_switch.get(group.placement.node_pool) if self.is_hot(group.placement) else None
            if switch is not None and switch[1] > now and switch[1] - now > 0.5 * step:
                serving = switch[0]  # the hot switch completes late in the step: the old tier served most of it
            counts = merged.setdefault((group.created_for, group.placement.node_pool, serving), [0, 0])
            counts[0 if group.ready_at <= now else 1] += group.count
        return [
            FleetRow(tier, pool, ready, starting, serving)
            for (tier, pool, serving), (ready, starting) in merged.items()
        ]


__all__ = ["DEFAULT_HOT_SWITCH_SECONDS", "FleetModel", "FleetRow", "Part"]

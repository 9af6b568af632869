"""The simulated fleet: replica groups per placement, startup delays and tier/pool switches.

- New replicas serve ``replicaStartupSeconds`` after they are created (at the first step boundary after).
- Scaling down removes replicas that are still starting first (newest first), then serving ones.
- A switch to another tier or pool drops the old placement's replicas still starting at the switch (they would
  never serve); a further change of placement during a switch drops the replicas of the abandoned placement.
- ``rolling=True`` (the default, what the operator does): the old placement's ready replicas keep serving beside
  the new placement's ready ones (the Service splits traffic evenly over ready replicas), and at every step the
  old placement is cut to :func:`fulcrum.policy.rollout.old_replicas_to_keep` of it: capacity-for-capacity as new
  replicas become ready, and to what the last observed load still needs of it. The switch ends when no old
  replica is left. ``capacity`` holds the per-replica SLO capacities the operator would use (the policy's).
- ``rolling=False`` (blue/green): the old placement keeps serving, and paying, until the new placement has as
  many ready replicas as were asked for at the switch; then it goes at once (cutover).
- ``instant`` (the oracle) makes every replica ready at once, so there is no overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulcrum.policy import Config, Placement, ReplicaGroup
from fulcrum.policy.rollout import mixed_capacity, old_replicas_to_keep


@dataclass
class _Group:
    placement: Placement
    count: int
    ready_at: float
    started_at: float


class SimFleet:
    """Replica groups and the placement that serves."""

    def __init__(
        self,
        startup: dict[str, float],
        unit_cost: dict[str, float],
        *,
        rolling: bool = True,
        capacity: dict[Placement, float] | None = None,
    ) -> None:
        self._startup = startup
        self._unit_cost = unit_cost
        self.rolling = rolling
        self._capacity = capacity or {}
        self._reference: float | None = None
        self.groups: list[_Group] = []
        self.serving: Placement | None = None
        self.desired: Placement | None = None
        self._switch_target = 0

    def apply(self, config: Config, now: float, instant: bool = False) -> None:
        placement = config.placement
        if placement != self.desired:
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
            self.groups.append(_Group(placement, config.replicas - have, now + delay, now))
        elif config.replicas < have:
            self._remove(placement, have - config.replicas)
        if self.serving is None or instant:  # instant: no overlap, the old placement goes at once
            self.groups = [g for g in self.groups if g.placement == placement]
            self.serving = placement
        self.advance(now)

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

    def serving_parts(self, now: float) -> list[tuple[Placement, int]]:
        """The placements that take traffic and their ready replicas (two while a rolling switch runs)."""
        if self.serving is None:
            return []
        parts = [(self.serving, self.ready(self.serving, now))]
        if self.rolling and self.desired is not None and self.desired != self.serving:
            ready = self.ready(self.desired, now)
            if ready > 0:
                parts.append((self.desired, ready))
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

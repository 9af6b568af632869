"""The simulated fleet: replica groups per placement, startup delays and blue/green switches.

- New replicas serve ``replicaStartupSeconds`` after they are created (at the first step boundary after).
- Scaling down removes replicas that are still starting first (newest first), then serving ones.
- A switch to another tier or pool keeps the old placement's ready replicas serving, and paying, until the new
  placement has as many ready replicas as were asked for at the switch; then they go at once (cutover). The old
  placement's replicas still starting at the switch are dropped at once (they would never serve).
- A further change of placement during a switch drops the replicas of the abandoned placement at once.
- ``instant`` (the oracle) makes every replica ready at once, so there is no overlap.

``rolling=True`` models a rolling switch instead (a proposal, not what DESIGN specifies): the old placement's
ready replicas keep serving beside the new placement's ready ones (traffic split by capacity), and each time new
replicas become ready, old replicas worth at most the same SLO capacity are removed, as are old replicas the
current load (the last observed rate) no longer needs. The switch ends when no old replica is left.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulcrum.policy import Config, Placement, ReplicaGroup


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
        rolling: bool = False,
        capacity: dict[Placement, float] | None = None,
    ) -> None:
        self._startup = startup
        self._unit_cost = unit_cost
        self.rolling = rolling
        self._capacity = capacity or {}
        self._credited = 0
        self._credit = 0.0
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
            self._credited = self.ready(placement, now)
            self._credit = 0.0
        elif self.serving != placement:
            self._switch_target = min(self._switch_target, config.replicas)
        have = sum(g.count for g in self.groups if g.placement == placement)
        if config.replicas > have:
            delay = 0.0 if instant else self._startup.get(placement.node_pool, 0.0)
            self.groups.append(_Group(placement, config.replicas - have, now + delay, now))
        elif config.replicas < have:
            self._remove(placement, have - config.replicas)
        if self.serving is None:
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
        """Remove old replicas as new capacity becomes ready, and any the load no longer needs."""
        old = self.serving
        assert old is not None
        ready = self.ready(desired, now)
        old_unit = self._capacity.get(old, 0.0)
        new_capacity = ready * self._capacity.get(desired, 0.0)
        if ready > self._credited:
            self._credit += (ready - self._credited) * self._capacity.get(desired, 0.0)
            self._credited = ready
            removable = int(self._credit // old_unit) if old_unit > 0 else self.ready(old, now)
            removable = min(removable, self.ready(old, now))
            if removable:
                self._credit -= removable * old_unit
                self._remove(old, removable)
        old_ready = self.ready(old, now)
        if rate is not None:  # the operator scales the old placement to what the load still needs of it
            spare = int((new_capacity + old_ready * old_unit - rate) // old_unit) if old_unit > 0 else old_ready
            if spare > 0:
                self._remove(old, min(spare, old_ready))
        everything = sum(g.count for g in self.groups if g.placement == desired)
        if rate is None and ready >= everything and new_capacity >= self.ready(old, now) * old_unit:
            self.groups = [g for g in self.groups if g.placement == desired]
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

"""The simulated fleet: replica groups per placement, startup delays and blue/green switches.

- New replicas serve ``replicaStartupSeconds`` after they are created (at the first step boundary after).
- Scaling down removes replicas that are still starting first (newest first), then serving ones.
- A switch to another tier or pool keeps the old placement's ready replicas serving, and paying, until the new
  placement has as many ready replicas as were asked for at the switch; then they go at once (cutover). The old
  placement's replicas still starting at the switch are dropped at once (they would never serve).
- A further change of placement during a switch drops the replicas of the abandoned placement at once.
- ``instant`` (the oracle) makes every replica ready at once, so there is no overlap.
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

    def __init__(self, startup: dict[str, float], unit_cost: dict[str, float]) -> None:
        self._startup = startup
        self._unit_cost = unit_cost
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

    def advance(self, now: float) -> None:
        """Cut over to the desired placement once enough of it is ready."""
        desired = self.desired
        if desired is None or self.serving == desired:
            return
        if self.ready(desired, now) >= self._switch_target:
            self.groups = [g for g in self.groups if g.placement == desired]
            self.serving = desired

    def ready(self, placement: Placement, now: float) -> int:
        return sum(g.count for g in self.groups if g.placement == placement and g.ready_at <= now)

    def serving_ready(self, now: float) -> int:
        return 0 if self.serving is None else self.ready(self.serving, now)

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

"""Why a run's requests were late: the SLO's own tail, a load above anything seen before, a fleet at its budget,
or none of these.

A policy sees the load only up to now, and a replica it starts serves a start-up later. So a load well above
anything seen one start-up earlier can be met in time only by a fleet that already kept room for it: a first burst
or flash sale is late for any policy that sizes on what it has seen, unless it pays for that room all along (the
``static`` baseline does, sized by the trace's own peak, which it is told). Late requests of a run fall into one
class each, in this order:

- **tail**: late requests of a step that met the SLO's percentile (a p99 SLO lets 1 % of requests be slower; a
  fleet near its capacity has that many);
- **unforeseen**: the load (the highest since the late stretch began, whose backlog it leaves) is more than
  :data:`UNFORESEEN_RISE` times the highest seen up to one start-up of the fastest pool earlier;
- **at the budget**: the fleet costs within the cheapest replica of the budget: it could not grow;
- **other**: everything else, the policy's own doing (sized or scaled in too tight, a switch at a bad time).

The classes explain misses; they do not excuse them: the targets count every late request. Pure: arrays in,
shares out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fulcrum.simulate.engine import Run
    from fulcrum.simulate.policies import Setting

UNFORESEEN_RISE = 1.1
"""A load this many times the highest seen a start-up earlier is unforeseen (noise stays within it)."""
BUDGET_EPSILON = 1e-9


@dataclass(frozen=True)
class Misses:
    """A run's late requests by class, each as a share of all its requests (they add up to 1 - attainment)."""

    tail: float = 0.0
    unforeseen: float = 0.0
    at_budget: float = 0.0
    other: float = 0.0

    @property
    def total(self) -> float:
        return self.tail + self.unforeseen + self.at_budget + self.other

    def describe(self) -> str:
        """One line: ``late 4.12 %: 0.10 tail, 3.80 unforeseen, 0.00 at the budget, 0.22 other``."""
        return (
            f"late {100 * self.total:.2f} %: {100 * self.tail:.2f} tail, {100 * self.unforeseen:.2f} unforeseen, "
            f"{100 * self.at_budget:.2f} at the budget, {100 * self.other:.2f} other"
        )

    def to_dict(self) -> dict[str, float]:
        """``fulcrum simulate --json``'s ``lateRequests``: each class as a share of all requests."""
        return {
            "tail": round(self.tail, 6),
            "unforeseen": round(self.unforeseen, 6),
            "atBudget": round(self.at_budget, 6),
            "other": round(self.other, 6),
        }


def attribute(
    rates: Sequence[float],
    late: Sequence[float],
    cost_per_hour: Sequence[float],
    *,
    requests: float,
    step_seconds: float,
    percentile: float,
    startup_seconds: float,
    budget: float | None,
    cheapest_replica: float,
    rise: float = UNFORESEEN_RISE,
) -> Misses:
    """Split the late requests of a run (per-step series of equal length) into :class:`Misses`.

    ``requests``: all the run's requests; ``percentile``: the SLO's (99 for p99); ``startup_seconds``: the
    fastest pool's replica start-up (the most generous lead a policy could have had); ``cheapest_replica``: the
    cost per hour of one replica on the cheapest pool.
    """
    steps = len(rates)
    if len(late) != steps or len(cost_per_hour) != steps:
        raise ValueError(f"series of unequal length: {steps} rates, {len(late)} late, {len(cost_per_hour)} costs")
    if steps == 0 or requests <= 0.0:
        return Misses()
    allowance = max(0.0, 1.0 - percentile / 100.0)
    lead = max(0, math.ceil(startup_seconds / step_seconds - 1e-9))
    seen = _running_max(rates)
    tail = unforeseen = at_budget = other = 0.0
    stretch_peak = 0.0
    for k in range(steps):
        if late[k] <= allowance * rates[k] * step_seconds * (1.0 + 1e-9):
            tail += late[k]
            stretch_peak = 0.0
            continue
        stretch_peak = max(stretch_peak, rates[k])
        known = seen[k - lead] if k - lead >= 0 else rates[0]  # the first rate is what the fleet was placed for
        if stretch_peak > rise * known:
            unforeseen += late[k]
        elif budget is not None and cost_per_hour[k] + cheapest_replica > budget + BUDGET_EPSILON:
            at_budget += late[k]
        else:
            other += late[k]
    return Misses(tail / requests, unforeseen / requests, at_budget / requests, other / requests)


def misses_of(run: Run, setting: Setting) -> Misses:
    """:func:`attribute` for a simulated run: the fastest pool's start-up, the cheapest replica, the run's budget."""
    pools = setting.spec.node_pools
    return attribute(
        run.rates.tolist(),
        run.late.tolist(),
        run.cost_per_hour.tolist(),
        requests=run.requests,
        step_seconds=setting.step_seconds,
        percentile=setting.percentile,
        startup_seconds=min(float(p.replica_startup_seconds) for p in pools),
        budget=setting.budget,
        cheapest_replica=min(float(p.cost_per_hour) for p in pools),
    )


def _running_max(values: Sequence[float]) -> list[float]:
    out: list[float] = []
    highest = -math.inf
    for value in values:
        highest = max(highest, value)
        out.append(highest)
    return out


__all__ = ["UNFORESEEN_RISE", "Misses", "attribute", "misses_of"]

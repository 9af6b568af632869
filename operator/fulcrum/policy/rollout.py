"""Rolling switches: how many replicas of the placement being left must still serve. Pure.

During a switch both placements sit behind the model's one Service, and a Service spreads requests evenly over
its ready endpoints (kube-proxy; ``fulcrum load`` does round robin), not by capacity. So ``k`` old and ``n`` new
ready replicas serve within the SLO up to ``(k + n) x`` the smaller per-replica capacity of the placements that
have ready replicas (:func:`mixed_capacity`): a fast new replica in a slow fleet is paid for but only takes a
slow replica's share, and a slow new replica in a fast fleet *lowers* what the fleet serves.

The operator (``fulcrum.reconcile.plan``) and the simulator (``fulcrum.simulate.fleet``) both call
:func:`old_replicas_to_keep` with the policy's per-replica capacity estimates.
"""

from __future__ import annotations

from fulcrum.api import ModelDeploymentSpec
from fulcrum.policy.capacity import ProfileTable
from fulcrum.policy.plan import EPSILON, Planner
from fulcrum.policy.types import DEFAULT_TUNING, Placement, PolicyState, Tuning


def mixed_capacity(old_ready: int, old_capacity: float, new_ready: int, new_capacity: float) -> float:
    """Requests per second ``old_ready`` + ``new_ready`` replicas serve within the SLO under an even split."""
    capacities = [c for count, c in ((old_ready, old_capacity), (new_ready, new_capacity)) if count > 0]
    return (old_ready + new_ready) * min(capacities) if capacities else 0.0


def old_replicas_to_keep(
    *,
    old_ready: int,
    old_capacity: float,
    new_ready: int,
    new_capacity: float,
    rate: float | None,
    reference: float | None,
) -> int:
    """The fewest ready replicas of the old placement that, beside ``new_ready`` new ones, still serve what is needed.

    What is needed is the smaller of ``reference`` (what the fleet served within the SLO when the switch started:
    the old placement only goes capacity-for-capacity as new replicas become ready) and ``rate`` (the load
    observed now: old replicas the load no longer needs go at once). ``rate`` None: no metrics, only the first
    applies. ``reference`` None (not known, e.g. after a restart): what the fleet serves now, so only the load
    lets old replicas go. Never more than ``old_ready`` (replicas still starting would never serve), and at least
    one while no new replica is ready. 0 means the old placement can go.
    """
    old_ready = max(0, old_ready)
    new_ready = max(0, new_ready)
    need = mixed_capacity(old_ready, old_capacity, new_ready, new_capacity) if reference is None else reference
    if rate is not None:
        need = min(need, max(0.0, rate))
    first = 0 if new_ready > 0 else min(1, old_ready)
    for keep in range(first, old_ready + 1):
        if mixed_capacity(keep, old_capacity, new_ready, new_capacity) >= need - EPSILON:
            return keep
    return old_ready


def replica_capacities(
    spec: ModelDeploymentSpec, profiles: ProfileTable, state: PolicyState, tuning: Tuning = DEFAULT_TUNING
) -> dict[Placement, float]:
    """The policy's estimate of what one replica of each candidate serves within the SLO (margin, correction)."""
    target = spec.slo.latency_ms * (1.0 - tuning.latency_margin)
    planner = Planner(spec, profiles, state, target, float(spec.slo.percentile))
    return {c.placement: c.capacity for c in planner.candidates}


__all__ = ["mixed_capacity", "old_replicas_to_keep", "replica_capacities"]

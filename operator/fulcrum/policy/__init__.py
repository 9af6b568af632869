"""fulcrum.policy: the pure control logic that chooses tier x node pool x replicas.

One call per control tick::

    decision = decide(spec, profiles, observation, state, now)

Inputs (no I/O, no clock, no Kubernetes client; the same inputs always give the same Decision):

- ``spec``: the :class:`~fulcrum.api.ModelDeploymentSpec` (SLO, budget, pools, scaling bounds, objective).
- ``profiles``: a :class:`ProfileTable` of the **Ready** tiers only, built with
  ``ProfileTable.from_tiers(status.tiers that are Ready)`` or ``ProfileTable.from_file(PROFILES.json)``.
  Only tiers (and pools) with a profile are candidates.
- ``observation``: an :class:`Observation` of the last tick (request rate, latency at the SLO percentile,
  queue ms, ``complete``); any field, or the whole observation, may be None when there was no data. None means
  the load is unknown (never zero): the policy holds. ``complete=False`` (some pods did not report) makes the
  rate a lower bound: it may scale up, never in, and starts no switch. Scale-in needs complete observations
  over the whole ``scaleDownStabilizationSeconds`` window (``PolicyState.observed_since``).
- ``state``: the :class:`PolicyState` returned by the previous call (``PolicyState()`` the first time, or
  ``PolicyState.from_dict(persisted)``), with ``fleet`` replaced by what runs now:
  ``state.with_fleet([ReplicaGroup(tier, pool, ready=..., starting=(start times...)), ...])``.
- ``now``: seconds on any monotonic clock shared with the start times and the persisted state.

Output: a :class:`Decision` with ``action`` (ScaleUp | ScaleDown | SwitchTier | SwitchPool | Hold), the target
``tier``, ``node_pool`` and ``replicas``, a CamelCase ``code`` (e.g. ``BudgetExhausted``), a one-sentence
``reason`` for status and Events, and ``state``: persist ``decision.state.to_dict()`` (JSON) and pass it back
next tick.

Types:

- :class:`Observation` ``(requests_per_second, latency_ms, queue_ms, complete=True)``: floats or None.
- :class:`Config` ``(tier, node_pool, replicas)``, printed as ``fp32@l4x3``; :class:`Placement` ``(tier, node_pool)``.
- :class:`ReplicaGroup` ``(tier, node_pool, ready, starting)``: replicas that exist, ``starting`` holds the start
  times of those not serving yet.
- :class:`PolicyState`: ``desired`` (the Config last decided), ``fleet`` (observed ReplicaGroups),
  ``last_switch_at``, ``last_tick_at``, ``rate_history`` ((time, rps) pairs for the trend),
  ``scale_down_window`` ((time, recommended replicas) pairs), ``corrections`` (``"tier@pool"`` -> observed
  speed / profiled speed, an EWMA), ``observed_since`` (start of the unbroken run of complete observations).
  ``to_dict()`` / ``from_dict()`` round-trip through JSON.
- :class:`Decision` as above; :class:`Tuning` holds the policy's knobs (margins, windows, hysteresis).

Rules (see ``docs/policy.md``):

- Capacity of one replica of a tier on a pool is the highest profiled rate whose latency at the SLO
  percentile stays under ``latencyMs x (1 - latency_margin)`` (quantiles interpolated in ``-ln(1-p)``,
  rates linearly, measured quantiles read as their lower non-decreasing envelope), times the observed speed
  correction.
- Demand is the current rate plus the rising trend (steeper of a 120 s and a 30 s slope) extrapolated over the
  pool's ``replicaStartupSeconds`` and one tick, plus ``headroom``. Scale up at once; scale down only to what
  the forecast and the largest recommendation for the load seen in the last ``scaleDownStabilizationSeconds``
  need; always within min/max replicas and the budget, keeping room for a switch away when one can serve more.
- ``Quality``: the most accurate candidate meeting the demand within the budget, on its cheapest pool.
  When load rises toward the ceiling the policy leaves a tier while the overlap (old and new replicas both
  paid) still fits; it comes back when the better tier fits with hysteresis and the overlap fits. ``Cost``:
  the cheapest candidate meeting the demand. A switch needs ``tierSwitchCooldownSeconds`` since the last one
  and no switch in progress (the only exception: the desired tier stopped being Ready).
- Nothing meets the SLO within the budget: stay within the budget with what serves most requests in time
  (code ``BudgetExhausted``). If ``minReplicas`` alone costs more than the budget, ``minReplicas`` wins.
- The overlap of a switch counts the placement being left at its ready replicas (the operator drops its
  starting ones) plus what the new placement must start with: switches roll (``Tuning.rolling_switch``, the
  default; ``fulcrum.policy.rollout``), so one new replica when each new replica serves at least as much for no
  more cost, else enough new replicas to bring the mixed fleet up to the new fleet's size, or the whole new fleet
  if a new replica costs more (and always with ``rolling_switch=False``, blue/green).
- Rolling: :func:`fulcrum.policy.rollout.old_replicas_to_keep` says how many ready replicas of the placement
  being left still serve (the Service splits requests evenly): the operator and the simulator both call it.
"""

from fulcrum.policy.capacity import Curve, ProfileTable
from fulcrum.policy.decide import decide
from fulcrum.policy.plan import Candidate, Option, Planner
from fulcrum.policy.quantiles import latency_at, share_within
from fulcrum.policy.types import (
    DEFAULT_TUNING,
    Action,
    Config,
    Decision,
    Observation,
    Placement,
    PolicyState,
    ReplicaGroup,
    Tuning,
)

__all__ = [
    "DEFAULT_TUNING",
    "Action",
    "Candidate",
    "Config",
    "Curve",
    "Decision",
    "Observation",
    "Option",
    "Placement",
    "Planner",
    "PolicyState",
    "ProfileTable",
    "ReplicaGroup",
    "Tuning",
    "decide",
    "latency_at",
    "share_within",
]

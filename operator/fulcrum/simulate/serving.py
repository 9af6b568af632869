"""The serving model: what share of a step's requests a fleet serves within the SLO.

A fluid model on top of the profile curve itself (the profile is taken as the truth, optionally with the
fleet running ``speed`` times as fast as profiled):

- Load is spread evenly over the ready replicas of the serving placement (round robin).
- Below saturation (the profile's highest rate) a request's latency follows the profile's quantiles at the
  per-replica rate; the share within the SLO is read from them (interpolated in ``-ln(1 - p)``).
- Above saturation the excess joins one FIFO backlog drained at the saturated rate; every request then
  waits ``backlog / drain rate`` on top of the saturated latency (so overload makes *all* requests late,
  as in a real FIFO server, not only the excess). Requests that would wait longer than ``timeout`` seconds
  are dropped (a ranking call has a deadline of a few hundred ms; Triton's queue policy can enforce one):
  the backlog is capped there and those requests count as missed.
- A step is integrated in ``substeps`` slices; the observation for the policy is the step's rate, latency at
  the SLO percentile (queue wait included) and mean queue wait.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulcrum.policy import Curve


@dataclass(frozen=True)
class StepOutcome:
    requests: float
    in_time: float
    latency_ms: float
    queue_ms: float
    backlog: float


def serve_step(
    curve: Curve | None,
    ready: int,
    rate: float,
    backlog: float,
    *,
    seconds: float,
    slo_ms: float,
    percentile: float,
    timeout_seconds: float = 0.25,
    substeps: int = 10,
) -> StepOutcome:
    requests = rate * seconds
    drain = 0.0 if curve is None or ready <= 0 else ready * curve.saturation_rps
    if curve is not None and ready > 0 and backlog <= 0.0 and rate <= drain:
        per_replica = rate / ready
        share = curve.share_within(per_replica, slo_ms)
        return StepOutcome(requests, requests * share, curve.latency_at(per_replica, percentile), 0.0, 0.0)
    slice_seconds = seconds / substeps
    in_time = 0.0
    wait_total = 0.0
    cap = drain * timeout_seconds
    for _ in range(substeps):
        after = min(cap, max(0.0, backlog + (rate - drain) * slice_seconds)) if drain > 0 else 0.0
        if drain <= 0.0 or curve is None:
            wait = timeout_seconds
            share = 0.0
        elif backlog <= 0.0 and after <= 0.0:
            wait = 0.0
            share = curve.share_within(rate / ready, slo_ms)
        else:
            wait = 0.5 * (backlog + after) / drain
            share = curve.share_within(curve.saturation_rps, slo_ms - wait * 1000.0)
        in_time += rate * slice_seconds * share
        wait_total += wait
        backlog = after
    queue_ms = 1000.0 * wait_total / substeps
    if curve is None or ready <= 0:
        return StepOutcome(requests, in_time, queue_ms, queue_ms, backlog)
    latency = queue_ms + curve.latency_at(min(rate / ready, curve.saturation_rps), percentile)
    return StepOutcome(requests, in_time, latency, queue_ms, backlog)

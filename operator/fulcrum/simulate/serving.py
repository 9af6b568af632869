"""The serving model: what share of a step's requests a fleet serves within the SLO.

A fluid model on top of the profile curve itself (the profile is taken as the truth, optionally with the
fleet running ``speed`` times as fast as profiled):

- Load is spread evenly over the ready replicas (round robin).
- Below saturation (the profile's highest rate) a request's latency follows the profile's quantiles at the
  per-replica rate; the share within the SLO is read from them (interpolated in ``-ln(1 - p)``).
- Above saturation the excess joins a FIFO backlog drained at the saturated rate. Without a queue timeout
  (``serving.dynamicBatching.queueTimeoutMicroseconds`` absent) every request then waits ``backlog / drain
  rate`` on top of the saturated latency (so overload makes *all* requests late, as in a real FIFO server, not
  only the excess); requests that would wait longer than ``timeout`` seconds (a caller's deadline) are dropped:
  the backlog is capped there and those requests count as missed.
- With a queue timeout ``T`` (Triton's ``default_queue_policy``, REJECT) a request that waited longer than
  ``T`` is rejected (missed). A request's latency is taken as its queue wait plus a service time distributed
  as the profile's unloaded latency (its lowest rate): the profile's growth with load is queueing (true of the
  example profiles' model; a real server whose batches take longer under load serves slower than this). So:
  below saturation a request is served if its latency is at most ``T`` + the unloaded median, and in time if
  also at most the SLO; above saturation the backlog is capped at ``T`` of draining, the excess is rejected,
  and a served request is in time if its service time fits in the SLO after its wait.
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
    queue_timeout_seconds: float | None = None,
    substeps: int = 10,
) -> StepOutcome:
    requests = rate * seconds
    drain = 0.0 if curve is None or ready <= 0 else ready * curve.saturation_rps
    shed = queue_timeout_seconds is not None and curve is not None
    # with a queue timeout, a request is served only if it waited at most T: latency <= T + unloaded median
    served_within = slo_ms
    if shed and curve is not None and queue_timeout_seconds is not None:
        served_within = min(slo_ms, 1000.0 * queue_timeout_seconds + curve.latency_at(curve.rates[0], 50.0))
    if curve is not None and ready > 0 and backlog <= 0.0 and rate <= drain:
        per_replica = rate / ready
        share = curve.share_within(per_replica, served_within)
        return StepOutcome(requests, requests * share, curve.latency_at(per_replica, percentile), 0.0, 0.0)
    slice_seconds = seconds / substeps
    in_time = 0.0
    wait_total = 0.0
    limit = queue_timeout_seconds if shed and queue_timeout_seconds is not None else timeout_seconds
    cap = drain * limit
    for _ in range(substeps):
        arrivals = rate * slice_seconds
        queued = backlog + (rate - drain) * slice_seconds
        after = min(cap, max(0.0, queued)) if drain > 0 else 0.0
        rejected = max(0.0, queued - cap) if drain > 0 and shed else 0.0
        if drain <= 0.0 or curve is None:
            wait = limit
            share = 0.0
        elif backlog <= 0.0 and after <= 0.0:
            wait = 0.0
            share = curve.share_within(rate / ready, served_within)
        else:
            wait = 0.5 * (backlog + after) / drain
            if shed:  # served after waiting, then an unloaded service time
                share = curve.share_within(curve.rates[0], slo_ms - wait * 1000.0)
            else:
                share = curve.share_within(curve.saturation_rps, slo_ms - wait * 1000.0)
        in_time += max(0.0, arrivals - rejected) * share
        wait_total += wait
        backlog = after
    queue_ms = 1000.0 * wait_total / substeps
    if curve is None or ready <= 0:
        return StepOutcome(requests, in_time, queue_ms, queue_ms, backlog)
    latency = queue_ms + curve.latency_at(min(rate / ready, curve.saturation_rps), percentile)
    return StepOutcome(requests, in_time, latency, queue_ms, backlog)

"""The SLO-aware search of Triton's serving knobs (pure: the measuring is passed in).

For one tier on one pool, a few configs are measured and the one that serves the most requests per second
within the SLO is kept. The knobs are those Triton's model config exposes and that move capacity under a
latency bound at least as much as precision does:

- ``instances``: model instances per replica (``instance_group.count``);
- ``max_queue_delay_us``: how long the dynamic batcher may hold a request to grow a batch;
- ``preferred``: preferred batch sizes (the batcher dispatches as soon as it has one of them).

The search is bounded: it starts from the spec's config and moves one knob at a time (coordinate descent:
instances, then queue delay, then preferred sizes), keeping a change only when it served more; at most
``max_candidates`` configs are measured, the start included. Candidate values are derived from the start,
the SLO and the model's ``maxBatchSize``, so the same spec searches the same grid.

Capacity within the SLO (:func:`capacity_within_slo`) is read from open-loop points the same way the policy
reads a profile: the highest offered rate whose latency at the SLO percentile is within the SLO, interpolated
linearly towards the first rate that is not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Knobs:
    """One serving config of a tier."""

    instances: int
    max_queue_delay_us: int
    preferred: tuple[int, ...] = ()

    def describe(self) -> str:
        preferred = ",".join(map(str, self.preferred)) or "-"
        return f"instances={self.instances} delay={self.max_queue_delay_us}us preferred={preferred}"


@dataclass(frozen=True)
class Point:
    """One open-loop measurement: offered rate, latency at the SLO percentile, and whether it kept up."""

    rate: float
    latency_ms: float
    saturated: bool = False


def capacity_within_slo(points: Sequence[Point], slo_ms: float) -> float:
    """The most requests per second served within ``slo_ms`` (0.0 when even the lowest rate misses it).

    A point meets the SLO when its latency is within it and the server kept up. Between the highest point
    that meets it and the next higher one that does not, the capacity is interpolated linearly in latency
    (a saturated point counts as missing at its rate, without interpolation).
    """
    ordered = sorted(points, key=lambda p: p.rate)
    best = 0.0
    for i, point in enumerate(ordered):
        if point.saturated or point.latency_ms > slo_ms:
            if i == 0 or ordered[i - 1].saturated or ordered[i - 1].latency_ms > slo_ms or point.saturated:
                break
            low = ordered[i - 1]
            share = (slo_ms - low.latency_ms) / max(point.latency_ms - low.latency_ms, 1e-9)
            best = low.rate + share * (point.rate - low.rate)
            break
        best = point.rate
    return best


def axes(start: Knobs, *, max_batch_size: int, slo_ms: float, max_instances: int) -> list[tuple[str, list[Knobs]]]:
    """The values each knob is tried at, in search order (each list leaves the other knobs at ``start``'s).

    - instances: 1, 2 and 4, up to ``max_instances`` (the cores of a CPU pool, 4 on a GPU);
    - queue delay: none, a 20th and an 8th of the SLO (never above a quarter of it);
    - preferred batch sizes: none, and half and all of ``maxBatchSize``.
    """
    instances = [n for n in (1, 2, 4) if n <= max(1, max_instances)]
    slo_us = int(slo_ms * 1000)
    delays = sorted({0, slo_us // 20, slo_us // 8})
    preferred: list[tuple[int, ...]] = [(), tuple(sorted({max(1, max_batch_size // 2), max_batch_size}))]
    return [
        ("instances", [replace(start, instances=n) for n in instances]),
        ("maxQueueDelay", [replace(start, max_queue_delay_us=d) for d in delays if d <= slo_us // 4]),
        ("preferredBatchSizes", [replace(start, preferred=p) for p in preferred]),
    ]


@dataclass(frozen=True)
class Outcome:
    best: Knobs
    best_capacity: float | None
    measured: list[tuple[Knobs, float | None]]
    """Every config measured, in order, with its capacity (None: it could not be measured, e.g. did not load)."""


Measure = Callable[[Knobs], float | None]


MIN_GAIN = 0.1
"""A candidate replaces the best so far only when it served this much more (10 %): measurements are noisy,
and a change the noise could explain is not worth serving."""


def coordinate_search(
    start: Knobs,
    knob_axes: Sequence[tuple[str, Sequence[Knobs]]],
    measure: Measure,
    *,
    max_candidates: int,
    min_gain: float = MIN_GAIN,
    confirm: bool = True,
) -> Outcome:
    """Measure ``start``, then each axis's values around the best so far; keep clear improvements.

    A value of a later axis is built on the best config found so far (the earlier axes' winners). Configs
    already measured are not measured again; at most ``max_candidates`` are measured in all. A candidate
    becomes the best when its capacity exceeds the best's by more than ``min_gain`` (or the best has none).

    ``confirm``: when the best is not ``start``, both are measured once more and the best is kept only if the
    mean of its two measurements still beats the start's by ``min_gain`` (the best of several noisy
    measurements is biased upwards: this is the winner's curse). Their recorded capacities are those means.
    """
    measured: dict[Knobs, float | None] = {}
    order: list[Knobs] = []

    def run(knobs: Knobs) -> float | None:
        if knobs not in measured:
            measured[knobs] = measure(knobs)
            order.append(knobs)
        return measured[knobs]

    best = start
    best_capacity = run(start)
    for _name, values in knob_axes:
        for value in values:
            candidate = _on(best, start, value)
            if candidate in measured:
                continue
            if len(order) >= max_candidates:
                break
            capacity = run(candidate)
            if capacity is not None and (best_capacity is None or capacity > best_capacity * (1 + min_gain)):
                best, best_capacity = candidate, capacity
    start_capacity = measured[start]
    if confirm and best != start and best_capacity is not None and start_capacity is not None:
        again_start, again_best = measure(start), measure(best)
        start_mean = (start_capacity + (again_start or 0.0)) / 2
        best_capacity = (best_capacity + (again_best or 0.0)) / 2
        measured[start], measured[best] = start_mean, best_capacity
        if best_capacity <= start_mean * (1 + min_gain):
            best, best_capacity = start, start_mean
    return Outcome(best, best_capacity, [(k, measured[k]) for k in order])


def _on(best: Knobs, start: Knobs, value: Knobs) -> Knobs:
    """``value`` differs from ``start`` in one knob: that knob's value applied to ``best``."""
    if value.instances != start.instances:
        return replace(best, instances=value.instances)
    if value.max_queue_delay_us != start.max_queue_delay_us:
        return replace(best, max_queue_delay_us=value.max_queue_delay_us)
    if value.preferred != start.preferred:
        return replace(best, preferred=value.preferred)
    return best


def meets(point: Point, slo_ms: float) -> bool:
    return not point.saturated and point.latency_ms <= slo_ms


def find_capacity(
    measure: Callable[[float], Point], upper: float, slo_ms: float, *, max_points: int = 5
) -> tuple[float, list[Point]]:
    """Capacity within the SLO from a few open-loop points, ``upper`` (a closed-loop estimate) as the scale.

    Half of ``upper`` first; then up by 1.4x while the SLO holds (down by 2x while it does not) until the
    bracket is found, then once more at the bracket's geometric middle. At most ``max_points`` points.
    """
    rate = max(upper * 0.5, 1.0)
    points = [measure(rate)]
    up = meets(points[0], slo_ms)
    while len(points) < max_points:
        rate = rate * 1.4 if up else rate / 2
        if rate < 1.0:
            break
        points.append(measure(rate))
        if meets(points[-1], slo_ms) != up:
            break
    passing = [p.rate for p in points if meets(p, slo_ms)]
    failing = [p.rate for p in points if not meets(p, slo_ms)]
    if passing and failing and len(points) < max_points:
        low = max(passing)
        high = min((r for r in failing if r > low), default=None)
        if high is not None:
            points.append(measure((low * high) ** 0.5))
    return capacity_within_slo(points, slo_ms), points

"""Latency quantiles as a distribution: the latency at any percentile, and the share of requests within a latency.

A profile point carries p50/p90/p95/p99. Between and beyond them the latency is taken to be linear in the
tail coordinate ``z = -ln(1 - p)`` (exact for an exponential tail, a good fit for queueing delay); so p99.9 is
extrapolated from the p95-p99 slope and p97 lies between p95 and p99. The inverse of the same curve gives
the share of requests served within a latency (the CDF).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# z = -ln(1 - p) of the profile's quantiles p50, p90, p95, p99
KNOTS_Z: tuple[float, float, float, float] = (math.log(2.0), math.log(10.0), math.log(20.0), math.log(100.0))

Quantiles = tuple[float, float, float, float]
"""Latency in milliseconds at p50, p90, p95 and p99."""


def monotone(values: Sequence[float]) -> Quantiles:
    """Quantiles made non-decreasing (measured ones can be noisy)."""
    p50 = max(0.0, values[0])
    p90 = max(p50, values[1])
    p95 = max(p90, values[2])
    p99 = max(p95, values[3])
    return (p50, p90, p95, p99)


def z_of(percentile: float) -> float:
    """The tail coordinate of a percentile in (0, 100)."""
    return -math.log1p(-percentile / 100.0)


def latency_at(quantiles: Quantiles, percentile: float) -> float:
    """Latency (ms) at ``percentile`` (0 < p < 100), piecewise linear in z, extrapolated at both ends."""
    z = z_of(percentile)
    for i in range(1, len(KNOTS_Z)):
        if z <= KNOTS_Z[i] or i == len(KNOTS_Z) - 1:
            z0, z1 = KNOTS_Z[i - 1], KNOTS_Z[i]
            l0, l1 = quantiles[i - 1], quantiles[i]
            return max(0.0, l0 + (l1 - l0) * (z - z0) / (z1 - z0))
    raise AssertionError("unreachable")  # pragma: no cover


def share_within(quantiles: Quantiles, latency_ms: float) -> float:
    """Share of requests (0..1) whose latency is at most ``latency_ms``: the inverse of :func:`latency_at`."""
    if latency_ms <= 0.0:
        return 0.0
    last = len(KNOTS_Z) - 1
    if latency_ms >= quantiles[last]:
        slope = (quantiles[last] - quantiles[last - 1]) / (KNOTS_Z[last] - KNOTS_Z[last - 1])
        if slope <= 0.0:
            return 1.0
        z = KNOTS_Z[last] + (latency_ms - quantiles[last]) / slope
        return 1.0 - math.exp(-z)
    for i in range(1, len(KNOTS_Z)):
        if latency_ms < quantiles[i]:
            l0, l1 = quantiles[i - 1], quantiles[i]
            z0, z1 = KNOTS_Z[i - 1], KNOTS_Z[i]
            if latency_ms >= l0:
                z = z0 + (z1 - z0) * (latency_ms - l0) / (l1 - l0)
            elif i == 1:  # below p50: extrapolate the p50-p90 segment down to z = 0 (p = 0)
                slope = (l1 - l0) / (z1 - z0)
                z = max(0.0, z0 - (l0 - latency_ms) / slope) if slope > 0.0 else 0.0
            else:  # pragma: no cover - quantiles are monotone, so the loop stops at i == 1 first
                z = z0
            return 1.0 - math.exp(-z)
    return 1.0  # pragma: no cover - covered by the first branch

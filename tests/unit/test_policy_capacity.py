"""Capacity at the SLO from a profile curve, quantile interpolation and the profile table."""

from __future__ import annotations

import math

import pytest

from fulcrum.api import LatencyQuantiles, Profile, ProfilePoint
from fulcrum.policy import Curve, ProfileTable, latency_at, share_within
from fulcrum.policy.capacity import envelope


def _point(rate: float, p50: float, p90: float, p95: float, p99: float) -> ProfilePoint:
    return ProfilePoint(requests_per_second=rate, latency_ms=LatencyQuantiles(p50=p50, p90=p90, p95=p95, p99=p99))


PROFILE = Profile(
    node_pool="l4",
    points=[
        _point(100, 5, 6, 7, 10),
        _point(500, 6, 8, 10, 20),
        _point(900, 10, 20, 30, 60),
    ],
)


def test_latency_at_the_profiled_percentiles_is_exact() -> None:
    q = (5.0, 6.0, 7.0, 10.0)
    assert latency_at(q, 50) == pytest.approx(5.0)
    assert latency_at(q, 90) == pytest.approx(6.0)
    assert latency_at(q, 95) == pytest.approx(7.0)
    assert latency_at(q, 99) == pytest.approx(10.0)


def test_percentiles_in_between_and_beyond_are_interpolated_in_the_tail_coordinate() -> None:
    q = (5.0, 6.0, 7.0, 10.0)
    assert 7.0 < latency_at(q, 97) < 10.0
    # p99.9 extends the p95-p99 segment: one more decade of tail adds (10 - 7) * ln(10) / ln(5)
    assert latency_at(q, 99.9) == pytest.approx(10.0 + 3.0 * math.log(10) / math.log(5))


def test_share_within_inverts_latency_at() -> None:
    q = (5.0, 6.0, 7.0, 10.0)
    for percentile in (60.0, 92.0, 97.0, 99.0, 99.5):
        assert share_within(q, latency_at(q, percentile)) == pytest.approx(percentile / 100.0)
    assert share_within(q, 0.0) == 0.0
    assert share_within((5.0, 5.0, 5.0, 5.0), 6.0) == 1.0


def test_capacity_interpolates_between_points() -> None:
    curve = Curve.from_profile(PROFILE)
    # p99 crosses 40 ms halfway between 500 rps (20 ms) and 900 rps (60 ms)
    assert curve.capacity(40.0, 99.0) == pytest.approx(700.0)
    # p50 never reaches 40 ms: capacity is the last profiled (saturation) rate, never extrapolated
    assert curve.capacity(40.0, 50.0) == pytest.approx(900.0)


def test_capacity_is_zero_when_even_the_lightest_load_misses() -> None:
    assert Curve.from_profile(PROFILE).capacity(9.0, 99.0) == 0.0


def test_capacity_falls_as_the_percentile_rises() -> None:
    curve = Curve.from_profile(PROFILE)
    capacities = [curve.capacity(25.0, p) for p in (50.0, 90.0, 95.0, 99.0, 99.9)]
    assert capacities == sorted(capacities, reverse=True)


def test_effective_rate_inverts_the_curve_and_scaling_keeps_latency_shape() -> None:
    curve = Curve.from_profile(PROFILE)
    assert curve.effective_rate(40.0, 99.0) == pytest.approx(700.0)
    assert curve.effective_rate(5.0, 99.0) is None  # faster than the unloaded profile: no information
    slow = curve.scaled(0.5)
    assert slow.capacity(40.0, 99.0) == pytest.approx(350.0)


def test_profile_table_memoises_and_restricts() -> None:
    table = ProfileTable.from_mapping({"fp32": [PROFILE], "int8": [PROFILE]})
    assert table.capacity("fp32", "l4", 40.0, 99.0) == pytest.approx(700.0)
    assert table.capacity("fp32", "cpu", 40.0, 99.0) == 0.0
    assert table.only(["int8"]).curve("fp32", "l4") is None


def test_curve_rejects_unsorted_points() -> None:
    with pytest.raises(ValueError, match="increasing"):
        Curve((2.0, 1.0), ((1.0, 1.0, 1.0, 1.0), (1.0, 1.0, 1.0, 1.0)))


def test_envelope_is_the_lower_non_decreasing_bound() -> None:
    assert envelope([1.0, 3.0, 2.0, 4.0]) == [1.0, 2.0, 2.0, 4.0]
    assert envelope([5.0, 1.0, 1.0]) == [1.0, 1.0, 1.0]
    assert envelope([]) == []


def test_a_noise_spike_at_low_load_does_not_cut_the_capacity() -> None:
    noisy = Profile(
        node_pool="local",
        points=[
            _point(100, 3, 4, 5, 8),
            _point(200, 3, 6, 9, 80),  # another job stole the CPU during this run
            _point(400, 3, 5, 6, 9),
            _point(800, 4, 6, 8, 12),
            _point(1000, 8, 20, 30, 60),
        ],
    )
    curve = Curve.from_profile(noisy)
    assert curve.capacity(25.0, 99.0) > 400.0  # the raw curve would cross 25 ms just above 100 rps

"""The config search's pure parts: capacity within the SLO, the bounded coordinate search, the candidate grid."""

from __future__ import annotations

import pytest

from model_repo_builder import search
from model_repo_builder.search import Knobs, Point

START = Knobs(instances=1, max_queue_delay_us=8000, preferred=(16, 32))


def test_capacity_is_the_highest_rate_within_the_slo_interpolated_towards_the_first_miss() -> None:
    points = [Point(100, 5.0), Point(200, 10.0), Point(300, 30.0)]
    assert search.capacity_within_slo(points, 20.0) == pytest.approx(250.0)  # 10 ms -> 30 ms: half way at 20
    assert search.capacity_within_slo(points, 40.0) == 300.0
    assert search.capacity_within_slo(points, 4.0) == 0.0  # even the lowest rate misses it
    assert search.capacity_within_slo(list(reversed(points)), 20.0) == pytest.approx(250.0)  # order free


def test_a_saturated_point_counts_as_a_miss_without_interpolation() -> None:
    points = [Point(100, 5.0), Point(200, 6.0, saturated=True)]
    assert search.capacity_within_slo(points, 20.0) == 100.0


def test_find_capacity_brackets_the_slo_in_a_few_points() -> None:
    true_capacity = 500.0

    def measure(rate: float) -> Point:
        if rate >= true_capacity:
            return Point(rate, 1000.0, saturated=True)
        return Point(rate, 2.0 / (1 - rate / true_capacity))  # 2 ms unloaded, up near saturation

    # latency <= 20 ms while rate <= 450 rps
    capacity, points = search.find_capacity(measure, upper=800.0, slo_ms=20.0, max_points=5)
    assert len(points) <= 5
    assert 300.0 <= capacity <= 450.0 + 1e-9
    low, _ = search.find_capacity(measure, upper=100.0, slo_ms=20.0, max_points=5)  # an estimate far too low
    assert low > 100.0


def test_find_capacity_walks_down_when_even_half_the_estimate_misses() -> None:
    def measure(rate: float) -> Point:
        return Point(rate, 5.0 if rate <= 60 else 50.0)

    capacity, points = search.find_capacity(measure, upper=1000.0, slo_ms=20.0, max_points=6)
    assert 0 < capacity <= 60.0 * 1.5
    assert points[0].rate == 500.0 and min(p.rate for p in points) <= 60.0


def test_coordinate_search_keeps_clear_improvements_and_stays_within_its_bound() -> None:
    axes = search.axes(START, max_batch_size=64, slo_ms=25.0, max_instances=2)
    measured: list[Knobs] = []

    def capacity(knobs: Knobs) -> float | None:
        measured.append(knobs)
        value = 100.0 * knobs.instances
        if knobs.max_queue_delay_us == 1250:
            value *= 1.5
        if knobs.preferred == ():
            value *= 1.05  # within the noise margin: not worth a change
        return value

    outcome = search.coordinate_search(START, axes, capacity, max_candidates=6, confirm=False)
    assert outcome.best == Knobs(2, 1250, (16, 32))
    assert outcome.best_capacity == pytest.approx(300.0)
    assert len(measured) == len(set(measured)) == len(outcome.measured) <= 6
    assert measured[0] == START  # the spec's own config is always a candidate
    assert [k for k, _ in outcome.measured] == measured

    bounded = search.coordinate_search(START, axes, capacity, max_candidates=2, confirm=False)
    assert len(bounded.measured) == 2


def test_a_candidate_that_does_not_load_is_recorded_and_never_chosen() -> None:
    axes = search.axes(START, max_batch_size=64, slo_ms=25.0, max_instances=4)
    outcome = search.coordinate_search(
        START, axes, lambda k: None if k.instances == 4 else 10.0 * k.instances, max_candidates=8
    )
    assert outcome.best.instances == 2
    assert (Knobs(4, 8000, (16, 32)), None) in outcome.measured


def test_candidate_grid_follows_the_slo_the_batch_size_and_the_cores() -> None:
    axes = dict(search.axes(START, max_batch_size=64, slo_ms=40.0, max_instances=2))
    assert [k.instances for k in axes["instances"]] == [1, 2]
    assert [k.max_queue_delay_us for k in axes["maxQueueDelay"]] == [0, 2000, 5000]
    assert [k.preferred for k in axes["preferredBatchSizes"]] == [(), (32, 64)]
    gpu = dict(search.axes(START, max_batch_size=1, slo_ms=2.0, max_instances=4))
    assert [k.instances for k in gpu["instances"]] == [1, 2, 4]
    assert [k.preferred for k in gpu["preferredBatchSizes"]] == [(), (1,)]
    assert all(k.max_queue_delay_us <= 500 for k in gpu["maxQueueDelay"])


def test_a_lucky_winner_is_confirmed_before_it_replaces_the_spec_config() -> None:
    """The best of several noisy measurements is biased upwards: the winner and the start are measured again."""
    axes = search.axes(START, max_batch_size=64, slo_ms=25.0, max_instances=2)
    lucky = iter([200.0, 10.0])  # two instances: 200 rps once (noise), 10 rps when measured again

    def capacity(knobs: Knobs) -> float | None:
        return next(lucky) if knobs.instances == 2 else 100.0

    outcome = search.coordinate_search(START, axes[:1], capacity, max_candidates=6)
    assert outcome.best == START and outcome.best_capacity == 100.0
    assert (
        dict(outcome.measured)[Knobs(2, 8000, (16, 32))] == 105.0
    )  # the mean of its two measurements: not 10 % over 100

    steady = search.coordinate_search(START, axes[:1], lambda k: 300.0 if k.instances == 2 else 100.0, max_candidates=6)
    assert steady.best.instances == 2 and steady.best_capacity == 300.0

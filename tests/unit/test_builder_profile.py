"""The open-loop profiler's pure parts, and a profile of a fake model with a known service time."""

from __future__ import annotations

import time

import numpy as np
import pytest

from model_repo_builder import profile as prof


def test_quantiles_and_arrivals() -> None:
    assert prof.quantiles_ms([]) == (0.0, 0.0, 0.0, 0.0)
    p50, _, _, p99 = prof.quantiles_ms([0.001] * 99 + [0.1])
    assert p50 == pytest.approx(1.0) and p99 > 1.0
    arrivals = prof.poisson_arrivals(200.0, 5.0, seed=1)
    assert np.all(np.diff(arrivals) > 0) and arrivals[-1] < 5.0
    assert 800 < len(arrivals) < 1200  # 1000 expected
    assert np.array_equal(arrivals, prof.poisson_arrivals(200.0, 5.0, seed=1))


def test_batches_form_and_overload_saturates() -> None:
    sizes: list[int] = []

    def run(n: int) -> None:  # 4 ms per call, whatever the batch: batching is what scales
        sizes.append(n)
        time.sleep(0.004)

    batching = prof.Batching(max_batch_size=8, max_queue_delay_s=0.002)
    light = prof.measure_point(run, batching, rate=50.0, duration=0.5)
    assert not light.saturated and light.p50 >= 4.0
    sizes.clear()
    # capacity is about 8 / 4 ms = 2000 rps; 4000 rps cannot be served
    heavy = prof.measure_point(run, batching, rate=4000.0, duration=0.5)
    assert heavy.saturated
    assert max(sizes) == 8


def test_profile_stops_at_saturation() -> None:
    def run(n: int) -> None:
        time.sleep(0.002 * n)  # no batching gain: capacity 500 rps

    # a 1 s window: the last few requests of a short one finish after it on a loaded machine and read as backlog
    points = prof.profile(run, prof.Batching(max_batch_size=4), duration=1.0, fractions=(0.2, 4.0, 8.0), capacity=500.0)
    assert len(points) == 2 and points[-1].saturated and not points[0].saturated


def test_rejected_requests_mark_a_point_saturated_and_only_total_failure_is_an_error() -> None:
    calls = [0]

    def sometimes_rejected() -> None:  # Triton rejecting requests that outwaited a queue timeout
        calls[0] += 1
        if calls[0] % 3 == 0:
            raise RuntimeError("request timeout expired")

    point = prof.open_loop(sometimes_rejected, rate=200.0, duration=0.2, seed=1, workers=2)
    assert point.saturated

    def broken() -> None:
        raise RuntimeError("bad input")

    with pytest.raises(RuntimeError, match="requests failed during profiling"):
        prof.open_loop(broken, rate=200.0, duration=0.2, seed=1, workers=2)

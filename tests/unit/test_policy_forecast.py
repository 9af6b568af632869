"""The forecasts ``decide`` learns from the observed rates: slopes, swing quantiles and recurring bursts."""

from __future__ import annotations

import json
import math
import random

from fulcrum.policy.forecast import HORIZONS, Bursts, Growth, growth_samples, slope

TICK = 15.0


def test_a_sure_slope_sees_a_ramp_and_not_noise() -> None:
    ramp = [(t * TICK, 1000.0 + 2.0 * t * TICK) for t in range(9)]
    assert slope(ramp, 8 * TICK, 120.0, sure=True) > 1.9
    rng = random.Random(7)
    noisy = [(t * TICK, 1000.0 * (1.0 + rng.gauss(0.0, 0.1))) for t in range(9)]
    assert abs(slope(noisy, 8 * TICK, 120.0, sure=True)) < abs(slope(noisy, 8 * TICK, 120.0)) + 1e-12
    flat = [(t * TICK, 500.0) for t in range(9)]
    assert slope(flat, 8 * TICK, 120.0, sure=True) == 0.0


def test_growth_quantiles_follow_the_samples_and_fade() -> None:
    growth = Growth()
    rng = random.Random(1)
    for i in range(400):
        growth = growth.add([(2, 1.0 + abs(rng.gauss(0.0, 0.1)))], i * TICK, 3600.0)
    now = 399 * TICK
    median = growth.quantile(2, 0.5, now, 3600.0, 0.0)
    high = growth.quantile(2, 0.97, now, 3600.0, 0.0)
    # half-normal with sigma 0.1: median 0.067, 97th percentile 0.217 (5 % bins)
    assert 1.04 < median < 1.10
    assert 1.17 < high < 1.27
    assert growth.quantile(0, 0.97, now, 3600.0, 0.0) == 1.0  # no samples at that horizon
    # a 3x jump seen once an hour ago weighs little against an hour of calm: it does not move the 97th percentile
    once = growth.add([(2, 3.0)] * 5, now, 3600.0)
    for i in range(240):
        once = once.add([(2, 1.0)], now + (i + 1) * TICK, 3600.0)
    assert once.quantile(2, 0.97, now + 240 * TICK, 3600.0, 0.0) < 1.3


def test_growth_survives_json_and_rescales_its_weights() -> None:
    growth = Growth()
    for i in range(50):
        growth = growth.add([(1, 1.1), (3, 1.3)], i * 3600.0, 3600.0)  # weights grow as e^(t / memory)
    assert max(max(row) for row in growth.weights) < 1e10
    restored = Growth.from_dict(json.loads(json.dumps(growth.to_dict())))
    assert restored == growth
    assert Growth.from_dict({}) == Growth() and Growth().to_dict() == {}


def test_growth_samples_are_point_to_point_over_each_horizon() -> None:
    history = [(t * TICK, 100.0 + t) for t in range(70)]
    now = 69 * TICK
    samples = dict(growth_samples(history, now, TICK))
    assert set(samples) == set(range(len(HORIZONS)))
    for index, horizon in enumerate(HORIZONS):
        then = 100.0 + 69 - horizon / TICK
        assert math.isclose(samples[index], (100.0 + 69) / then)
    assert growth_samples(history[:1], now, TICK) == []
    assert growth_samples([(0.0, 0.0), (15.0, 5.0)], 15.0, TICK) == []  # no growth from zero


def _replay(rates: list[float]) -> Bursts:
    bursts = Bursts()
    history: list[tuple[float, float]] = []
    for i, rate in enumerate(rates):
        now = i * TICK
        history = [(t, r) for t, r in history if now - t <= 1000.0] + [(now, rate)]
        bursts = bursts.update(history, now, 14_400.0)
    return bursts


def test_a_burst_is_measured_from_where_it_started_and_recurs_only_when_seen_twice() -> None:
    calm = [1000.0] * 40
    burst = [1000.0, 3000.0, 5000.0, 5000.0, 5000.0, 4000.0, 1000.0]
    once = _replay(calm + burst + calm)
    assert len(once.seen) == 1 and math.isclose(once.seen[0][1], 5.0)
    assert once.recurring_height(len(calm + burst + calm) * TICK, 14_400.0) == 1.0  # maybe a one-off
    twice = _replay(calm + burst + calm + [1000.0, 2500.0, 2500.0, 1000.0] + calm)
    now = len(calm + burst + calm + calm) * TICK + 4 * TICK
    assert twice.recurring_height(now, 14_400.0) == 5.0  # bursts recur: room for the highest
    assert twice.baseline([(now - TICK, 1000.0), (now, 1000.0)], now) == 1000.0


def test_noise_and_a_new_level_are_not_bursts() -> None:
    rng = random.Random(3)
    noisy = _replay([1000.0 * (1.0 + rng.gauss(0.0, 0.05)) for _ in range(400)])
    assert not noisy.seen
    level = _replay([1000.0] * 40 + [3000.0] * 200)  # 50 minutes at 3x: a new level
    assert not level.seen and level.current is None


def test_bursts_survive_json() -> None:
    bursts = _replay([1000.0] * 40 + [4000.0] * 10)
    assert bursts.current is not None
    assert Bursts.from_dict(json.loads(json.dumps(bursts.to_dict()))) == bursts
    assert Bursts.from_dict(None) == Bursts()

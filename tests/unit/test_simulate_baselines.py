"""Each baseline policy's rules, driven tick by tick."""

from __future__ import annotations

import itertools
import math

from fulcrum.api import ProfilesFile, TierProfiles
from fulcrum.policy import Observation, ReplicaGroup
from fulcrum.simulate.engine import make_setting
from fulcrum.simulate.policies import HpaPolicy, KpaPolicy, OraclePolicy, Setting, StaticPolicy
from fulcrum.simulate.trace import Trace
from tests.unit.test_policy_support import make_spec, model_profile

PROFILES = ProfilesFile(
    tiers=[
        TierProfiles(name="fp32", profiles=[model_profile("l4", 1000.0), model_profile("cpu", 200.0, base=6.0)]),
        TierProfiles(name="int8", profiles=[model_profile("l4", 3000.0, base=3.0)]),
    ]
)
SATURATION = 950.0  # the last profiled rate of fp32@l4 (0.95 x 1000)


def setting(rates: list[float], budget: str | None = None) -> Setting:
    trace = Trace.from_points([10.0 * i for i in range(len(rates))], rates, end=10.0 * len(rates))
    return make_setting(make_spec(budget=budget, max_replicas=40), PROFILES, trace, 10.0)


def ready(replicas: int, pool: str = "l4") -> tuple[ReplicaGroup, ...]:
    return (ReplicaGroup("fp32", pool, ready=replicas),)


def test_hpa_targets_70_percent_within_a_10_percent_tolerance() -> None:
    hpa = HpaPolicy(setting([1000.0]))
    assert hpa.placement.tier == "fp32"
    first = hpa.act(0, 0.0, Observation(1330.0), ())
    assert first.replicas == math.ceil(1330.0 / (0.7 * SATURATION))  # 2
    # 2 ready at 0.74 utilisation: ratio 1.06, inside the tolerance -> no change
    assert hpa.act(1, 10.0, Observation(0.74 * 2 * SATURATION), ready(2)).replicas == 2
    # 0.9 utilisation: ratio 1.29 -> ceil(2 x 1.29) = 3
    assert hpa.act(2, 20.0, Observation(0.9 * 2 * SATURATION), ready(2)).replicas == 3


def test_hpa_scales_down_only_after_the_300_second_window() -> None:
    hpa = HpaPolicy(setting([1000.0]))
    hpa.act(0, 0.0, Observation(4000.0), ())
    high = hpa.replicas
    t = 10.0
    hpa.act(1, t, Observation(4000.0), ready(high))
    while t < 300.0:
        t += 10.0
        assert hpa.act(int(t / 10), t, Observation(500.0), ready(high)).replicas == high
    t += 10.0
    assert hpa.act(int(t / 10), t, Observation(500.0), ready(high)).replicas < high


def test_hpa_is_capped_by_the_budget() -> None:
    hpa = HpaPolicy(setting([1000.0], budget="3.00"))
    assert hpa.act(0, 0.0, Observation(50000.0), ()).replicas == 3


def test_kpa_panics_on_a_surge_and_never_scales_down_in_panic() -> None:
    kpa = KpaPolicy(setting([1000.0]))
    base = kpa.act(0, 0.0, Observation(1000.0), ()).replicas
    surge = kpa.act(1, 10.0, Observation(6000.0, queue_ms=50.0), ready(base)).replicas
    assert surge >= 2 * base
    calm = kpa.act(2, 20.0, Observation(1000.0), ready(surge)).replicas
    assert calm == surge  # still inside the 60 s panic window
    replicas = [calm]
    t = 20.0
    while t < 120.0:
        t += 10.0
        replicas.append(kpa.act(int(t / 10), t, Observation(1000.0), ready(replicas[-1])).replicas)
    assert replicas[-1] < surge
    assert all(b >= math.ceil(a / 2) for a, b in itertools.pairwise(replicas))  # at most halves


def test_static_is_sized_for_the_peak_within_the_budget() -> None:
    capacity = make_setting(make_spec(), PROFILES, Trace.from_points([0.0], [1.0]), 10.0).profiles.capacity(
        "fp32", "l4", 25.0, 99.0
    )
    static = StaticPolicy(setting([1000.0, 3000.0, 500.0]))
    assert static.act(0, 0.0, None, ()).replicas == math.ceil(3000.0 / capacity)
    capped = StaticPolicy(setting([1000.0, 30000.0], budget="5.00"))
    assert capped.act(0, 0.0, None, ()).replicas == 5


def test_oracle_takes_each_steps_best_configuration() -> None:
    oracle = OraclePolicy(setting([1000.0, 30000.0], budget="8.00"))
    assert oracle.act(0, 0.0, None, ()).tier == "fp32"
    assert oracle.act(1, 10.0, None, ()).tier == "int8"  # fp32 cannot serve 30 000 rps within 8.00/h

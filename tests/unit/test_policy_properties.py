"""Invariants of ``decide`` under random load and specs (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fulcrum.policy import DEFAULT_TUNING, Config, Decision, Observation, Placement, PolicyState, decide
from fulcrum.simulate.fleet import SimFleet
from tests.unit.test_policy_support import make_spec, make_table

TABLE = make_table()
UNIT_COST = {"l4": 1.0, "cpu": 0.25}
STARTUP = {"l4": 60.0, "cpu": 30.0}

specs = st.builds(
    make_spec,
    budget=st.one_of(st.none(), st.sampled_from(["2.00", "5.00", "8.00", "20.00"])),
    min_replicas=st.integers(0, 3),
    max_replicas=st.integers(3, 30),
    objective=st.sampled_from(["Quality", "Cost"]),
    cooldown=st.sampled_from([0, 120, 600]),
    stabilization=st.sampled_from([0, 60, 300]),
    percentile=st.sampled_from([90, 99, "99.9"]),
)
loads = st.lists(st.floats(0.0, 30000.0, allow_nan=False), min_size=2, max_size=40)
STEP = 10.0


def replay(spec_: object, rates: list[float], rolling: bool = True) -> list[Decision]:
    """Tick through the rates against the simulator's fleet (startup delays, blue/green or rolling switches)."""
    spec = spec_  # typed loosely for hypothesis' builds
    capacity = {Placement(*key): TABLE.capacity(*key, 25.0, 99.0) for key in TABLE.curves}
    fleet = SimFleet(STARTUP, UNIT_COST, rolling=rolling, capacity=capacity)
    tuning = replace(DEFAULT_TUNING, rolling_switch=rolling)
    state = PolicyState()
    out: list[Decision] = []
    observation: Observation | None = None
    for i, rate in enumerate(rates):
        now = i * STEP
        fleet_now = state.with_fleet(fleet.observed(now))
        decision = decide(spec, TABLE, observation, fleet_now, now, tuning=tuning)  # type: ignore[arg-type]
        fleet.apply(decision.config, now, instant=i == 0)
        fleet.advance(now, rates[i - 1] if i else None)
        ceiling = budget_of(spec)
        if ceiling is not None:  # the budget is a ceiling at every moment, switches included
            assert fleet.cost_per_hour() <= max(ceiling, min_cost(spec)) + 1e-9
        state = decision.state
        out.append(decision)
        observation = Observation(rate, None, None)
    return out


def budget_of(spec: object) -> float | None:
    ceiling = spec.budget.max_cost_per_hour  # type: ignore[attr-defined]
    return None if ceiling is None else float(ceiling)


def min_cost(spec: object) -> float:
    """What minReplicas alone may cost (minReplicas wins over the budget)."""
    replicas: int = spec.scaling.min_replicas  # type: ignore[attr-defined]
    return replicas * max(UNIT_COST.values()) * 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs, loads, st.booleans())
# found by hypothesis: a switch back to fp32 under a tight budget started below minReplicas
@example(
    make_spec(
        budget="2.00", min_replicas=3, max_replicas=6, objective="Quality", cooldown=0, stabilization=0, percentile=90
    ),
    [1026.0, 0.0, 3880.0, 0.0, 0.0, 0.0, 0.0],
    True,
)
# found by hypothesis: a cheaper pool chosen at 1 rps cannot hold 424 rps within maxReplicas; the way back to the
# pool it left (its replica still serves) waits for no cooldown
@example(
    make_spec(
        budget=None, min_replicas=0, max_replicas=3, objective="Cost", cooldown=120, stabilization=60, percentile=90
    ),
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 424.0, 0.0],
    False,
)
def test_invariants(spec: object, rates: list[float], rolling: bool) -> None:
    decisions = replay(spec, rates, rolling)
    scaling = spec.scaling  # type: ignore[attr-defined]
    budget = spec.budget.max_cost_per_hour  # type: ignore[attr-defined]
    last_switch: float | None = None
    left: Placement | None = None  # the placement the last switch left
    previous: Config | None = None
    for i, decision in enumerate(decisions):
        now = i * STEP
        assert scaling.min_replicas <= decision.replicas <= scaling.max_replicas
        steady = decision.replicas * UNIT_COST[decision.node_pool]
        if budget is not None and decision.replicas > scaling.min_replicas:
            assert steady <= float(budget) + 1e-9, decision.reason
        if previous is not None and previous.placement != decision.config.placement:
            # every switch waits the cooldown, but a forced way back to the placement a switch left (it still
            # serves): the one exception
            back = decision.config.placement == left and decision.code in ("BudgetAhead", "LoadRising")
            if last_switch is not None and not back:
                assert now - last_switch >= scaling.tier_switch_cooldown_seconds, decision.reason
            last_switch, left = now, previous.placement
        assert decision.reason
        previous = decision.config


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs, loads)
def test_deterministic(spec: object, rates: list[float]) -> None:
    first = [(d.action, d.config, d.code, d.reason, d.state) for d in replay(spec, rates)]
    second = [(d.action, d.config, d.code, d.reason, d.state) for d in replay(spec, rates)]
    assert first == second

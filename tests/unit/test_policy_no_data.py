"""No data is not zero: ``decide`` on missing, partial and freshly restarted observations.

The guarantees (docs/policy.md, "Missing data"): on ``observation=None`` or ``complete=False`` the policy never
scales in, never moves to a cheaper tier or pool and never starts a switch (a lower-bound rate may still scale
up); scale-in needs complete observations over the whole ``scaleDownStabilizationSeconds`` window, right after a
restart too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulcrum.api import ModelDeploymentSpec, ProfilesFile
from fulcrum.commands.simulate import load_spec
from fulcrum.policy import (
    DEFAULT_TUNING,
    Config,
    Decision,
    Observation,
    Placement,
    PolicyState,
    ProfileTable,
    ReplicaGroup,
    decide,
)
from fulcrum.simulate.fleet import SimFleet
from tests.unit.test_policy_support import make_spec, make_table

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPEC = load_spec(ROOT / "examples" / "ctr-ranker" / "simulate.yaml")
EXAMPLE_TABLE = ProfileTable.from_file(
    ProfilesFile.model_validate_json((ROOT / "examples" / "profiles" / "ctr-ranker.json").read_text())
)
TABLE = make_table()
UNIT_COST = {"l4": 1.0, "cpu": 0.25}
STARTUP = {"l4": 60.0, "cpu": 30.0}
STEP = 10.0

Kind = Literal["complete", "partial", "none"]


def settled(config: Config) -> tuple[ReplicaGroup, ...]:
    return (ReplicaGroup(config.tier, config.node_pool, ready=config.replicas),)


def restarted(config: Config) -> PolicyState:
    """What the controller rebuilds from status after a restart: the desired configuration, no history."""
    return PolicyState(desired=config).with_fleet(settled(config))


def one_pool(spec: ModelDeploymentSpec, pool: str) -> ModelDeploymentSpec:
    return spec.model_copy(update={"node_pools": [p for p in spec.node_pools if p.name == pool]})


def observation(kind: Kind, rate: float) -> Observation | None:
    if kind == "none":
        return None
    return Observation(rate, complete=kind == "complete")


# --- the cases of the issue ------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", [None, Observation(None), Observation(None, 20.0, 1.0)])
def test_the_first_tick_after_a_restart_without_metrics_keeps_the_fleet(first: Observation | None) -> None:
    """Before: ``SwitchPool fp32@cpu x1 (Cheaper)`` with three pools, ``ScaleDown 8 -> 1`` with one."""
    fleet = Config("fp32", "l4", 8)
    for spec in (EXAMPLE_SPEC, one_pool(EXAMPLE_SPEC, "l4")):
        decision = decide(spec, EXAMPLE_TABLE, first, restarted(fleet), 1_000.0)
        assert decision.action == "Hold"
        assert decision.config == fleet
        assert decision.code == "NoMetrics"
        assert "unknown" in decision.reason


@pytest.mark.parametrize("spec", [EXAMPLE_SPEC, one_pool(EXAMPLE_SPEC, "l4")], ids=["three-pools", "one-pool"])
def test_after_a_restart_nothing_scales_in_until_a_full_window_is_observed(spec: ModelDeploymentSpec) -> None:
    fleet = Config("fp32", "l4", 8)
    window = spec.scaling.scale_down_stabilization_seconds
    state = restarted(fleet)
    decisions: list[tuple[float, Decision]] = []
    for i in range(60):  # 600 s of a real, complete, low load
        now = 1_000.0 + i * STEP
        decision = decide(spec, EXAMPLE_TABLE, Observation(300.0), state, now)
        decisions.append((now, decision))
        state = decision.state.with_fleet(settled(decision.config))
    first_change = next((now, d) for now, d in decisions if d.config != fleet)
    assert first_change[0] - 1_000.0 >= window
    assert all(d.code == "Observing" and d.config == fleet for now, d in decisions if now - 1_000.0 < window)
    # once the window is covered the fleet does follow the load: the guarantee is not "never scale in"
    assert first_change[1].action in ("ScaleDown", "SwitchPool", "SwitchTier")


def test_a_partial_rate_scales_up_but_never_in_or_away() -> None:
    spec = EXAMPLE_SPEC
    fleet = Config("fp32", "l4", 8)
    low = decide(spec, EXAMPLE_TABLE, Observation(100.0, complete=False), restarted(fleet), 1_000.0)
    assert low.config == fleet and low.code == "PartialMetrics" and "lower bound" in low.reason
    high = decide(spec, EXAMPLE_TABLE, Observation(20_000.0, complete=False), restarted(fleet), 1_000.0)
    assert high.config.placement == fleet.placement
    assert high.action == "ScaleUp" and high.replicas > fleet.replicas
    assert "at least" in high.reason


def test_an_outage_restarts_the_window() -> None:
    """A full window of complete observations, one tick without metrics, then low load: the window starts again."""
    spec = make_spec(budget=None, stabilization=300)
    state = PolicyState()
    now = 0.0
    for _ in range(40):  # 400 s at 3000 rps: the window is covered
        decision = decide(spec, TABLE, Observation(3000.0), state, now)
        state = decision.state.with_fleet(settled(decision.config))
        now += STEP
    high = state.desired
    assert high is not None and state.observed_since == 0.0
    decision = decide(spec, TABLE, None, state, now)
    assert decision.config == high and decision.state.observed_since is None
    state = decision.state.with_fleet(settled(decision.config))
    resumed = now + STEP
    shrunk_at = None
    for i in range(60):
        now = resumed + i * STEP
        decision = decide(spec, TABLE, Observation(500.0), state, now)
        state = decision.state.with_fleet(settled(decision.config))
        if decision.replicas < high.replicas and shrunk_at is None:
            shrunk_at = now
    assert shrunk_at is not None and shrunk_at - resumed >= 300


def test_a_long_gap_between_ticks_is_not_an_observed_window() -> None:
    """A state persisted before the operator was down for an hour does not count the hour as observed."""
    spec = make_spec(budget=None, stabilization=300)
    state = PolicyState()
    for i in range(40):
        decision = decide(spec, TABLE, Observation(3000.0), state, i * STEP)
        state = decision.state.with_fleet(settled(decision.config))
    high = state.desired
    assert high is not None
    later = 390.0 + 3_600.0
    decision = decide(spec, TABLE, Observation(500.0), state, later)
    assert decision.config == high and decision.code == "Observing"
    assert decision.state.observed_since == later


def test_the_observed_run_survives_the_state_round_trip() -> None:
    state = PolicyState(desired=Config("fp32", "l4", 2), observed_since=12.5, last_tick_at=40.0)
    assert PolicyState.from_dict(state.to_dict()) == state
    assert PolicyState.from_dict({"desired": None}).observed_since is None  # older persisted states


# --- properties ------------------------------------------------------------------------------------------------

specs = st.builds(
    make_spec,
    budget=st.one_of(st.none(), st.sampled_from(["2.00", "5.00", "8.00", "20.00"])),
    min_replicas=st.integers(0, 3),
    max_replicas=st.integers(3, 30),
    objective=st.sampled_from(["Quality", "Cost"]),
    cooldown=st.sampled_from([0, 120, 600]),
    stabilization=st.sampled_from([0, 60, 300]),
)
kinds = st.sampled_from(["complete", "complete", "complete", "partial", "none"])
ticks = st.lists(st.tuples(kinds, st.floats(0.0, 30_000.0, allow_nan=False)), min_size=2, max_size=60)


def replay(spec: ModelDeploymentSpec, steps: list[tuple[Kind, float]]) -> list[Decision]:
    """Tick through observations against the simulator's fleet (startup delays, rolling switches)."""
    capacity = {Placement(*key): TABLE.capacity(*key, 25.0, 99.0) for key in TABLE.curves}
    fleet = SimFleet(STARTUP, UNIT_COST, capacity=capacity)
    state = PolicyState()
    out: list[Decision] = []
    for i, (kind, rate) in enumerate(steps):
        now = i * STEP
        decision = decide(spec, TABLE, observation(kind, rate), state.with_fleet(fleet.observed(now)), now)
        fleet.apply(decision.config, now, instant=i == 0)
        fleet.advance(now, rate if kind == "complete" else None)
        state = decision.state
        out.append(decision)
    return out


def complete_run_before(steps: list[tuple[Kind, float]], i: int) -> float:
    """Seconds of unbroken complete observations ending at tick ``i`` (-1 if tick ``i`` itself is not complete)."""
    if steps[i][0] != "complete":
        return -1.0
    first = i
    while first > 0 and steps[first - 1][0] == "complete":
        first -= 1
    return (i - first) * STEP


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs, ticks)
def test_unknown_or_partial_load_never_shrinks_or_switches(
    spec: ModelDeploymentSpec, steps: list[tuple[Kind, float]]
) -> None:
    decisions = replay(spec, steps)
    window = spec.scaling.scale_down_stabilization_seconds
    for i in range(1, len(decisions)):
        before, decision = decisions[i - 1].config, decisions[i]
        kind = steps[i][0]
        if kind != "complete":
            assert decision.config.placement == before.placement, decision.reason
            assert decision.replicas >= before.replicas, decision.reason
        if decision.config.placement == before.placement and decision.replicas < before.replicas:
            assert complete_run_before(steps, i) >= window, decision.reason
        if decision.config.placement != before.placement:
            assert kind == "complete", decision.reason
            if complete_run_before(steps, i) < window:  # not covered: only a move the load forces
                assert decision.code not in ("Cheaper", "LoadAllows"), decision.reason


FORCED = ("LoadRising", "BudgetAhead", "BudgetExhausted")
"""Codes of the switches the load forces (the others move for cost or accuracy, and wait for a covered window)."""


configs = st.tuples(st.sampled_from(["fp32", "int8"]), st.sampled_from(["l4", "cpu"]), st.integers(1, 12))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs, configs, st.lists(st.tuples(kinds, st.floats(0.0, 0.5)), min_size=1, max_size=40))
def test_after_a_restart_a_fleet_serving_the_load_is_unchanged_for_a_window(
    spec: ModelDeploymentSpec, placed: tuple[str, str, int], steps: list[tuple[Kind, float]]
) -> None:
    """The issue's e2e in miniature: any restarted fleet, any load it serves, complete or not: no scale-in, no move."""
    tier, pool, replicas = placed
    scaling = spec.scaling
    replicas = max(scaling.min_replicas, min(scaling.max_replicas, replicas))
    budget = spec.budget.max_cost_per_hour
    if budget is not None:
        replicas = max(1, min(replicas, int(float(budget) // UNIT_COST[pool])))
    fleet = Config(tier, pool, max(replicas, scaling.min_replicas))
    serves = fleet.replicas * TABLE.capacity(tier, pool, 25.0 * (1 - DEFAULT_TUNING.latency_margin), 99.0)
    state = restarted(fleet)
    before = fleet
    for i, (kind, share) in enumerate(steps):
        now = 5_000.0 + i * STEP
        if now - 5_000.0 >= scaling.scale_down_stabilization_seconds:
            break
        decision = decide(spec, TABLE, observation(kind, share * serves), state, now)
        if decision.config.placement == before.placement:
            assert decision.replicas >= before.replicas, decision.reason
        else:  # only a steep rise may force a move (the old placement then rolls down as the new one is ready)
            assert kind == "complete" and decision.code in FORCED, decision.reason
        before = decision.config
        state = decision.state.with_fleet(settled(decision.config))

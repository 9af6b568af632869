"""Hot tiers in ``decide``: a switch among the tiers a pool's replicas load is a routing change, not a roll."""

from __future__ import annotations

import math
from dataclasses import replace

from fulcrum.api import ModelDeploymentSpec
from fulcrum.policy import (
    DEFAULT_TUNING,
    Config,
    Decision,
    Observation,
    Placement,
    PolicyState,
    ReplicaGroup,
    decide,
)
from fulcrum.simulate.fleet import SimFleet
from tests.unit.test_policy_support import make_spec, make_table, replay_on_fleet

TABLE = make_table()
HOT = {"l4": frozenset({"fp32", "int8"})}
HOT_BOTH = {"l4": frozenset({"fp32", "int8"}), "cpu": frozenset({"fp32", "int8"})}
UNIT_COST = {"l4": 1.0, "cpu": 0.25}
STARTUP = {"l4": 60.0, "cpu": 30.0}
STEP = 10.0


def capacity(tier: str, pool: str) -> float:
    return TABLE.capacity(tier, pool, 25 * (1 - DEFAULT_TUNING.latency_margin), 99.0)


def replay(
    spec: ModelDeploymentSpec, rates: list[float], hot: dict[str, frozenset[str]] | None = None
) -> tuple[list[Decision], SimFleet]:
    """Tick through rates against the simulator's fleet model (the same rules decide projects with)."""
    replayed = replay_on_fleet(spec, rates, table=TABLE, hot=hot, step=STEP)
    return replayed.decisions, replayed.fleet


def test_a_burst_is_met_by_a_hot_switch_at_once_without_new_pods() -> None:
    spec = make_spec(budget="4.00", cooldown=600, stabilization=300)
    rates = [2500.0] * 40 + [6000.0] * 20
    decisions, _ = replay(spec, rates, HOT)
    before = decisions[39].config
    assert before.placement == Placement("fp32", "l4")
    hot = next(i for i, d in enumerate(decisions) if d.action == "SwitchTier" and i >= 40)
    switch = decisions[hot]
    assert hot <= 42  # the tick after the burst is seen, not a start-up later
    assert switch.tier == "int8" and switch.node_pool == "l4" and switch.code == "LoadRising"
    assert "no new pods" in switch.reason
    assert switch.replicas >= before.replicas  # the same replicas, routed to the faster tier
    # a hot switch is not a cold switch: no cooldown starts
    assert switch.state.last_switch_at == decisions[hot - 1].state.last_switch_at


def test_without_hot_tiers_the_same_burst_waits_for_new_pods() -> None:
    spec = make_spec(budget="4.00", cooldown=600, stabilization=300)
    decisions, _ = replay(spec, [2500.0] * 40 + [6000.0] * 20)
    assert not any("hot" in d.reason for d in decisions)


def test_back_to_the_accurate_tier_once_its_replicas_are_ready() -> None:
    spec = make_spec(budget="10.00", cooldown=600, stabilization=60)
    rates = [2000.0] * 40 + [5000.0] * 40 + [2000.0] * 60
    decisions, _ = replay(spec, rates, HOT_BOTH)  # hot on every pool: where it starts does not matter
    tiers = [d.tier for d in decisions]
    first_int8 = tiers.index("int8", 40)  # the burst starts at tick 40
    back = next(i for i in range(first_int8, len(tiers)) if tiers[i] == "fp32")
    assert decisions[back].code == "LoadAllows" and decisions[back].action == "SwitchTier"
    # it returned while the burst still ran: fp32 replicas were started ("Preparing") and it switched when ready
    assert back < 80
    assert any(d.code == "Preparing" for d in decisions[first_int8:back])
    assert tiers[-1] == "fp32"


def test_no_voluntary_hot_switch_while_a_cold_switch_rolls() -> None:
    spec = make_spec(budget="10.00")
    state = PolicyState(desired=Config("int8", "l4", 2), observed_since=0.0).with_fleet(
        (ReplicaGroup("int8", "cpu", ready=3), ReplicaGroup("int8", "l4", ready=0, starting=(990.0, 990.0)))
    )
    decision = decide(spec, TABLE, Observation(500.0), state, 1000.0, hot_tiers=HOT)
    assert decision.tier == "int8"  # fp32 would serve 500 rps, but the roll was planned for int8


def test_switches_between_loaded_tiers_are_hot_and_the_budget_holds() -> None:
    spec = make_spec(budget="5.00", cooldown=300, stabilization=120)
    rates = [1500.0 + 1200.0 * ((i // 30) % 3) for i in range(240)]
    decisions, _ = replay(spec, rates, HOT)  # replay checks the budget at every step
    previous = decisions[0].config
    hot = 0
    for decision in decisions[1:]:
        config = decision.config
        if config.node_pool == previous.node_pool == "l4" and config.tier != previous.tier:
            assert "hot" in decision.reason, decision.reason
            hot += 1
        previous = config
    assert hot >= 2


def test_no_hot_switch_on_a_lower_bound_or_without_metrics() -> None:
    """A burst that only a partial window shows grows the fleet, never switches; no window holds everything."""
    spec = make_spec(budget="4.00", cooldown=600, stabilization=300)
    decisions, fleet = replay(spec, [2500.0] * 40, HOT)
    last = decisions[-1]
    assert last.config.placement == Placement("fp32", "l4")
    now = 40 * STEP
    state = last.state.with_fleet(fleet.observed(now))
    partial = decide(spec, TABLE, Observation(6000.0, complete=False), state, now, hot_tiers=HOT)
    assert partial.tier == "fp32" and partial.node_pool == "l4"
    assert partial.action in {"ScaleUp", "Hold"} and partial.replicas >= last.replicas
    assert partial.state.last_hot_switch_at == last.state.last_hot_switch_at
    unknown = decide(spec, TABLE, None, state, now, hot_tiers=HOT)
    assert unknown.config == last.config and unknown.code == "NoMetrics"
    # the same burst, observed in full, is met by the loaded faster tier at once
    complete = decide(spec, TABLE, Observation(6000.0), state, now, hot_tiers=HOT)
    assert complete.action == "SwitchTier" and complete.tier == "int8" and "no new pods" in complete.reason


def test_on_the_faster_tier_the_pods_are_not_shrunk_below_what_the_way_back_needs() -> None:
    """After a burst met by a hot switch to int8, scaling in keeps what fp32 on the same pods needs for the load
    seen, so the way back is not undone (shrinking only to grow again before returning is churn)."""
    spec = make_spec(budget="10.00", cooldown=10_000, stabilization=60)
    tuning = replace(DEFAULT_TUNING, hot_dwell_seconds=10_000.0)  # no voluntary switch back in this test ...
    estimate = {Placement(*key): capacity(*key) for key in TABLE.curves}
    fleet = SimFleet(STARTUP, UNIT_COST, capacity=estimate, hot=HOT_BOTH)
    rates = [2500.0] * 40 + [6000.0] * 3 + [2500.0] * 20
    # ... nor a cold one (the cooldown runs from the start); placed for the load from the first tick (fp32@l4)
    state, observation = PolicyState(last_switch_at=0.0), Observation(rates[0])
    on_int8 = []
    for i, rate in enumerate(rates):
        now = i * STEP
        decision = decide(
            spec, TABLE, observation, state.with_fleet(fleet.observed(now)), now, hot_tiers=HOT_BOTH, tuning=tuning
        )
        fleet.apply(decision.config, now, instant=i == 0)
        fleet.advance(now, rates[i - 1] if i else None)
        state, observation = decision.state, Observation(rate)
        if i > 43 and decision.config.placement == Placement("int8", "l4"):
            on_int8.append(decision)
    assert any(d.code == "LoadFalling" for d in on_int8)  # it does scale in after the burst ...
    fp32_needs = math.ceil(2500.0 / capacity("fp32", "l4"))
    assert fp32_needs > math.ceil(2500.0 / capacity("int8", "l4"))
    assert min(d.replicas for d in on_int8) >= fp32_needs  # ... but not below what fp32 needs on the same pods


def _on_int8(now: float, starting: tuple[float, ...], rate: float) -> PolicyState:
    """int8@l4 x2 after a burst, a long flat window of ``rate`` observed in full, the last hot switch long ago."""
    history = tuple((now - STEP * k, rate) for k in range(60, 0, -1))
    return PolicyState(
        desired=Config("int8", "l4", 2),
        last_tick_at=now - STEP,
        rate_history=history,
        scale_down_window=((now - STEP, rate),),
        observed_since=now - 2000.0,
        last_hot_switch_at=now - 2000.0,
    ).with_fleet((ReplicaGroup("int8", "l4", ready=2 - len(starting), starting=starting),))


def test_the_hot_switch_back_waits_for_replicas_ready_when_it_lands_not_a_tick_later() -> None:
    """fp32 needs both pods for the load: with one of them ready only a few seconds after the switch would land,
    the pods stay on int8 this tick (switching would leave one fp32 replica serving all of it until then)."""
    spec = make_spec(budget="10.00", cooldown=600, stabilization=60)
    rate = 1400.0
    assert math.ceil(rate / capacity("fp32", "l4")) == 2
    now = 5000.0
    almost = now + 5.0 - STARTUP["l4"]  # ready 5 s from now: within the tick, after the 2 s hot switch
    decision = decide(spec, TABLE, Observation(rate), _on_int8(now, (almost,), rate), now, hot_tiers=HOT)
    assert decision.tier == "int8", decision.reason
    decision = decide(spec, TABLE, Observation(rate), _on_int8(now + STEP, (), rate), now + STEP, hot_tiers=HOT)
    assert (decision.tier, decision.node_pool, decision.code) == ("fp32", "l4", "LoadAllows"), decision.reason
    assert "no new pods" in decision.reason


def test_back_to_the_accurate_tier_prefers_the_pods_that_load_it_over_a_slightly_cheaper_cold_move() -> None:
    """On int8@l4 after a burst, fp32 is a hot switch away on the same pods; fp32 on the CPU pool would cost a
    little less per hour, but not the saving a move for cost alone needs (Tuning.switch_saving): no new pods."""
    spec = make_spec(budget="10.00", cooldown=600, stabilization=60)
    table = make_table()
    l4, cpu = capacity("fp32", "l4"), capacity("fp32", "cpu")
    rate = 900.0
    hysteresis = 1.0 + DEFAULT_TUNING.upgrade_hysteresis
    l4_cost = math.ceil(rate * hysteresis / l4) * UNIT_COST["l4"]
    cpu_cost = math.ceil(rate * hysteresis / cpu) * UNIT_COST["cpu"]
    assert (1.0 - DEFAULT_TUNING.switch_saving) * l4_cost < cpu_cost < l4_cost  # cheaper, but not by enough
    now = 5000.0
    decision = decide(spec, table, Observation(rate), _on_int8(now, (), rate), now, hot_tiers=HOT)
    assert (decision.tier, decision.node_pool) == ("fp32", "l4"), decision.reason
    assert "no new pods" in decision.reason


def _int8_fleet(ready: int, settled: tuple[float, str, int] | None) -> PolicyState:
    """int8@l4 with ``ready`` replicas, all ready, ticked 10 s ago, fully observed; ``settled`` as given."""
    return PolicyState(
        desired=Config("int8", "l4", ready), observed_since=0.0, last_tick_at=990.0, settled=settled
    ).with_fleet((ReplicaGroup("int8", "l4", ready=ready),))


def _saturated_latency() -> float:
    """A latency above what int8@l4 shows at its saturation rate: a queue builds."""
    curve = TABLE.curve("int8", "l4")
    assert curve is not None
    return 2 * curve.latency_at(curve.saturation_rps, 99.0)


def test_no_speed_sample_while_the_metrics_window_still_holds_the_tier_switched_from() -> None:
    # an emergency hot switch leaves an overloaded tier behind: the minute of latency the operator reports next is
    # mostly that tier's, and must not mark the tier switched to as saturated (slower than profiled)
    spec = make_spec(budget=None)
    overloaded = _saturated_latency()
    rate = 2 * 0.5 * capacity("int8", "l4")  # two replicas at half their capacity: a rate that is sampled
    seconds = DEFAULT_TUNING.metrics_window_seconds
    state = _int8_fleet(2, (1000.0 - seconds, "int8@l4", 2))  # the same two ready replicas for a whole window
    just = decide(spec, TABLE, Observation(rate, overloaded), replace(state, last_hot_switch_at=995.0), 1000.0)
    assert just.state.correction("int8", "l4") == 1.0
    settled = replace(state, last_hot_switch_at=1000.0 - seconds)
    later = decide(spec, TABLE, Observation(rate, overloaded), settled, 1000.0, hot_tiers=HOT)
    assert later.state.correction("int8", "l4") < 1.0  # a minute on, the same reading is this tier's own


def test_no_speed_sample_while_the_metrics_window_still_holds_fewer_ready_replicas() -> None:
    # bursts-1193: a scale-up from 5 to 31 replicas became ready during an overload; the next tick's latency was the
    # backlog of the 5, read against 31 ready replicas as "saturated at a sixth of the profiled rate", and the tier
    # stayed marked slow for hours (the fleet switched hot to a slower tier and sat at the budget's ceiling)
    spec = make_spec(budget=None)
    overloaded = _saturated_latency()
    rate = 4 * 0.5 * capacity("int8", "l4")  # four replicas at half their capacity: a rate that is sampled
    seconds = DEFAULT_TUNING.metrics_window_seconds
    state = _int8_fleet(4, (900.0, "int8@l4", 2))  # until this tick two of them were ready
    now = 1000.0
    first = decide(spec, TABLE, Observation(rate, overloaded), state, now)
    assert first.state.correction("int8", "l4") == 1.0
    assert first.state.settled == (now, "int8@l4", 4)
    # the four have been ready for a whole metrics window: the same reading now says something about them
    later = replace(state, last_tick_at=now + seconds - 10.0, settled=first.state.settled)
    sampled = decide(spec, TABLE, Observation(rate, overloaded), later, now + seconds)
    assert sampled.state.correction("int8", "l4") < 1.0
    assert sampled.state.settled == (now, "int8@l4", 4)


def test_after_a_restart_the_first_tick_takes_the_fleet_as_it_was_for_a_whole_window() -> None:
    # a state rebuilt after an operator restart has no last tick and no settled fleet: no change was seen, so the
    # first reading is sampled at once, as it was before the guard (a fleet slower than profiled is caught at once)
    spec = make_spec(budget=None)
    rate = 2 * 0.5 * capacity("int8", "l4")
    seconds = DEFAULT_TUNING.metrics_window_seconds
    rebuilt = PolicyState(desired=Config("int8", "l4", 2)).with_fleet((ReplicaGroup("int8", "l4", ready=2),))
    decision = decide(spec, TABLE, Observation(rate, _saturated_latency()), rebuilt, 1000.0)
    assert decision.state.settled == (1000.0 - seconds, "int8@l4", 2)
    assert decision.state.correction("int8", "l4") < 1.0


def test_the_settled_fleet_survives_the_state_round_trip() -> None:
    state = PolicyState(settled=(120.0, "int8@l4", 3))
    assert PolicyState.from_dict(state.to_dict()).settled == (120.0, "int8@l4", 3)
    assert PolicyState.from_dict({"desired": None}).settled is None  # a state written before the field: unknown


def test_no_speed_sample_from_a_window_that_held_an_overload_the_profile_predicts() -> None:
    # ten seconds ago more reached each replica than the profile says it drains: the high latency now is that
    # backlog draining (in the simulator, whose replicas run exactly as profiled, such readings took 171 of the
    # 200 tuning scenarios' corrections below 0.97), not slow replicas
    spec = make_spec(budget=None)
    curve = TABLE.curve("int8", "l4")
    assert curve is not None
    high = _saturated_latency()
    rate = 2 * 0.5 * capacity("int8", "l4")
    state = _int8_fleet(2, (1000.0 - DEFAULT_TUNING.metrics_window_seconds, "int8@l4", 2))
    overloaded = replace(state, rate_history=((990.0, 2 * 1.2 * curve.saturation_rps),))
    after = decide(spec, TABLE, Observation(rate, high), overloaded, 1000.0)
    assert after.state.correction("int8", "l4") == 1.0
    calm = replace(state, rate_history=((990.0, rate),))
    slow = decide(spec, TABLE, Observation(rate, high), calm, 1000.0)
    assert slow.state.correction("int8", "l4") < 1.0  # no overload to explain it: the replicas are slower


def test_no_speed_sample_of_any_kind_before_the_ready_replicas_served_a_whole_window() -> None:
    # an unsaturated reading too: the latency of fewer replicas read against more looks like slower replicas
    spec = make_spec(budget=None)
    curve = TABLE.curve("int8", "l4")
    assert curve is not None
    rate = 4 * 0.6 * capacity("int8", "l4")
    latency = curve.latency_at(rate / 3, 99.0)  # what three replicas showed for this rate
    first = decide(spec, TABLE, Observation(rate, latency), _int8_fleet(4, (900.0, "int8@l4", 3)), 1000.0)
    assert first.state.correction("int8", "l4") == 1.0


def test_back_to_a_slower_tier_by_choice_waits_for_a_fully_observed_window() -> None:
    # noise-0069: a hot switch to int8 at minute 3, back to fp32 at minute 5 before the 600 s window was observed
    # in full: "a move never lowers what the replicas serve" then asked for int8's capacity in fp32 replicas and
    # started four more (up to the budget's limit), let go when the window was covered five minutes later
    spec = make_spec(budget="10.00", cooldown=600, stabilization=600)
    rate = 900.0
    assert math.ceil(rate * 1.05 / capacity("fp32", "l4")) <= 2  # the two ready pods serve it on fp32
    now = 5000.0
    fresh = replace(_on_int8(now, (), rate), observed_since=now - 300.0)
    waiting = decide(spec, TABLE, Observation(rate), fresh, now, hot_tiers=HOT)
    assert (waiting.tier, waiting.replicas) == ("int8", 2), waiting.reason
    covered = decide(spec, TABLE, Observation(rate), _on_int8(now, (), rate), now, hot_tiers=HOT)
    assert (covered.tier, covered.replicas) == ("fp32", 2), covered.reason
    assert "no new pods" in covered.reason


def test_a_hot_switch_to_a_faster_tier_keeps_every_pod() -> None:
    # ramp-0062: a forced hot switch (the budget cannot hold the rising load on fp32) cut 10 replicas to the 3 int8
    # needs, and a minute later the way back to fp16 started 7 again; a hot switch only re-routes the same pods
    spec = make_spec(budget="6.00", cooldown=600, stabilization=60)
    per = capacity("fp32", "l4")
    now = 5000.0
    # the load rose steadily for three minutes to 90 % of what six fp32 replicas serve: it outgrows them soon
    history = tuple((now - STEP * k, per * 6 * (0.9 - 0.02 * k)) for k in range(20, 0, -1))
    rate = per * 6 * 0.9
    state = PolicyState(
        desired=Config("fp32", "l4", 6),
        last_tick_at=now - STEP,
        rate_history=history,
        scale_down_window=((now - STEP, history[-1][1]),),
        observed_since=now - 2000.0,
        last_hot_switch_at=now - 2000.0,
    ).with_fleet((ReplicaGroup("fp32", "l4", ready=6),))
    decision = decide(spec, TABLE, Observation(rate), state, now, hot_tiers=HOT)
    assert decision.tier == "int8", decision.reason
    assert "no new pods" in decision.reason
    assert decision.replicas == 6, decision.reason


def test_a_tick_without_metrics_neither_settles_a_changed_fleet_nor_unsettles_an_unchanged_one() -> None:
    # a missing reading teaches nothing, so the settled fleet is carried over as it was; the next reading compares
    # the fleet with it: two more ready replicas since (ready during the gap) start the window again, the same
    # two do not
    spec = make_spec(budget=None)
    overloaded = _saturated_latency()
    rate = 2 * 0.5 * capacity("int8", "l4")
    seconds = DEFAULT_TUNING.metrics_window_seconds
    state = _int8_fleet(2, (1000.0 - seconds, "int8@l4", 2))
    gap = decide(spec, TABLE, None, state, 1000.0)
    assert gap.code == "NoMetrics" and gap.state.settled == (1000.0 - seconds, "int8@l4", 2)
    same = decide(spec, TABLE, Observation(rate, overloaded), gap.state, 1010.0)
    assert same.state.settled == (1000.0 - seconds, "int8@l4", 2)
    assert same.state.correction("int8", "l4") < 1.0  # the same two replicas for a whole window: sampled
    grown = gap.state.with_fleet((ReplicaGroup("int8", "l4", ready=4),))
    after = decide(spec, TABLE, Observation(2 * rate, overloaded), grown, 1010.0)
    assert after.state.settled == (1010.0, "int8@l4", 4)
    assert after.state.correction("int8", "l4") == 1.0  # the window still holds the two replicas' latency

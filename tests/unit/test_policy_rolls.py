"""Rolling (cold) switches that the load outgrows while they roll: a roll never stalls with both placements paid."""

from __future__ import annotations

from fulcrum.policy import DEFAULT_TUNING, Config, Placement, ReplicaGroup
from fulcrum.simulate.engine import make_setting, simulate_policy
from fulcrum.simulate.fleet import SimFleet
from fulcrum.simulate.scenarios import generated
from tests.unit.test_policy_support import make_spec, make_table, replay_on_fleet

TABLE = make_table()
UNIT_COST = {"l4": 1.0, "cpu": 0.25}
STARTUP = {"l4": 60.0, "cpu": 30.0}
STEP = 10.0


def capacity(tier: str, pool: str) -> float:
    return TABLE.capacity(tier, pool, 25 * (1 - DEFAULT_TUNING.latency_margin), 99.0)


def stalled(groups: tuple[ReplicaGroup, ...]) -> bool:
    """Two placements serving side by side, neither growing: a roll that moves no further."""
    return sum(1 for g in groups if g.ready > 0) >= 2 and not any(g.starting for g in groups)


def test_a_roll_the_load_outgrows_goes_back_to_the_placement_it_leaves() -> None:
    """Back to fp32 at 4 000 rps, then 7 000 rps three ticks later: fp32 within the 10.00/h budget serves about
    6 800 rps. Before, the roll sat at fp32@l4 x9 beside int8@cpu x2 for good (neither could move within the
    budget, and a roll in progress blocked every other move); now it goes back to int8, whose replicas serve."""
    spec = make_spec(budget="10.00", cooldown=600, stabilization=60)
    rates = [9000.0] * 80 + [4000.0] * 3 + [7000.0] * 60
    replayed = replay_on_fleet(spec, rates, table=TABLE, step=STEP)
    decisions, fleets = replayed.decisions, replayed.fleets
    up = next(i for i, d in enumerate(decisions) if d.code == "LoadAllows")
    assert decisions[up].tier == "fp32"
    back = next(i for i in range(up + 1, len(decisions)) if decisions[i].tier != "fp32")
    going_back = decisions[back]
    assert going_back.code == "BudgetAhead" and "goes back to int8" in going_back.reason, going_back.reason
    assert going_back.node_pool == decisions[up - 1].node_pool  # the placement the roll was leaving
    assert (back - up) * STEP < spec.scaling.tier_switch_cooldown_seconds  # a way back waits for no cooldown
    assert going_back.state.last_switch_at == back * STEP  # and starts one, so it does not flap
    assert not any(stalled(groups) for groups in fleets[back:])
    last = decisions[-1]
    assert last.tier == "int8" and last.replicas * capacity("int8", last.node_pool) >= 7000.0


def test_going_back_rolls_down_the_placement_rolled_to() -> None:
    """The fleet model reverses a roll as the operator does: the placement rolled to keeps its ready replicas until
    the one gone back to serves without them (not dropped at once, which would leave the fleet short)."""
    int8_cpu, fp32_l4 = Placement("int8", "cpu"), Placement("fp32", "l4")
    estimate = {Placement(*key): capacity(*key) for key in TABLE.curves}
    fleet = SimFleet(STARTUP, UNIT_COST, capacity=estimate, hot={})
    fleet.apply(Config("int8", "cpu", 6), 0.0, instant=True)
    fleet.apply(Config("fp32", "l4", 3), 10.0)  # a roll to fp32 starts
    fleet.advance(80.0, 5000.0)  # fp32 ready: half of int8 goes, the rest still serves (an even split)
    assert fleet.ready(fp32_l4, 80.0) == 3 and fleet.ready(int8_cpu, 80.0) == 3
    fleet.apply(Config("int8", "cpu", 8), 90.0)  # back to int8
    fleet.advance(90.0, 5000.0)
    assert fleet.ready(fp32_l4, 90.0) == 3  # still serving beside int8's three: without them the fleet is short
    assert fleet.ready(int8_cpu, 90.0) == 3 and fleet.serving == fp32_l4  # the placement now being left
    fleet.advance(130.0, 5000.0)  # the new int8 replicas are ready: fp32 goes
    assert fleet.ready(fp32_l4, 130.0) == 0 and fleet.ready(int8_cpu, 130.0) == 8
    assert fleet.serving == int8_cpu


def longest_stall_minutes(name: str, *, hot: bool) -> float:
    scenario = generated(int(name.rsplit("-", 1)[1]))
    assert scenario.name == name
    setting = make_setting(scenario.spec, scenario.profiles, scenario.trace, 15.0, hot=scenario.hot if hot else None)
    run = simulate_policy(setting, "fulcrum", record_fleet=True)
    by_time: dict[float, list[tuple[int, int]]] = {}
    for t, row in run.fleet:
        by_time.setdefault(t, []).append((row.ready, row.starting))
    longest = current = 0
    for t in run.times:
        rows = by_time.get(t, [])
        if sum(1 for ready, _ in rows if ready > 0) >= 2 and not any(starting for _, starting in rows):
            current += 1
            longest = max(longest, current)
        else:
            current = 0
    return longest * 15.0 / 60.0


def test_a_move_by_choice_does_not_start_a_roll_the_swings_would_stall() -> None:
    """noise-0069 (6 % noise, a pool of big replicas at 3.4x the price of five small ones): a move to one big
    replica chosen at 799 rps, ready at 952 rps, stalled for 48 minutes beside five small replicas (each pod
    takes an even share, so the big one served a small one's). The roll is now played out against the swings
    over the big pool's start-up, which it would not survive."""
    assert longest_stall_minutes("noise-0069", hot=True) < 5.0


def test_a_roll_back_to_the_accurate_tier_that_the_load_outgrows_goes_back() -> None:
    """noise-1104 without hot tiers: back to fp32 x6 from fp16 x2 at 1 600 rps, then 2 800 rps; the mixed fleet
    served 2 238 rps for half an hour before. Now the roll goes back to fp16."""
    assert longest_stall_minutes("noise-1104", hot=False) < 5.0

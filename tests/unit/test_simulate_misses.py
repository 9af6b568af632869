"""Why a run's requests were late (fulcrum.simulate.misses), and the engine's per-step late series it reads."""

from __future__ import annotations

import pytest

from fulcrum.simulate.engine import make_setting, simulate, simulate_policy
from fulcrum.simulate.misses import Misses, attribute, misses_of
from fulcrum.simulate.report import json_document
from fulcrum.simulate.scenarios import generated

STEP = 15.0


def split(
    rates: list[float],
    late: list[float],
    costs: list[float] | None = None,
    *,
    startup: float = 60.0,
    budget: float | None = None,
) -> Misses:
    return attribute(
        rates,
        late,
        costs or [1.0] * len(rates),
        requests=sum(r * STEP for r in rates),
        step_seconds=STEP,
        percentile=99.0,
        startup_seconds=startup,
        budget=budget,
        cheapest_replica=1.0,
    )


def test_a_first_burst_is_unforeseen_and_the_same_burst_again_is_the_policys_own() -> None:
    base, burst = [100.0] * 20, [500.0] * 4
    rates = base + burst + base + burst + base
    late = [0.0] * len(rates)
    for start in (20, 44):
        for k in range(start, start + 4):
            late[k] = 1000.0
    misses = split(rates, late)
    total = sum(r * STEP for r in rates)
    assert misses.unforeseen == pytest.approx(4000.0 / total)
    assert misses.other == pytest.approx(4000.0 / total)
    assert misses.at_budget == 0.0 and misses.tail == 0.0


def test_a_known_load_missed_at_the_budget_is_at_the_budget() -> None:
    rates = [100.0] * 10 + [500.0] * 10 + [100.0] * 10 + [500.0] * 10
    late = [0.0] * 30 + [1000.0] * 10
    costs = [2.0] * 30 + [9.5] * 10  # the cheapest replica costs 1.0: 9.5 + 1 > 10
    misses = split(rates, late, costs, budget=10.0)
    assert misses.at_budget == pytest.approx(10_000.0 / sum(r * STEP for r in rates))
    assert misses.unforeseen == 0.0 and misses.other == 0.0


def test_the_backlog_a_burst_leaves_counts_with_the_burst() -> None:
    rates = [100.0] * 20 + [500.0] * 2 + [100.0] * 3
    late = [0.0] * 20 + [2000.0, 2000.0, 900.0, 300.0, 0.0]  # the load is back, the queue still drains
    misses = split(rates, late)
    assert misses.unforeseen == pytest.approx(5200.0 / sum(r * STEP for r in rates))
    assert misses.other == 0.0


def test_late_requests_within_the_percentile_are_the_slos_tail() -> None:
    rates = [100.0] * 10
    late = [0.5 * 0.01 * 100.0 * STEP] * 10  # half of what a p99 SLO allows, every step
    misses = split(rates, late)
    assert misses.tail == pytest.approx(0.005)
    assert misses.unforeseen == misses.at_budget == misses.other == 0.0
    assert misses.total == pytest.approx(0.005)


def test_series_of_unequal_length_are_refused() -> None:
    with pytest.raises(ValueError, match="unequal length"):
        split([1.0, 2.0], [0.0])


def test_the_engines_late_series_adds_up_to_what_the_run_missed() -> None:
    scenario = generated(1058)
    setting = make_setting(scenario.spec, scenario.profiles, scenario.trace, STEP, hot=scenario.hot)
    run = simulate_policy(setting, "fulcrum")
    assert len(run.late) == len(run.rates)
    assert float(run.late.sum()) == pytest.approx(run.requests - run.in_time, rel=1e-6)
    misses = misses_of(run, setting)
    assert misses.total == pytest.approx(1.0 - run.slo_attainment, rel=1e-6)
    # its one bad stretch is the first burst of the run: a load no earlier tick had shown
    assert misses.unforeseen > 0.9 * misses.total


def test_simulate_json_says_why_each_policys_requests_were_late() -> None:
    scenario = generated(1058)
    setting = make_setting(scenario.spec, scenario.profiles, scenario.trace, STEP, hot=scenario.hot)
    document = json_document(simulate(setting, ["fulcrum", "static"]), setting)
    for row in document["policies"].values():
        late = row["lateRequests"]
        assert set(late) == {"tail", "unforeseen", "atBudget", "other"}
        assert sum(late.values()) == pytest.approx(1.0 - row["sloAttainment"], abs=1e-5)
    # static is sized for the trace's own peak from the start: it never runs short, only the SLO's tail is late;
    # fulcrum's late requests are the first burst of the run, a load no earlier tick had shown
    static, fulcrum = (document["policies"][name]["lateRequests"] for name in ("static", "fulcrum"))
    assert static["unforeseen"] == static["atBudget"] == static["other"] == 0.0 < static["tail"]
    assert fulcrum["unforeseen"] > 0.9 * sum(fulcrum.values())

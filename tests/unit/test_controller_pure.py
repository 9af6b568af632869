"""Pure helpers of the controller: apply-skipping, job phases, status patches, control-loop memory, status folding."""

from __future__ import annotations

import copy

from fulcrum.api import LastDecision, ModelDeploymentStatus, parse_model_deployment
from fulcrum.controller.control import ControlLoop, Tick, format_time, parse_time, significant
from fulcrum.controller.outcome import fold_tick
from fulcrum.controller.reconciler import is_subset, job_phase, status_patch
from fulcrum.metrics.window import FleetMetrics
from fulcrum.policy import Decision, PolicyState
from fulcrum.policy.types import Config
from fulcrum.reconcile.plan import LiveServer
from tests.support.manifest_cases import BASE

SPEC = parse_model_deployment(copy.deepcopy(BASE)).spec


def test_is_subset_ignores_server_defaults_but_not_changes() -> None:
    desired = {"spec": {"replicas": 2, "template": {"containers": [{"name": "t", "args": ["a"]}]}}}
    live = {
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {"containers": [{"name": "t", "args": ["a"], "imagePullPolicy": "IfNotPresent"}]},
        }
    }
    assert is_subset(desired, live)
    assert not is_subset({"spec": {"replicas": 3}}, live)
    assert not is_subset({"spec": {"template": {"containers": [{"name": "t", "args": ["a", "b"]}]}}}, live)


def test_job_phase() -> None:
    assert job_phase({}) == "Running"
    assert job_phase({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == "Succeeded"
    assert job_phase({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == "Failed"


def test_status_patch_nulls_what_disappeared() -> None:
    assert status_patch({"activeTier": "fp32", "replicas": 2}, {"replicas": 3}) == {"activeTier": None, "replicas": 3}


def test_significant_rounds_noise_away() -> None:
    assert significant(812.04) == "812"
    assert significant(17.234, 2) == "17"
    assert significant(0.01234, 2) == "0.012"
    assert significant(0.0) == "0"


def test_time_round_trip() -> None:
    assert parse_time(format_time(1_800_000_000.0)) == 1_800_000_000.0


def test_memory_is_rebuilt_from_status_after_a_restart() -> None:
    loop = ControlLoop(tick_seconds=15, clock=lambda: 1_800_000_100.0)
    status = ModelDeploymentStatus(
        active_tier="fp16",
        active_node_pool="l4",
        replicas=3,
        last_decision=LastDecision(time=format_time(1_800_000_000.0), action="SwitchTier", reason="x"),
    )
    memory = loop._memory(("ns", "md"), status)
    assert memory.state.desired == Config("fp16", "l4", 3)
    assert memory.state.last_switch_at == 1_800_000_000.0
    assert loop.due(("ns", "md"))


def test_a_switch_remembers_what_the_fleet_served_for_the_roll() -> None:
    loop = ControlLoop(tick_seconds=15, clock=lambda: 1_800_000_100.0)
    key = ("ns", "md")
    assert loop.rollout(key) is None
    memory = loop._memory(key, ModelDeploymentStatus())
    memory.capacities = {("fp32", "l4"): 700.0, ("int8", "l4"): 2100.0}
    memory.rate = 3000.0
    switch = Decision("SwitchTier", "int8", "l4", 1, "BudgetAhead", "x", PolicyState(), Config("fp32", "l4", 6))  # type: ignore[arg-type]
    servers = [LiveServer("md-fp32-l4", "fp32", "l4", 6, 6)]
    loop._remember_switch(memory, switch, servers)
    rollout = loop.rollout(key)
    assert rollout is not None and rollout.rate == 3000.0
    assert rollout.references == {("fp32", "l4"): 6 * 700.0}
    assert rollout.capacities[("int8", "l4")] == 2100.0
    # once the old placement is gone, so is its reference
    steady = Decision("Hold", "int8", "l4", 2, "Steady", "x", PolicyState(), Config("int8", "l4", 2))
    loop._remember_switch(memory, steady, [LiveServer("md-int8-l4", "int8", "l4", 2, 2)])
    assert memory.references == {}


def test_a_tick_gives_the_planner_the_policys_capacities() -> None:
    from fulcrum.reconcile.builds import BuildResult, merge_tiers
    from tests.unit.test_reconcile_plan import _manifest_model

    ok = BuildResult("Succeeded", manifest=_manifest_model("cpu", {"fp32": "Ready", "fp16": "Ready"}), repository="/m")
    tiers = merge_tiers([t.name for t in SPEC.tiers], {"cpu": ok})
    loop = ControlLoop(tick_seconds=15, clock=lambda: 1_800_000_000.0)
    servers = [LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 1)]
    loop.tick(("ns", "md"), spec=SPEC, status=ModelDeploymentStatus(), tiers=tiers, servers=servers, observed=None)
    rollout = loop.rollout(("ns", "md"))
    assert rollout is not None and rollout.rate is None and rollout.references == {}
    assert set(rollout.capacities) == {("fp32", "cpu"), ("fp16", "cpu")}
    assert all(capacity > 0.0 for capacity in rollout.capacities.values())


def _decision(action: str, code: str = "LoadRising") -> Decision:
    return Decision(
        action,
        "fp32",
        "l4",
        3,
        code,
        "load rose to 800 rps; 3 replicas keep p99 under 25 ms",  # type: ignore[arg-type]
        PolicyState(),
        Config("fp32", "l4", 2),
    )


def test_fold_tick_records_decision_observed_and_conditions() -> None:
    status = ModelDeploymentStatus(cost_per_hour="2.55")
    observed = FleetMetrics(812.04, 17.234, 1.11, 0.0, 3, 60)
    folded, events = fold_tick(
        spec=SPEC,
        status=status,
        previous=ModelDeploymentStatus(),
        tick=Tick(_decision("ScaleUp"), observed),
        now=1_800_000_000.0,
        generation=4,
    )
    assert folded.observed is not None and folded.observed.requests_per_second == "812"
    assert folded.last_decision is not None and folded.last_decision.from_ == "fp32@l4x2"
    assert folded.last_decision.to == "fp32@l4x3"
    assert [e.reason for e in events] == ["ScaleUp"]
    slo = folded.condition("SLOMet")
    budget = folded.condition("WithinBudget")
    assert slo is not None and slo.status == "True" and slo.observed_generation == 4
    assert budget is not None and budget.status == "True"


def test_fold_tick_hold_writes_nothing_new_and_reports_misses() -> None:
    previous, _ = fold_tick(
        spec=SPEC,
        status=ModelDeploymentStatus(cost_per_hour="2.55"),
        previous=ModelDeploymentStatus(),
        tick=Tick(_decision("ScaleUp"), FleetMetrics(800, 17.0, 1, 0, 3, 60)),
        now=1_800_000_000.0,
        generation=4,
    )
    again, events = fold_tick(
        spec=SPEC,
        status=previous.model_copy(deep=True),
        previous=previous,
        tick=Tick(_decision("Hold", "Steady"), FleetMetrics(800, 18.0, 1, 0, 3, 60)),
        now=1_800_000_015.0,
        generation=4,
    )
    assert events == []
    assert again.last_decision == previous.last_decision
    assert again.condition("SLOMet") == previous.condition("SLOMet")  # only the figures moved: no churn
    missed, _ = fold_tick(
        spec=SPEC,
        status=ModelDeploymentStatus(cost_per_hour="20"),
        previous=previous,
        tick=Tick(_decision("Hold", "BudgetExhausted"), FleetMetrics(5000, 80.0, 30, 0, 3, 60)),
        now=1_800_000_030.0,
        generation=4,
    )
    slo = missed.condition("SLOMet")
    budget = missed.condition("WithinBudget")
    assert slo is not None and (slo.status, slo.reason) == ("False", "BudgetExhausted")
    assert budget is not None and (budget.status, budget.reason) == ("False", "OverBudget")

"""Pure helpers of the controller: apply-skipping, job phases, status patches, control-loop memory, status folding."""

from __future__ import annotations

import copy

from fulcrum.api import LastDecision, ModelDeploymentStatus, PolicyMemory, parse_model_deployment
from fulcrum.controller.control import ControlLoop, Tick, format_time, observation_of, parse_time, significant
from fulcrum.controller.outcome import fold_tick
from fulcrum.controller.reconciler import is_subset, job_phase, status_patch
from fulcrum.metrics.sources import Reading
from fulcrum.metrics.window import FleetMetrics
from fulcrum.policy import Decision, PolicyState
from fulcrum.policy.types import Action, Config
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


def test_is_subset_compares_resource_quantities_by_value() -> None:
    """The API server returns `cpu: "0.5"` as 500m and `nvidia.com/gpu: 1` as "1": neither is a change."""
    desired = {"resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": 1}}}
    live = {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}}}
    assert is_subset(desired, live)
    assert is_subset({"emptyDir": {"sizeLimit": "1024Mi"}}, {"emptyDir": {"sizeLimit": "1Gi"}})
    assert not is_subset({"resources": {"requests": {"cpu": "0.6"}}}, live)
    # only quantities: "1" and "1.0" stay different everywhere else (labels, args, images)
    assert not is_subset({"labels": {"v": "1.0"}}, {"labels": {"v": "1"}})


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
    assert memory.state.rate_history == () and memory.state.scale_down_window == ()
    assert loop.due(("ns", "md"))


def test_the_switch_time_and_speed_corrections_survive_a_restart_through_status() -> None:
    """A later ScaleUp overwrites lastDecision; status.policy still has when the switch started."""
    status = ModelDeploymentStatus(
        active_tier="fp16",
        active_node_pool="l4",
        replicas=4,
        last_decision=LastDecision(time=format_time(1_800_000_050.0), action="ScaleUp", reason="x"),
        policy=PolicyMemory(last_switch_time=format_time(1_800_000_000.0), speed_corrections={"fp16@l4": "1.3"}),
    )
    state = ControlLoop()._memory(("ns", "md"), status).state
    assert state.last_switch_at == 1_800_000_000.0
    assert state.correction("fp16", "l4") == 1.3


def test_ticks_are_scheduled_on_the_monotonic_clock() -> None:
    """A wall-clock step (NTP, a resumed VM) neither skips nor repeats ticks."""
    wall, mono = [1_800_000_000.0], [100.0]
    loop = ControlLoop(tick_seconds=15, clock=lambda: wall[0], monotonic=lambda: mono[0])
    key = ("ns", "md")
    loop._memory(key, ModelDeploymentStatus()).last_tick = mono[0]
    wall[0] -= 3600  # the wall clock jumps back an hour
    mono[0] += 10
    assert not loop.due(key)
    wall[0] += 7200  # and forward two
    assert not loop.due(key)
    mono[0] += 4  # 14 s of the 15 s tick (a tick is due at 90 %, so a slightly early reconcile still ticks)
    assert loop.due(key) and loop.until_due(key) == 1.0  # while the scheduled look comes a whole tick after the last
    mono[0] += 1
    assert loop.until_due(key) == 0.0


def test_the_policy_gets_unknown_not_zero_without_a_window_and_a_lower_bound_when_pods_are_missing() -> None:
    metrics = FleetMetrics(120.0, 12.0, 1.0, 0.0, 2, 60.0)
    assert observation_of(None) is None
    assert observation_of(Reading(None, False, "ScrapeFailed", "x", healthy=False)) is None
    partial = observation_of(Reading(metrics, False, "ScrapeFailed", "1 of 3 pods did not answer", healthy=False))
    assert partial is not None and partial.requests_per_second == 120.0 and partial.complete is False
    whole = observation_of(Reading(metrics, True))
    assert whole is not None and whole.complete is True


def test_a_switch_remembers_what_the_fleet_served_for_the_roll() -> None:
    loop = ControlLoop(tick_seconds=15, clock=lambda: 1_800_000_100.0)
    key = ("ns", "md")
    assert loop.rollout(key) is None
    memory = loop._memory(key, ModelDeploymentStatus())
    memory.capacities = {("fp32", "l4"): 700.0, ("int8", "l4"): 2100.0}
    memory.rate = 3000.0
    switch = Decision("SwitchTier", "int8", "l4", 1, "BudgetAhead", "x", PolicyState(), Config("fp32", "l4", 6))
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


def test_going_back_mid_roll_rolls_down_the_placement_rolled_to() -> None:
    """The policy goes back to the placement a roll is leaving when the load outgrows the roll's target: the
    placement rolled to is now the one left, with what the mixed fleet serves as its reference, and the plan cuts
    it by the same rule (keeping what the placement gone back to cannot serve yet)."""
    from fulcrum.reconcile.plan import Choice, old_replicas

    loop = ControlLoop(tick_seconds=15, clock=lambda: 1_800_000_100.0)
    key = ("ns", "md")
    memory = loop._memory(key, ModelDeploymentStatus())
    memory.capacities = {("int8", "cpu"): 680.0, ("fp32", "l4"): 750.0}
    memory.rate = 5000.0
    servers = [LiveServer("md-int8-cpu", "int8", "cpu", 6, 6)]
    ahead = Decision("SwitchTier", "fp32", "l4", 3, "LoadAllows", "x", PolicyState(), Config("int8", "cpu", 6))
    loop._remember_switch(memory, ahead, servers)
    assert memory.references == {("int8", "cpu"): 6 * 680.0}
    servers = [LiveServer("md-int8-cpu", "int8", "cpu", 3, 3), LiveServer("md-fp32-l4", "fp32", "l4", 3, 3)]
    back = Decision("SwitchTier", "int8", "cpu", 8, "BudgetAhead", "x", PolicyState(), Config("fp32", "l4", 3))
    loop._remember_switch(memory, back, servers)
    assert memory.references == {("fp32", "l4"): 6 * 680.0}  # 3 + 3 pods at the slower share
    rollout = loop.rollout(key)
    assert rollout is not None
    choice = Choice("int8", "cpu", 8)
    # int8's three ready pods do not serve 5 000 rps (nor the reference) alone: fp32 keeps its three
    assert old_replicas(servers[1], choice, 3, rollout, alone=True) == 3
    # the new int8 pods are ready: fp32 goes
    assert old_replicas(servers[1], choice, 8, rollout, alone=True) == 0


def test_a_tick_gives_the_planner_the_policys_capacities() -> None:
    from fulcrum.reconcile.builds import BuildResult, merge_tiers
    from tests.unit.test_reconcile_plan import _manifest_model

    ok = BuildResult("Succeeded", manifest=_manifest_model("cpu", {"fp32": "Ready", "fp16": "Ready"}), repository="/m")
    tiers = merge_tiers([t.name for t in SPEC.tiers], {"cpu": ok})
    loop = ControlLoop(tick_seconds=15, clock=lambda: 1_800_000_000.0)
    servers = [LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 1)]
    loop.tick(("ns", "md"), spec=SPEC, status=ModelDeploymentStatus(), tiers=tiers, servers=servers, reading=None)
    rollout = loop.rollout(("ns", "md"))
    assert rollout is not None and rollout.rate is None and rollout.references == {}
    assert set(rollout.capacities) == {("fp32", "cpu"), ("fp16", "cpu")}
    assert all(capacity > 0.0 for capacity in rollout.capacities.values())


def _reading(metrics: FleetMetrics) -> Reading:
    return Reading(metrics, True, "MetricsAvailable", "3 of 3 ready pods scraped", window_end=1_800_000_000.0)


def _decision(action: Action, code: str = "LoadRising") -> Decision:
    return Decision(
        action,
        "fp32",
        "l4",
        3,
        code,
        "load rose to 800 rps; 3 replicas keep p99 under 25 ms",
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
        tick=Tick(_decision("ScaleUp"), _reading(observed), 1_800_000_000.0),
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
        tick=Tick(_decision("ScaleUp"), _reading(FleetMetrics(800, 17.0, 1, 0, 3, 60)), 1_800_000_000.0),
        generation=4,
    )
    again, events = fold_tick(
        spec=SPEC,
        status=previous.model_copy(deep=True),
        previous=previous,
        tick=Tick(_decision("Hold", "Steady"), _reading(FleetMetrics(800, 18.0, 1, 0, 3, 60)), 1_800_000_015.0),
        generation=4,
    )
    assert events == []
    assert again.last_decision == previous.last_decision
    assert again.condition("SLOMet") == previous.condition("SLOMet")  # only the figures moved: no churn
    missed, _ = fold_tick(
        spec=SPEC,
        status=ModelDeploymentStatus(cost_per_hour="20"),
        previous=previous,
        tick=Tick(
            _decision("Hold", "BudgetExhausted"), _reading(FleetMetrics(5000, 80.0, 30, 0, 3, 60)), 1_800_000_030.0
        ),
        generation=4,
    )
    slo = missed.condition("SLOMet")
    budget = missed.condition("WithinBudget")
    assert slo is not None and (slo.status, slo.reason) == ("False", "BudgetExhausted")
    assert budget is not None and (budget.status, budget.reason) == ("False", "OverBudget")


def test_without_metrics_slo_is_unknown_and_metrics_available_warns_once_naming_what_failed() -> None:
    healthy, _ = fold_tick(
        spec=SPEC,
        status=ModelDeploymentStatus(cost_per_hour="2.55"),
        previous=ModelDeploymentStatus(),
        tick=Tick(_decision("Hold", "Steady"), _reading(FleetMetrics(800, 17.0, 1, 0, 3, 60)), 1_800_000_000.0),
        generation=4,
    )
    outage = Reading(
        None,
        False,
        "ScrapeFailed",
        "no Triton pod answered: pod md-fp32-l4-x (http://10.0.0.5:8002/metrics): Connection refused",
        healthy=False,
    )
    failed, events = fold_tick(
        spec=SPEC,
        status=healthy.model_copy(deep=True),
        previous=healthy,
        tick=Tick(_decision("Hold", "Steady"), outage, 1_800_000_015.0),
        generation=4,
    )
    metrics = failed.condition("MetricsAvailable")
    slo = failed.condition("SLOMet")
    assert metrics is not None and (metrics.status, metrics.reason) == ("False", "ScrapeFailed")
    assert "md-fp32-l4-x" in metrics.message and "10.0.0.5:8002" in metrics.message
    assert slo is not None and (slo.status, slo.reason) == ("Unknown", "NoMetrics")
    assert [(e.type, e.reason) for e in events] == [("Warning", "ScrapeFailed")]
    # the figures stay as last measured, with the time of their window
    assert failed.observed == healthy.observed and failed.observed is not None and failed.observed.time
    again, events = fold_tick(
        spec=SPEC,
        status=failed.model_copy(deep=True),
        previous=failed,
        tick=Tick(_decision("Hold", "Steady"), outage, 1_800_000_030.0),
        generation=4,
    )
    assert events == [] and again.to_wire() == failed.to_wire()
    back, events = fold_tick(
        spec=SPEC,
        status=again.model_copy(deep=True),
        previous=again,
        tick=Tick(_decision("Hold", "Steady"), _reading(FleetMetrics(800, 17.0, 1, 0, 3, 60)), 1_800_000_045.0),
        generation=4,
    )
    assert back.condition("MetricsAvailable").status == "True"  # type: ignore[union-attr]
    assert [(e.type, e.reason) for e in events] == [("Normal", "MetricsAvailable")]


def test_observed_figures_carry_their_window_time_and_are_rewritten_only_when_they_change() -> None:
    first, _ = fold_tick(
        spec=SPEC,
        status=ModelDeploymentStatus(),
        previous=ModelDeploymentStatus(),
        tick=Tick(_decision("Hold", "Steady"), _reading(FleetMetrics(812.0, 17.0, 1, 0, 3, 60)), 1_800_000_000.0),
        generation=1,
    )
    assert first.observed is not None and first.observed.time == format_time(1_800_000_000.0)
    later = Reading(FleetMetrics(812.4, 17.04, 1, 0, 3, 60), True, window_end=1_800_000_015.0)
    same, _ = fold_tick(
        spec=SPEC,
        status=first.model_copy(deep=True),
        previous=first,
        tick=Tick(_decision("Hold", "Steady"), later, 1_800_000_015.0),
        generation=1,
    )
    assert same.observed == first.observed  # same rounded figures: no write, the old window time stays
    moved = Reading(FleetMetrics(900.0, 17.0, 1, 0, 3, 60), True, window_end=1_800_000_030.0)
    new, _ = fold_tick(
        spec=SPEC,
        status=first.model_copy(deep=True),
        previous=first,
        tick=Tick(_decision("Hold", "Steady"), moved, 1_800_000_030.0),
        generation=1,
    )
    assert new.observed is not None and new.observed.time == format_time(1_800_000_030.0)


def test_collecting_a_window_again_keeps_the_metrics_conditions_as_last_known() -> None:
    """After a failover the new leader's first scrape is only a baseline: nothing new is known, nothing is written;
    after an outage the condition stays False until a window is there, and then says metrics are back."""
    measured = Tick(_decision("Hold", "Steady"), _reading(FleetMetrics(800, 17.0, 1, 0, 3, 60)), 1_800_000_000.0)
    healthy, _ = fold_tick(
        spec=SPEC, status=ModelDeploymentStatus(), previous=ModelDeploymentStatus(), tick=measured, generation=1
    )
    collecting = Reading(None, False, "Collecting", "collecting a metrics window (0 s of at least 10 s)", healthy=None)
    restarted, events = fold_tick(
        spec=SPEC,
        status=healthy.model_copy(deep=True),
        previous=healthy,
        tick=Tick(_decision("Hold", "NoMetrics"), collecting, 1_800_000_015.0),
        generation=1,
    )
    assert restarted.to_wire() == healthy.to_wire() and events == []
    outage = Reading(None, False, "ScrapeFailed", "no Triton pod answered: pod x (u): refused", healthy=False)
    failed, _ = fold_tick(
        spec=SPEC,
        status=healthy.model_copy(deep=True),
        previous=healthy,
        tick=Tick(_decision("Hold", "NoMetrics"), outage, 1_800_000_030.0),
        generation=1,
    )
    again, _ = fold_tick(
        spec=SPEC,
        status=failed.model_copy(deep=True),
        previous=failed,
        tick=Tick(_decision("Hold", "NoMetrics"), collecting, 1_800_000_045.0),
        generation=1,
    )
    assert again.condition("MetricsAvailable") == failed.condition("MetricsAvailable")
    back, events = fold_tick(
        spec=SPEC,
        status=again.model_copy(deep=True),
        previous=again,
        tick=Tick(_decision("Hold", "Steady"), _reading(FleetMetrics(800, 17.0, 1, 0, 3, 60)), 1_800_000_060.0),
        generation=1,
    )
    assert back.condition("MetricsAvailable").status == "True"  # type: ignore[union-attr]
    assert [(e.type, e.reason) for e in events] == [("Normal", "MetricsAvailable")]
    first, _ = fold_tick(
        spec=SPEC,
        status=ModelDeploymentStatus(),
        previous=ModelDeploymentStatus(),
        tick=Tick(_decision("Hold", "NoMetrics"), collecting, 1_800_000_000.0),
        generation=1,
    )
    assert first.condition("MetricsAvailable").status == "Unknown"  # type: ignore[union-attr]

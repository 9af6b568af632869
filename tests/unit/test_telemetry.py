"""The operator's metric set: labels per ModelDeployment, no stale series, SLO attainment, builds, time to Ready."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fulcrum.api import Condition, ModelDeploymentStatus, ServingStatus, parse_model_deployment
from fulcrum.controller import telemetry
from fulcrum.controller.control import format_time
from fulcrum.metrics.window import FleetMetrics
from fulcrum.policy import Decision, PolicyState
from fulcrum.policy.types import Config
from fulcrum.reconcile.builds import BuildResult
from fulcrum.reconcile.plan import LiveServer, PoolBuild
from tests.support.manifest_cases import BASE

SPEC = parse_model_deployment(copy.deepcopy(BASE)).spec
T0 = 1_800_000_000.0


def series(name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every exposed sample of ``name`` whose labels include ``labels``."""
    found = {}
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(name: str, **labels: str) -> float | None:
    found = series(name, **labels)
    assert len(found) <= 1, found
    return next(iter(found.values()), None)


@pytest.fixture
def key(request: pytest.FixtureRequest) -> Any:
    key = ("telemetry-test", request.node.name.replace("_", "-")[:50])
    yield key
    telemetry.forget(*key)


def observed(rate: float, latency_ms: float | None) -> FleetMetrics:
    return FleetMetrics(rate, latency_ms, 1.0, 0.0, 2, 60.0)


def decision(action: str = "Hold", code: str = "Steady") -> Decision:
    return Decision(action, "fp32", "l4", 2, code, "x", PolicyState(), Config("fp32", "l4", 2))  # type: ignore[arg-type]


def export(key: Any, **kwargs: Any) -> None:
    args: dict[str, Any] = {
        "spec": SPEC,
        "previous": ModelDeploymentStatus(),
        "status": ModelDeploymentStatus(cost_per_hour="1.70"),
        "servers": [LiveServer("md-fp32-l4", "fp32", "l4", 2, 2)],
        "builds": [],
        "observed": None,
        "decision": None,
        "ticked": False,
        "created": None,
        "now": T0,
    }
    telemetry.export_model(key, **{**args, **kwargs})


def test_placements_that_went_leave_no_series(key: Any) -> None:
    ns, name = key
    export(key, servers=[LiveServer("a", "fp32", "l4", 3, 2), LiveServer("b", "fp16", "l4", 1, 0)])
    assert value("fulcrum_replicas", namespace=ns, model_deployment=name, tier="fp32", node_pool="l4") == 3
    assert value("fulcrum_ready_replicas", namespace=ns, model_deployment=name, tier="fp16", node_pool="l4") == 0
    export(key, servers=[LiveServer("b", "fp16", "l4", 2, 2)])
    assert set(series("fulcrum_replicas", namespace=ns, model_deployment=name)) == {
        (("model_deployment", name), ("namespace", ns), ("node_pool", "l4"), ("tier", "fp16"))
    }
    assert value("fulcrum_cost_per_hour", namespace=ns, model_deployment=name) == 1.70
    assert value("fulcrum_budget_per_hour", namespace=ns, model_deployment=name) == 12.50
    no_budget = SPEC.model_copy(update={"budget": SPEC.budget.model_copy(update={"max_cost_per_hour": None})})
    export(key, spec=no_budget)
    assert value("fulcrum_budget_per_hour", namespace=ns, model_deployment=name) is None


def test_the_served_model_name_is_a_series_to_join_tritons_with(key: Any) -> None:
    ns, name = key
    export(key, status=ModelDeploymentStatus(serving=ServingStatus(model_name="ranker")))
    assert value("fulcrum_served_model", namespace=ns, model_deployment=name, model="ranker") == 1
    export(key, status=ModelDeploymentStatus(serving=ServingStatus(model_name="ranking")))
    assert set(series("fulcrum_served_model", namespace=ns, model_deployment=name)) == {
        (("model", "ranking"), ("model_deployment", name), ("namespace", ns))
    }


def test_unknown_load_is_no_figure_not_zero(key: Any) -> None:
    ns, name = key
    export(key, ticked=True, observed=observed(40.0, 12.0), decision=decision())
    assert value("fulcrum_observed_requests_per_second", namespace=ns, model_deployment=name) == 40.0
    assert value("fulcrum_observed_latency_seconds", namespace=ns, model_deployment=name, percentile="99") == 0.012
    assert value("fulcrum_slo_latency_seconds", namespace=ns, model_deployment=name, percentile="99") == 0.025
    assert value("fulcrum_metrics_available", namespace=ns, model_deployment=name) == 1
    export(key, ticked=True, observed=None, decision=decision(), now=T0 + 15)
    assert value("fulcrum_metrics_available", namespace=ns, model_deployment=name) == 0
    assert value("fulcrum_observed_requests_per_second", namespace=ns, model_deployment=name) is None
    assert value("fulcrum_observed_latency_seconds", namespace=ns, model_deployment=name) is None


def test_slo_attainment_counts_the_seconds_within_the_slo(key: Any) -> None:
    ns, name = key
    for i, latency in enumerate([10.0, 20.0, 30.0, 24.0, None]):
        export(key, ticked=True, observed=observed(50.0, latency), decision=decision(), now=T0 + 15 * i)
    # the first tick has no previous one; then 15 s each: 20 (met), 30 (missed), 24 (met), None (not measured)
    assert value("fulcrum_slo_evaluated_seconds_total", namespace=ns, model_deployment=name) == 45
    assert value("fulcrum_slo_met_seconds_total", namespace=ns, model_deployment=name) == 30
    # a loop that stalled for an hour does not count an hour of serving: at most one metrics window
    export(key, ticked=True, observed=observed(50.0, 30.0), decision=decision(), now=T0 + 3600)
    assert value("fulcrum_slo_evaluated_seconds_total", namespace=ns, model_deployment=name) == 105


def test_decisions_by_action_and_reason_code(key: Any) -> None:
    ns, name = key
    export(key, ticked=True, decision=decision("ScaleUp", "LoadRising"))
    export(key, ticked=True, decision=decision("ScaleUp", "LoadRising"), now=T0 + 5)
    export(key, ticked=True, decision=decision("SwitchTier", "BudgetExhausted"), now=T0 + 10)
    export(key, ticked=True, decision=decision("Hold", "Steady"), now=T0 + 15)
    labels = {"namespace": ns, "model_deployment": name}
    assert value("fulcrum_decisions_total", **labels, action="ScaleUp", reason="LoadRising") == 2
    assert value("fulcrum_decisions_total", **labels, action="SwitchTier", reason="BudgetExhausted") == 1
    assert not series("fulcrum_decisions_total", **labels, action="Hold")
    assert value("fulcrum_budget_exhausted", **labels) == 0  # the last tick held: the budget no longer binds


def test_builds_phases_durations_and_time_to_ready(key: Any) -> None:
    ns, name = key
    labels = {"namespace": ns, "model_deployment": name}
    pools = {p.name: p for p in SPEC.node_pools}
    export(key, builds=[PoolBuild(pools["l4"], "k1", job_phase="Running"), PoolBuild(pools["cpu"], "k2")])
    assert value("fulcrum_build_phase", **labels, node_pool="l4", phase="Running") == 1
    assert value("fulcrum_build_phase", **labels, node_pool="l4", phase="Failed") == 0
    assert value("fulcrum_build_phase", **labels, node_pool="cpu", phase="Pending") == 1
    job = {"status": {"startTime": format_time(T0), "completionTime": format_time(T0 + 200)}}
    telemetry.record_build(key, "l4", "Succeeded", job)
    failed = {"status": {"startTime": format_time(T0), "conditions": [{"lastTransitionTime": format_time(T0 + 50)}]}}
    telemetry.record_build(key, "cpu", "Failed", failed)
    export(
        key,
        builds=[
            PoolBuild(pools["l4"], "k1", BuildResult("Succeeded")),
            PoolBuild(pools["cpu"], "k2", BuildResult("Failed")),
        ],
    )
    assert value("fulcrum_build_phase", **labels, node_pool="cpu", phase="Failed") == 1
    assert value("fulcrum_builds_total", **labels, node_pool="l4", outcome="Succeeded") == 1
    assert value("fulcrum_build_duration_seconds_sum", **labels, node_pool="l4", outcome="Succeeded") == 200
    assert value("fulcrum_build_duration_seconds_sum", **labels, node_pool="cpu", outcome="Failed") == 50

    not_ready = ModelDeploymentStatus(
        conditions=[Condition(type="Ready", status="False", last_transition_time=format_time(T0 + 10))]
    )
    ready = ModelDeploymentStatus(
        conditions=[Condition(type="Ready", status="True", last_transition_time=format_time(T0 + 250))]
    )
    export(key, previous=not_ready, status=ready, created=format_time(T0), now=T0 + 250)
    export(key, previous=ready, status=ready, created=format_time(T0), now=T0 + 300)  # still Ready: no observation
    assert value("fulcrum_time_to_ready_seconds_count", **labels) == 1
    assert value("fulcrum_time_to_ready_seconds_sum", **labels) == 240


def test_hot_switch_hook(key: Any) -> None:
    ns, name = key
    telemetry.record_hot_switch(key, "fp32", "fp16", 1.6)
    telemetry.record_hot_switch(key, "fp16", "fp32", None, outcome="Failed")
    labels = {"namespace": ns, "model_deployment": name}
    assert value("fulcrum_hot_switches_total", **labels, from_tier="fp32", to_tier="fp16", outcome="Succeeded") == 1
    assert value("fulcrum_hot_switches_total", **labels, from_tier="fp16", to_tier="fp32", outcome="Failed") == 1
    assert value("fulcrum_hot_switch_duration_seconds_count", **labels) == 1


def test_a_deleted_model_deployment_takes_every_series_with_it(key: Any) -> None:
    ns, name = key
    export(key, ticked=True, observed=observed(5.0, 9.0), decision=decision("ScaleUp", "LoadRising"))
    export(key, ticked=True, observed=observed(5.0, 9.0), decision=decision(), now=T0 + 5)
    telemetry.record_build(key, "l4", "Succeeded", {"status": {}})
    telemetry.record_hot_switch(key, "fp32", "fp16", 1.0)
    mine = [
        (f.name, s.name)
        for f in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for s in f.samples
        if s.labels.get("model_deployment") == name
    ]
    assert len({f for f, _ in mine}) >= 15, mine
    telemetry.forget(ns, name)
    assert not [s for s in generate_latest(REGISTRY).decode().splitlines() if f'model_deployment="{name}"' in s]


def test_no_created_series() -> None:
    assert "_created" not in generate_latest(REGISTRY).decode()

"""The pure reconciliation plan: builds, serving choice, switches without gaps, honest conditions."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from fulcrum.api import ModelDeploymentStatus, parse_model_deployment
from fulcrum.reconcile.builds import BuildResult, result_from_termination_message
from fulcrum.reconcile.plan import Choice, LiveServer, Plan, PoolBuild, Rollout, plan, pool_builds
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
from tests.support.manifest_cases import BASE

SETTINGS = OperatorSettings()
STORAGE = RepositoryStorage.parse("s3://models/fulcrum")
NOW = "2026-11-29T12:00:00Z"


def _body() -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    body["metadata"].update(namespace="shop", uid="u1", generation=2)
    return body


def _manifest(pool: str, states: dict[str, str]) -> dict[str, Any]:
    profile = [
        {
            "nodePool": pool,
            "points": [{"requestsPerSecond": 100.0, "latencyMs": {"p50": 1, "p90": 2, "p95": 3, "p99": 4}}],
        }
    ]
    return {
        "model": "ctr-ranker",
        "source": {"uri": "file://./model.onnx", "sha256": "0" * 64},
        "tiers": [
            {
                "name": name,
                "precision": name,
                "backend": "onnxruntime",
                "state": state,
                "reason": "" if state == "Ready" else "AccuracyCheckFailed",
                "message": "",
                "accuracy": {"MeanAbsError": 0.001},
                "profiles": profile if state == "Ready" else [],
                "path": name,
            }
            for name, state in states.items()
        ],
    }


def _run(
    results: dict[str, BuildResult] | None = None,
    servers: list[LiveServer] | None = None,
    status: ModelDeploymentStatus | None = None,
    jobs: dict[str, str] | None = None,
) -> Plan:
    body = _body()
    md = parse_model_deployment(body)
    builds = pool_builds(md.spec, SETTINGS, {}, {})
    by_pool = results or {}
    keyed = {b.key: by_pool[b.pool.name] for b in builds if b.pool.name in by_pool}
    phases = {b.key: jobs[b.pool.name] for b in builds if jobs and b.pool.name in jobs}
    builds = pool_builds(md.spec, SETTINGS, keyed, phases)  # type: ignore[arg-type]
    return plan(
        md=body,
        spec=md.spec,
        status=status or ModelDeploymentStatus(),
        settings=SETTINGS,
        builds=builds,
        servers=servers or [],
        now=NOW,
    )


def _deployment(p: Plan) -> dict[str, Any]:
    return next(m for m in p.apply if m["kind"] == "Deployment")


def _cond(p: Plan, type_: str) -> tuple[str, str]:
    c = p.status.condition(type_)
    assert c is not None
    return c.status, c.reason


def test_first_reconcile_starts_one_build_per_pool_and_reports_building() -> None:
    p = _run()
    assert sorted(b.pool.name for b in p.start_builds) == ["cpu", "l4"]
    assert p.apply == []
    assert _cond(p, "RepositoryReady") == ("False", "Building")
    assert _cond(p, "Reconciling")[0] == "True"
    assert _cond(p, "Ready") == ("False", "Reconciling")
    assert _cond(p, "Stalled")[0] == "False"
    assert p.status.observed_generation == 2
    assert all(c.observed_generation == 2 for c in p.status.conditions)


def test_running_builds_are_not_started_twice() -> None:
    p = _run(jobs={"cpu": "Running", "l4": "Running"})
    assert p.start_builds == []


def _all_tiers_built(pool: str) -> BuildResult:
    return BuildResult(
        "Succeeded",
        manifest=_manifest_model(pool, {"fp32": "Ready", "fp16": "Ready", "int8": "Ready"}),
        repository=f"/models/{pool}",
    )


def test_serves_first_ready_tier_on_cheapest_profiled_pool() -> None:

    p = _run(results={"l4": _all_tiers_built("l4"), "cpu": _all_tiers_built("cpu")})
    assert p.choice is not None and (p.choice.tier, p.choice.pool, p.choice.replicas) == ("fp32", "cpu", 1)
    kinds = [m["kind"] for m in p.apply]
    assert kinds == ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    args = _deployment(p)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--model-repository=/models/cpu" in args and "--load-model=fp32" in args
    assert _cond(p, "RepositoryReady") == ("True", "BuildSucceeded")
    assert _cond(p, "Available") == ("False", "ReplicasNotReady")
    assert p.status.cost_per_hour == "0.20"


def _manifest_model(pool: str, states: dict[str, str]):  # type: ignore[no-untyped-def]
    from fulcrum.api import BuildManifest

    return BuildManifest.model_validate(_manifest(pool, states))


def test_ready_when_replicas_ready_and_status_stable() -> None:
    ok = BuildResult(
        "Succeeded",
        manifest=_manifest_model("cpu", {"fp32": "Ready", "fp16": "Ready", "int8": "Ready"}),
        repository="/m",
    )
    first = _run(results={"cpu": ok, "l4": ok}, servers=[LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 1)])
    assert _cond(first, "Ready") == ("True", "Serving")
    again = _run(
        results={"cpu": ok, "l4": ok},
        servers=[LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 1)],
        status=first.status,
    )
    assert again.status.to_wire() == first.status.to_wire(), "an unchanged world must not change status"
    assert again.events == []


def test_failed_accuracy_tier_is_skipped() -> None:
    result = BuildResult(
        "Succeeded",
        manifest=_manifest_model("cpu", {"fp32": "Failed", "fp16": "Ready", "int8": "Failed"}),
        repository="/m",
    )
    p = _run(results={"cpu": result, "l4": result})
    assert p.choice is not None and p.choice.tier == "fp16"
    tiers = {t.name: t for t in p.status.tiers}
    assert tiers["fp32"].state == "Failed" and tiers["fp32"].reason == "AccuracyCheckFailed"


def test_failed_build_stalls_with_builder_reason_and_no_retry() -> None:
    failed = result_from_termination_message(
        '{"error": {"reason": "SourceNotFound", "message": "model.source.uri file:///nope.onnx: no such file"}}',
        succeeded=False,
        storage=STORAGE,
    )
    p = _run(results={"cpu": failed, "l4": failed})
    assert p.start_builds == []
    assert _cond(p, "RepositoryReady") == ("False", "SourceNotFound")
    assert _cond(p, "Stalled") == ("True", "SourceNotFound")
    assert "file:///nope.onnx" in p.status.condition("Ready").message  # type: ignore[union-attr]
    assert any(e.type == "Warning" and e.reason == "SourceNotFound" for e in p.events)


def test_switch_keeps_old_deployment_until_new_is_ready() -> None:
    ok = BuildResult(
        "Succeeded",
        manifest=_manifest_model("cpu", {"fp32": "Ready", "fp16": "Ready", "int8": "Ready"}),
        repository="/m",
    )
    old = LiveServer("ctr-ranker-fp16-cpu", "fp16", "cpu", 2, 2)
    p = _run(results={"cpu": ok, "l4": ok}, servers=[old, LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 0)])
    assert p.delete_deployments == []
    assert _cond(p, "Reconciling") == ("True", "RollingOut")
    p = _run(results={"cpu": ok, "l4": ok}, servers=[old, LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 1)])
    assert p.delete_deployments == ["ctr-ranker-fp16-cpu"]


def test_termination_message_parsing() -> None:
    import json

    key = "a" * 64
    published = f"s3://models/fulcrum/{key}"
    good = result_from_termination_message(
        json.dumps({"manifest": _manifest("cpu", {"fp32": "Ready"}), "repository": published, "key": key}),
        succeeded=True,
        storage=STORAGE,
    )
    assert good.phase == "Succeeded" and good.repository == published and good.manifest is not None
    assert result_from_termination_message("", succeeded=True, storage=STORAGE).reason == "NoBuildResult"
    assert (
        result_from_termination_message("Traceback: boom", succeeded=False, storage=STORAGE).message
        == "Traceback: boom"
    )
    assert BuildResult.from_record(good.to_record()) == good
    # a result that points serving elsewhere than the storage is refused, whatever a build pod wrote
    elsewhere = result_from_termination_message(
        json.dumps({"manifest": _manifest("cpu", {"fp32": "Ready"}), "repository": f"s3://other/x/{key}"}),
        succeeded=True,
        storage=STORAGE,
    )
    assert (elsewhere.phase, elsewhere.reason) == ("Failed", "BadBuildResult")
    nowhere = result_from_termination_message(
        json.dumps({"manifest": _manifest("cpu", {"fp32": "Ready"}), "repository": ""}), succeeded=True, storage=STORAGE
    )
    assert (nowhere.phase, nowhere.reason) == ("Failed", "BadBuildResult")
    # an error from the step that stopped the build (fetch: wrong credentials) keeps its reason and message
    denied = result_from_termination_message(
        json.dumps({"error": {"reason": "SourceFailed", "message": "cannot read s3://b/m.pt2: AccessDenied"}}),
        succeeded=True,
        storage=STORAGE,
    )
    assert (denied.phase, denied.reason, denied.message) == (
        "Failed",
        "SourceFailed",
        "cannot read s3://b/m.pt2: AccessDenied",
    )
    spec_error = result_from_termination_message('{"error": "spec.tiers: bad"}', succeeded=False, storage=STORAGE)
    assert (spec_error.phase, spec_error.reason, spec_error.message) == (
        "Failed",
        "InvalidBuildSpec",
        "spec.tiers: bad",
    )


def _plan_switch(servers: list[LiveServer], rollout: Rollout | None, replicas: int = 4) -> Plan:
    ok = BuildResult(
        "Succeeded",
        manifest=_manifest_model("cpu", {"fp32": "Ready", "fp16": "Ready", "int8": "Ready"}),
        repository="/m",
    )
    body = _body()
    md = parse_model_deployment(body)
    builds = pool_builds(md.spec, SETTINGS, {b.key: ok for b in pool_builds(md.spec, SETTINGS, {}, {})}, {})
    return plan(
        md=body,
        spec=md.spec,
        status=ModelDeploymentStatus(),
        settings=SETTINGS,
        builds=builds,
        servers=servers,
        now=NOW,
        choice=Choice("fp32", "cpu", replicas),
        rollout=rollout,
    )


def test_old_fleet_is_cut_to_its_ready_replicas_until_the_new_one_is_full() -> None:
    """Without the control loop's estimates (no Rollout) a switch is blue/green."""
    old = LiveServer("ctr-ranker-fp16-cpu", "fp16", "cpu", 4, 2)  # 2 of 4 serve, 2 still start
    new = LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 3, 1)
    p = _plan_switch([old, new], None, replicas=3)
    assert p.delete_deployments == [] and p.scale_deployments == {"ctr-ranker-fp16-cpu": 2}
    full = LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 3, 3)
    p = _plan_switch([old, full], None, replicas=3)
    assert p.delete_deployments == ["ctr-ranker-fp16-cpu"]


def test_a_switch_rolls_the_old_fleet_down_as_new_replicas_become_ready() -> None:
    capacities = {("fp16", "cpu"): 100.0, ("fp32", "cpu"): 100.0}
    rollout = Rollout(capacities, rate=None, references={("fp16", "cpu"): 500.0})
    old = LiveServer("ctr-ranker-fp16-cpu", "fp16", "cpu", 5, 5)
    p = _plan_switch([old, LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 0)], rollout)
    assert p.delete_deployments == [] and p.scale_deployments == {}
    # one new replica ready: one old one goes (capacity for capacity), and the status costs what remains
    p = _plan_switch([old, LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 1)], rollout)
    assert p.delete_deployments == [] and p.scale_deployments == {"ctr-ranker-fp16-cpu": 4}
    cpu = parse_model_deployment(_body()).spec.node_pool("cpu").cost_per_hour
    assert p.status.cost_per_hour == format((4 + 4) * cpu, ".2f")
    # the observed load needs only 250 rps: old replicas it does not need go at once
    low = Rollout(capacities, rate=250.0, references={("fp16", "cpu"): 500.0})
    p = _plan_switch([old, LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 4, 1)], low)
    assert p.scale_deployments == {"ctr-ranker-fp16-cpu": 2}
    # none of it is needed: deleted
    p = _plan_switch([old, LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 4, 3)], low)
    assert p.delete_deployments == ["ctr-ranker-fp16-cpu"]


def test_without_capacities_a_switch_cuts_over_when_the_new_fleet_is_ready() -> None:
    old = LiveServer("ctr-ranker-fp16-cpu", "fp16", "cpu", 5, 5)
    unknown = Rollout({("fp32", "cpu"): 100.0}, rate=100.0)  # no estimate for the old placement
    for rollout in (None, unknown):
        p = _plan_switch([old, LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 4, 3)], rollout)
        assert p.delete_deployments == [] and p.scale_deployments == {}
        p = _plan_switch([old, LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 4, 4)], rollout)
        assert p.delete_deployments == ["ctr-ranker-fp16-cpu"]


def test_previous_build_serves_while_the_new_one_runs() -> None:
    body = _body()
    md = parse_model_deployment(body)
    old_result = BuildResult(
        "Succeeded", manifest=_manifest_model("cpu", {"fp32": "Ready", "old-tier": "Ready"}), repository="/m/old"
    )
    previous = PoolBuild(md.spec.node_pool("cpu"), "oldkey", old_result)
    builds = pool_builds(md.spec, SETTINGS, {}, {b.key: "Running" for b in pool_builds(md.spec, SETTINGS, {}, {})})
    status = ModelDeploymentStatus(active_tier="fp32", active_node_pool="cpu", replicas=2)
    p = plan(
        md=body,
        spec=md.spec,
        status=status,
        settings=SETTINGS,
        builds=builds,
        servers=[LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 2, 2)],
        now=NOW,
        previous_build=previous,
    )
    assert p.choice == Choice("fp32", "cpu", 2)
    args = _deployment(p)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--model-repository=/models/old" in args
    assert p.delete_deployments == [] and p.start_builds == []
    assert p.status.build is not None and p.status.build.key == "oldkey"
    assert _cond(p, "RepositoryReady") == ("False", "Building")
    # the previous build serves: the model stays Ready while the new one builds
    assert _cond(p, "Ready") == ("True", "Serving") and _cond(p, "Available")[0] == "True"
    assert _cond(p, "Reconciling") == ("True", "Building")


def test_ready_stays_true_while_a_placement_that_serves_scales_up() -> None:
    """A scale-up is the model being reconciled, not the model going away: no Ready=False, no Normal event back."""
    body = _body()
    md = parse_model_deployment(body)
    ok = BuildResult("Succeeded", manifest=_manifest_model("cpu", {"fp32": "Ready", "fp16": "Ready"}), repository="/m")
    builds = pool_builds(md.spec, SETTINGS, {b.key: ok for b in pool_builds(md.spec, SETTINGS, {}, {})}, {})

    def reconcile(ready: int, replicas: int, status: ModelDeploymentStatus) -> Plan:
        return plan(
            md=body,
            spec=md.spec,
            status=status,
            settings=SETTINGS,
            builds=builds,
            servers=[LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", replicas, ready)],
            now=NOW,
            choice=Choice("fp32", "cpu", replicas),
        )

    settled = reconcile(2, 2, ModelDeploymentStatus())
    assert _cond(settled, "Ready") == ("True", "Serving")
    scaling = reconcile(2, 4, settled.status)
    assert _cond(scaling, "Ready") == ("True", "Serving")
    assert _cond(scaling, "Reconciling") == ("True", "RollingOut")
    assert [e.reason for e in scaling.events] == []
    done = reconcile(4, 4, scaling.status)
    assert _cond(done, "Ready") == ("True", "Serving") and _cond(done, "Reconciling") == ("False", "Settled")
    assert done.events == []
    ready = done.status.condition("Ready")
    assert ready is not None and ready.last_transition_time == settled.status.condition("Ready").last_transition_time  # type: ignore[union-attr]


def test_a_switch_in_progress_is_ready_on_the_old_placement_until_the_new_one_serves() -> None:
    ok = BuildResult(
        "Succeeded",
        manifest=_manifest_model("cpu", {"fp32": "Ready", "fp16": "Ready", "int8": "Ready"}),
        repository="/m",
    )
    old = LiveServer("ctr-ranker-fp16-cpu", "fp16", "cpu", 2, 2)
    p = _run(results={"cpu": ok, "l4": ok}, servers=[old, LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 0)])
    assert _cond(p, "Available")[0] == "True" and _cond(p, "Ready") == ("True", "Serving")


def test_a_build_waiting_for_its_retry_says_why_with_a_warning_and_is_not_stalled() -> None:
    body = _body()
    md = parse_model_deployment(body)
    keys = [b.key for b in pool_builds(md.spec, SETTINGS, {}, {})]
    builds = pool_builds(
        md.spec,
        SETTINGS,
        {},
        {k: "Retrying" for k in keys},
        details={k: "pod evicted (attempt 1); retrying at 2026-11-29T12:01:00Z" for k in keys},
    )
    p = plan(
        md=body, spec=md.spec, status=ModelDeploymentStatus(), settings=SETTINGS, builds=builds, servers=[], now=NOW
    )
    assert p.start_builds == []
    assert _cond(p, "RepositoryReady") == ("False", "BuildRetrying")
    assert "retrying at 2026-11-29T12:01:00Z" in p.status.condition("RepositoryReady").message  # type: ignore[union-attr]
    assert _cond(p, "Stalled")[0] == "False"
    assert any(e.type == "Warning" and e.reason == "BuildRetrying" for e in p.events)


def test_a_build_pod_waiting_on_a_missing_secret_says_so_until_it_goes_on() -> None:
    from fulcrum.reconcile.pods import PodProblem, pod_problem

    def pod(name: str, phase: str, *steps: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        statuses = [{"name": step, "state": state} for step, state in steps]
        return {"metadata": {"name": name}, "status": {"phase": phase, "initContainerStatuses": statuses}}

    missing = {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "team-s3" not found'}}
    waiting = pod("b-1", "Pending", ("fetch", missing))
    killed = pod("b-0", "Failed", ("build", {"terminated": {"exitCode": 137, "reason": "Error"}}))
    running = pod("b-2", "Pending", ("fetch", {"terminated": {"exitCode": 0}}), ("build", {"running": {}}))
    # a failed pod is the Job's to retry (its result says why), not a reason to block
    assert pod_problem([killed, running], exits=False) is None
    unbound = '0/9 nodes are available: persistentvolumeclaim "models" not found. preemption: not helpful'
    claim = {"metadata": {"name": "c"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unbound}]}}  # fmt: skip
    assert pod_problem([claim], exits=False) == PodProblem("Unschedulable", f"pod c: not scheduled: {unbound}")
    busy = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3: Insufficient cpu"}
    assert pod_problem([{"metadata": {"name": "d"}, "status": {"conditions": [busy]}}], exits=False) is None
    problem = pod_problem([killed, waiting], exits=False)
    assert problem == PodProblem(
        "CreateContainerConfigError",
        'pod b-1: init container fetch (?) cannot run (CreateContainerConfigError): secret "team-s3" not found',
    )

    body = _body()
    md = parse_model_deployment(body)
    keys = {b.pool.name: b.key for b in pool_builds(md.spec, SETTINGS, {}, {})}
    builds = [
        dataclasses.replace(b, problem=problem if b.key == keys["cpu"] else None)
        for b in pool_builds(md.spec, SETTINGS, {}, {k: "Running" for k in keys.values()})
    ]
    p = plan(
        md=body, spec=md.spec, status=ModelDeploymentStatus(), settings=SETTINGS, builds=builds, servers=[], now=NOW
    )
    repository = p.status.condition("RepositoryReady")
    assert repository is not None and (repository.status, repository.reason) == ("False", "CreateContainerConfigError")
    assert repository.message == f"the build on pool cpu cannot start: {problem.message}"
    assert _cond(p, "Stalled")[0] == "False"  # the kubelet retries: creating the Secret lets it go on
    assert p.start_builds == []
    assert "CreateContainerConfigError" in [e.reason for e in p.events if e.type == "Warning"]
    # the Secret exists now: building again
    builds = pool_builds(md.spec, SETTINGS, {}, {k: "Running" for k in keys.values()})
    again = plan(md=body, spec=md.spec, status=p.status, settings=SETTINGS, builds=builds, servers=[], now=NOW)
    assert _cond(again, "RepositoryReady") == ("False", "Building")


def test_a_stuck_serving_pod_says_why_in_available() -> None:
    from fulcrum.reconcile.pods import PodProblem, pod_problem

    denied = "pulling s3://models/repositories/abc: AccessDenied (HTTP 403): Access Denied"
    pods: list[dict[str, Any]] = [
        {"metadata": {"name": "ok"}, "status": {"containerStatuses": [{"name": "triton", "state": {"running": {}}}]}},
        {
            "metadata": {"name": "stuck"},
            "status": {
                "initContainerStatuses": [
                    {
                        "name": "repository",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "message": denied}},
                    }
                ]
            },
        },
    ]
    problem = pod_problem(pods)
    assert problem == PodProblem("CrashLoopBackOff", f"pod stuck: init container repository exited 1: {denied}")
    missing = {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "repo-read" not found'}}
    assert pod_problem(
        [{"metadata": {"name": "p"}, "status": {"containerStatuses": [{"name": "t", "image": "i", "state": missing}]}}]
    ) == PodProblem(
        "CreateContainerConfigError",
        'pod p: container t (i) cannot run (CreateContainerConfigError): secret "repo-read" not found',
    )
    assert pod_problem(pods[:1]) is None

    ok = BuildResult("Succeeded", manifest=_manifest_model("cpu", {"fp32": "Ready"}), repository="/m")
    body = _body()
    md = parse_model_deployment(body)
    builds = pool_builds(md.spec, SETTINGS, {b.key: ok for b in pool_builds(md.spec, SETTINGS, {}, {})}, {})
    p = plan(
        md=body, spec=md.spec, status=ModelDeploymentStatus(), settings=SETTINGS, builds=builds,
        servers=[LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 0, problem=problem)], now=NOW,
    )  # fmt: skip
    available = p.status.condition("Available")
    assert available is not None and available.reason == "CrashLoopBackOff" and denied in available.message


# --- pods that cannot start ------------------------------------------------------------------------------------


def _pod(name: str, waiting: dict[str, str] | None, image: str = "localhost:5000/nope:1") -> dict[str, Any]:
    state = {"waiting": waiting} if waiting else {"running": {}}
    return {
        "metadata": {"name": name},
        "status": {"containerStatuses": [{"name": "triton", "image": image, "state": state}]},
    }


def test_pod_problem_names_the_pod_and_the_image() -> None:
    from fulcrum.reconcile.pods import pod_problem

    assert pod_problem([]) is None
    assert pod_problem([_pod("a", None), _pod("b", {"reason": "ContainerCreating"})]) is None
    problem = pod_problem(
        [_pod("b", {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "localhost:5000/nope:1"'})]
    )
    assert problem is not None and problem.reason == "ImagePullBackOff"
    assert "pod b" in problem.message and "localhost:5000/nope:1" in problem.message
    deleting = _pod("c", {"reason": "ErrImagePull"})
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pod_problem([deleting]) is None


def test_a_serving_image_that_cannot_be_pulled_shows_in_available_and_ready() -> None:
    from fulcrum.reconcile.pods import PodProblem

    ok = BuildResult(
        "Succeeded",
        manifest=_manifest_model("cpu", {"fp32": "Ready", "fp16": "Ready", "int8": "Ready"}),
        repository="/m",
    )
    problem = PodProblem("ImagePullBackOff", "pod x: image localhost:5000/nope:1 cannot be pulled (ImagePullBackOff)")
    p = _run(
        results={"cpu": ok, "l4": ok}, servers=[LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 0, problem=problem)]
    )
    for kind in ("Available", "Ready"):
        condition = p.status.condition(kind)
        assert condition is not None
        assert (condition.status, condition.reason) == ("False", "ImagePullBackOff")
        assert "localhost:5000/nope:1" in condition.message
    # once a replica serves, a failing one is not what the object is about
    p = _run(
        results={"cpu": ok, "l4": ok}, servers=[LiveServer("ctr-ranker-fp32-cpu", "fp32", "cpu", 1, 1, problem=problem)]
    )
    assert _cond(p, "Ready") == ("True", "Serving")


def test_a_build_whose_pod_cannot_pull_its_images_names_them_in_the_conditions() -> None:
    """A build Job's pod waits on an image that cannot be pulled (here the serving image its Triton sidecar runs):
    RepositoryReady, Available and Ready say so with the kubelet's reason instead of an endless "Building"."""
    from fulcrum.reconcile.pods import PodProblem

    body = _body()
    md = parse_model_deployment(body)
    problem = PodProblem("ImagePullBackOff", "pod b-x: image localhost:5000/nope:1 cannot be pulled (ImagePullBackOff)")
    builds = [
        dataclasses.replace(b, job_phase="Running", problem=problem if b.pool.name == "cpu" else None)
        for b in pool_builds(md.spec, SETTINGS, {}, {})
    ]
    p = plan(
        md=body, spec=md.spec, status=ModelDeploymentStatus(), settings=SETTINGS, builds=builds, servers=[], now=NOW
    )
    for kind in ("RepositoryReady", "Available", "Ready"):
        condition = p.status.condition(kind)
        assert condition is not None and condition.status == "False", kind
        assert condition.reason == "ImagePullBackOff" and "localhost:5000/nope:1" in condition.message, kind
    repository = p.status.condition("RepositoryReady")
    assert repository is not None and "pool cpu" in repository.message
    assert _cond(p, "Stalled") == ("False", "Progressing")  # the kubelet keeps trying: fixable, not stalled


def test_a_pool_that_leaves_the_spec_hands_its_tier_to_the_cheapest_other_pool_until_the_policy_speaks() -> None:
    # int8 served on a pool the user just removed: until the next control tick, int8 on the cheapest pool left
    # (not the first Ready tier, which the load had outgrown), with the replicas that served

    status = ModelDeploymentStatus(active_tier="int8", active_node_pool="gone", replicas=2)
    p = _run(results={"l4": _all_tiers_built("l4"), "cpu": _all_tiers_built("cpu")}, status=status)
    assert p.choice is not None and (p.choice.tier, p.choice.pool, p.choice.replicas) == ("int8", "cpu", 2)
    # a pool still in the spec that stopped serving the tier is the policy's to replace: the first rule applies
    status = ModelDeploymentStatus(active_tier="int8", active_node_pool="l4", replicas=2)
    p = _run(results={"cpu": _all_tiers_built("cpu")}, status=status)
    assert p.choice is not None and p.choice.tier == "fp32"

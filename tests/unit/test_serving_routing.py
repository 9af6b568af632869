"""The served model name: the routing model's config, the Deployments that carry it, and what a plan routes where."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from fulcrum.api import BuildManifest, ManifestTensor, ModelDeploymentStatus, ServingStatus, parse_model_deployment
from fulcrum.controller.routing import Router, pod_routes
from fulcrum.reconcile.builds import BuildResult
from fulcrum.reconcile.plan import Choice, LiveServer, Plan, plan, pool_builds
from fulcrum.reconcile.routing import PodRoute, RoutingReport, to_route
from fulcrum.resources import labels
from fulcrum.resources.routing import (
    ROUTING_REPOSITORY,
    Route,
    ServedIO,
    ensemble_config,
    ensemble_pbtxt,
    key_digest,
    routed_model,
    routing_configmap_name,
)
from fulcrum.resources.serving import DRAIN_SECONDS
from fulcrum.resources.settings import OperatorSettings
from tests.support.manifest_cases import BASE

SETTINGS = OperatorSettings()
NOW = "2026-11-29T12:00:00Z"
IO = {
    "inputs": [
        {"name": "sparse", "dataType": "INT64", "dims": [6]},
        {"name": "dense", "dataType": "FP32", "dims": [20]},
    ],
    "outputs": [{"name": "score", "dataType": "FP32", "dims": [1]}],
    "maxBatchSize": 64,
}
MiB = 2**20
KEY = "k3y"


# --- the routing model's config -----------------------------------------------------------------------------


def _route(model: str = "int8", **io: Any) -> Route:
    manifest = BuildManifest.model_validate(
        {"model": "m", "source": {"uri": "s3://b/m", "sha256": "0" * 64}, "tiers": [], **IO, **io}
    )
    assert manifest.inputs is not None and manifest.outputs is not None and manifest.max_batch_size is not None
    return Route("ranker", model, ServedIO(tuple(manifest.inputs), tuple(manifest.outputs), manifest.max_batch_size))


def test_the_pbtxt_and_the_json_are_one_config_as_triton_reads_them() -> None:
    route = _route(
        inputs=[
            {"name": 'odd "name"\\ é', "dataType": "BYTES", "dims": [-1]},
            {"name": "dense", "dataType": "FP16", "dims": [4, 5]},
        ]
    )
    from_text = text_format.Parse(ensemble_pbtxt(route), mc.ModelConfig())
    from_json = json_format.Parse(json.dumps(ensemble_config(route)), mc.ModelConfig())
    assert from_text == from_json
    assert from_text.platform == "ensemble" and from_text.max_batch_size == 64
    assert [i.name for i in from_text.input] == ['odd "name"\\ é', "dense"]
    assert from_text.input[0].data_type == mc.TYPE_STRING and list(from_text.input[1].dims) == [4, 5]
    step = from_text.ensemble_scheduling.step[0]
    assert (step.model_name, step.model_version) == ("int8", -1)
    assert dict(step.input_map) == {'odd "name"\\ é': 'odd "name"\\ é', "dense": "dense"}
    assert dict(step.output_map) == {"score": "score"}


def test_routed_model_reads_the_step_triton_reports() -> None:
    config = json_format.MessageToDict(
        text_format.Parse(ensemble_pbtxt(_route("fp16")), mc.ModelConfig()), preserving_proto_field_name=True
    )
    assert routed_model(config) == "fp16"
    assert routed_model({"name": "x", "backend": "python"}) is None


# --- plans ----------------------------------------------------------------------------------------------------


def _body(**spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    body["metadata"].update(namespace="shop", uid="u1", generation=2)
    body["spec"].update(spec)
    return body


def _result(pool: str, sizes: dict[str, int | None] | None = None, io: bool = True) -> BuildResult:
    sizes = sizes or {"fp32": 4 * MiB, "fp16": 2 * MiB, "int8": 1 * MiB}
    profile = [
        {
            "nodePool": pool,
            "points": [{"requestsPerSecond": 100.0, "latencyMs": {"p50": 1, "p90": 2, "p95": 3, "p99": 4}}],
        }
    ]
    manifest = {
        "model": "ctr-ranker",
        "source": {"uri": "file://./model.onnx", "sha256": "0" * 64},
        "tiers": [
            {
                "name": name,
                "precision": name,
                "backend": "onnxruntime",
                "state": "Ready",
                "profiles": profile,
                "path": name,
                "sizeBytes": size,
            }
            for name, size in sizes.items()
        ],
        **(IO if io else {}),
    }
    return BuildResult("Succeeded", manifest=BuildManifest.model_validate(manifest), repository=f"/models/{pool}")


def _plan(
    choice: Choice,
    servers: list[LiveServer],
    *,
    body: dict[str, Any] | None = None,
    routes: dict[str, str] | None = None,
    status: ModelDeploymentStatus | None = None,
    io: bool = True,
) -> Plan:
    body = body or _body()
    md = parse_model_deployment(body)
    keys = pool_builds(md.spec, SETTINGS, {}, {})
    builds = pool_builds(md.spec, SETTINGS, {b.key: _result(b.pool.name, io=io) for b in keys}, {})
    return plan(
        md=body,
        spec=md.spec,
        status=status or ModelDeploymentStatus(),
        settings=SETTINGS,
        builds=builds,
        servers=servers,
        now=NOW,
        choice=choice,
        live_routes=routes,
        routing_key=KEY,
    )


def _applied(p: Plan, kind: str) -> dict[str, Any]:
    return next(m for m in p.apply if m["kind"] == kind)


def _container(dep: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = dep["spec"]["template"]["spec"]["containers"][0]
    return container


def test_a_pools_hot_deployment_loads_its_tiers_and_routes_the_served_name() -> None:
    p = _plan(Choice("fp32", "cpu", 2), [])
    dep = _applied(p, "Deployment")
    assert dep["metadata"]["name"] == "ctr-ranker-cpu"
    assert dep["metadata"]["labels"][labels.TIER] == "fp32"
    assert dep["metadata"]["annotations"][labels.LOADED_TIERS] == "fp32,fp16,int8"
    selector = dep["spec"]["selector"]["matchLabels"]
    assert labels.TIER not in selector and selector[labels.ROUTING] == "hot"
    assert labels.TIER not in dep["spec"]["template"]["metadata"]["labels"], "a pod's tier changes without a roll"
    args = _container(dep)["args"]
    assert args[:2] == ["--model-repository=/models/cpu", f"--model-repository={ROUTING_REPOSITORY}"]
    loads = [a for a in args if a.startswith("--load-model=")]
    assert loads == ["--load-model=fp32", "--load-model=fp16", "--load-model=int8", "--load-model=ctr-ranker"]
    volume = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "routing")
    assert volume["configMap"]["name"] == routing_configmap_name("ctr-ranker")
    assert volume["configMap"]["items"][0] == {"key": "ctr-ranker-cpu", "path": "models/ctr-ranker/config.pbtxt"}
    assert _container(dep)["lifecycle"] == {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}}
    # only the operator, with the routing key, may load, unload or re-route models; clients infer
    restricted = "model-repository:fulcrum-routing-key=$(FULCRUM_ROUTING_KEY)"
    assert f"--http-restricted-api={restricted}" in args and f"--grpc-restricted-protocol={restricted}" in args
    env = {e["name"]: e for e in _container(dep)["env"]}
    assert env["FULCRUM_ROUTING_KEY"]["valueFrom"]["configMapKeyRef"] == {
        "name": "ctr-ranker-routing",
        "key": ".routing-key",
    }
    assert dep["spec"]["template"]["metadata"]["annotations"][labels.ROUTING_KEY] == key_digest(KEY)
    assert _applied(p, "ConfigMap")["data"][".routing-key"] == KEY
    configmap = _applied(p, "ConfigMap")
    assert p.apply[0] is configmap, "the routes exist before a pod can mount them"
    routed = text_format.Parse(configmap["data"]["ctr-ranker-cpu"], mc.ModelConfig())
    assert routed.name == "ctr-ranker" and routed.ensemble_scheduling.step[0].model_name == "fp32"
    assert [i.name for i in routed.input] == ["sparse", "dense"]
    assert p.routing is not None and not p.routing.hot_switch
    assert p.status.serving == ServingStatus(
        model_name="ctr-ranker", routed_tier="fp32", hot_tiers=["fp32", "fp16", "int8"], pods=0
    )


def test_a_switch_among_hot_tiers_changes_the_route_and_nothing_else() -> None:
    live = LiveServer("ctr-ranker-cpu", "fp32", "cpu", 2, 2, loaded=("fp32", "fp16", "int8"), hot=True)
    before = _plan(Choice("fp32", "cpu", 2), [live])
    after = _plan(Choice("int8", "cpu", 2), [live], routes=_applied(before, "ConfigMap")["data"])
    assert after.delete_deployments == [] and after.scale_deployments == {}
    old, new = _applied(before, "Deployment"), _applied(after, "Deployment")
    assert new["metadata"]["name"] == "ctr-ranker-cpu" and new["metadata"]["labels"][labels.TIER] == "int8"
    assert new["spec"]["template"] == old["spec"]["template"], "the pods are not rolled"
    routes = _applied(after, "ConfigMap")["data"]
    assert (
        text_format.Parse(routes["ctr-ranker-cpu"], mc.ModelConfig()).ensemble_scheduling.step[0].model_name == "int8"
    )
    intent = after.routing
    assert intent is not None and intent.hot_switch and intent.previous_tier == "fp32"
    assert (
        intent.model == "int8"
        and intent.config is not None
        and intent.selector == new["spec"]["selector"]["matchLabels"]
    )
    assert _cond_reason(after, "Reconciling") == "Settled", "a hot switch is no roll"


def _cond_reason(p: Plan, type_: str) -> str:
    condition = p.status.condition(type_)
    assert condition is not None
    return condition.reason


def test_a_tier_that_does_not_fit_is_reported_and_served_cold_under_the_same_name() -> None:
    body = _body()
    for pool in body["spec"]["nodePools"]:
        pool["memoryPerReplica"] = "11Mi"  # fp32 (8 Mi loaded) + int8 (2 Mi); fp16 (4 Mi) does not fit
    hot = LiveServer("ctr-ranker-cpu", "fp32", "cpu", 2, 2, loaded=("fp32", "int8"), hot=True)
    first = _plan(Choice("fp32", "cpu", 2), [], body=body)
    assert first.status.serving is not None
    assert first.status.serving.hot_tiers == ["fp32", "int8"]
    assert [(c.name, c.reason) for c in first.status.serving.cold_tiers] == [("fp16", "DoesNotFit")]
    cold = _plan(Choice("fp16", "cpu", 1), [hot], body=body, routes=_applied(first, "ConfigMap")["data"])
    dep = _applied(cold, "Deployment")
    assert (
        dep["metadata"]["name"] == "ctr-ranker-fp16-cpu"
        and dep["spec"]["selector"]["matchLabels"][labels.TIER] == "fp16"
    )
    assert [a for a in _container(dep)["args"] if a.startswith("--load-model=")] == [
        "--load-model=fp16",
        "--load-model=ctr-ranker",
    ]
    routes = _applied(cold, "ConfigMap")["data"]
    assert set(routes) == {".version-directory", ".routing-key", "ctr-ranker-cpu", "ctr-ranker-fp16-cpu"}, (
        "the old pods keep theirs"
    )
    assert routes["ctr-ranker-cpu"] == _applied(first, "ConfigMap")["data"]["ctr-ranker-cpu"]
    assert cold.routing is not None and not cold.routing.hot_switch and cold.routing.hot_tiers == ("fp16",)
    assert cold.delete_deployments == [], "the old fleet serves until the new one is ready"


def test_a_pool_switch_starts_that_pools_hot_deployment() -> None:
    hot = LiveServer("ctr-ranker-cpu", "fp32", "cpu", 2, 2, loaded=("fp32", "fp16", "int8"), hot=True)
    p = _plan(Choice("fp32", "l4", 1), [hot])
    assert _applied(p, "Deployment")["metadata"]["name"] == "ctr-ranker-l4"
    assert p.routing is not None and not p.routing.hot_switch


def test_a_build_without_recorded_io_serves_under_the_tiers_own_name_as_before() -> None:
    p = _plan(Choice("fp32", "cpu", 1), [], io=False)
    dep = _applied(p, "Deployment")
    assert dep["metadata"]["name"] == "ctr-ranker-fp32-cpu"
    args = _container(dep)["args"]
    assert [a for a in args if a.startswith("--model-repository=")] == ["--model-repository=/models/cpu"]
    assert [a for a in args if a.startswith("--load-model=")] == ["--load-model=fp32"]
    assert not any("restricted" in a for a in args) and "annotations" not in dep["spec"]["template"]["metadata"]
    assert p.routing is not None and not p.routing.routable
    assert p.status.serving is not None and p.status.serving.model_name == "fp32"


def test_routed_pods_carry_over_while_nothing_about_them_changed() -> None:
    live = LiveServer("ctr-ranker-cpu", "fp32", "cpu", 2, 2, loaded=("fp32", "fp16", "int8"), hot=True)
    status = ModelDeploymentStatus(
        serving=ServingStatus(
            model_name="ctr-ranker", routed_tier="fp32", hot_tiers=["fp32", "fp16", "int8"], pods=2, routed_pods=2
        )
    )
    same = _plan(Choice("fp32", "cpu", 2), [live], status=status)
    assert same.status.serving is not None and same.status.serving.routed_pods == 2
    switched = _plan(Choice("int8", "cpu", 2), [live], status=status)
    assert switched.status.serving is not None and switched.status.serving.routed_pods is None


def test_served_name_from_the_spec() -> None:
    body = _body(serving={"modelName": "Ranker_v2"})
    p = _plan(Choice("fp32", "cpu", 1), [], body=body)
    args = _container(_applied(p, "Deployment"))["args"]
    assert "--load-model=Ranker_v2" in args
    assert p.status.serving is not None and p.status.serving.model_name == "Ranker_v2"


# --- pods -----------------------------------------------------------------------------------------------------


def _pod(name: str, ip: str, ready: bool, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"metadata": meta, "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_only_ready_pods_that_route_elsewhere_are_re_routed() -> None:
    pods = pod_routes([_pod("b", "10.1.0.2", True), _pod("a", "10.1.0.1", True), _pod("c", "", False)])
    assert [p.name for p in pods] == ["a", "b", "c"]
    assert pod_routes([_pod("d", "10.1.0.4", True, deleting=True)])[0].ready is False
    plan_ = _plan(Choice("int8", "cpu", 2), [])
    assert plan_.routing is not None
    asked = [
        PodRoute("a", "10.1.0.1", True, routed="int8"),
        PodRoute("b", "10.1.0.2", True, routed="fp32"),
        PodRoute("c", "10.1.0.3", True, routed=None),
        PodRoute("d", "10.1.0.4", False, routed="fp32"),
    ]
    assert [p.name for p in to_route(plan_.routing, asked)] == ["b", "c"]


def test_a_hot_switch_is_retried_quickly_for_a_while_then_left_to_the_ticks() -> None:
    now = [100.0]
    router = Router(kube=None, clock=lambda: now[0])  # type: ignore[arg-type]  # no API calls in this test
    live = LiveServer("ctr-ranker-cpu", "fp32", "cpu", 2, 2, loaded=("fp32", "fp16", "int8"), hot=True)
    intent = _plan(Choice("int8", "cpu", 2), [live]).routing
    assert intent is not None and intent.hot_switch
    key = ("shop", "ctr-ranker")
    assert router.retry_in(key) is None
    from fulcrum.controller.routing import Switch

    router.pending[key] = Switch(intent, decided_at=now[0])
    assert router.due(key, intent, frozenset(), tick=False)
    assert router.retry_in(key) == pytest.approx(1.0)
    now[0] += 61
    assert router.retry_in(key) is None
    assert router.newly_failing(key, RoutingReport(1, 0, failed={"a": "refused"}))
    assert not router.newly_failing(key, RoutingReport(1, 0, failed={"a": "refused again"}))
    assert not router.newly_failing(key, RoutingReport(1, 1))


def test_routing_a_served_name_needs_its_io() -> None:
    assert _route().io.inputs[0] == ManifestTensor(name="sparse", data_type="INT64", dims=[6])


def test_the_policy_is_told_each_pools_hot_tiers_where_they_can_switch() -> None:
    from fulcrum.reconcile.builds import merge_tiers
    from fulcrum.reconcile.layout import hot_sets

    body = _body()
    body["spec"]["nodePools"][0]["memoryPerReplica"] = "11Mi"  # l4: fp32 + int8 fit, fp16 does not
    spec = parse_model_deployment(body).spec
    tiers = merge_tiers([t.name for t in spec.tiers], {"l4": _result("l4"), "cpu": _result("cpu")})
    assert hot_sets(spec, tiers) == {"l4": frozenset({"fp32", "int8"}), "cpu": frozenset({"fp32", "fp16", "int8"})}
    legacy = merge_tiers([t.name for t in spec.tiers], {"l4": _result("l4", io=False)})
    assert hot_sets(spec, legacy) == {}, "without a routing model nothing switches hot"

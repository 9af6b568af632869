"""Pure manifest builders: names, labels, security, scheduling, probes, build keys."""

from __future__ import annotations

import copy

from fulcrum.api import ModelDeployment, parse_model_deployment
from fulcrum.resources import labels
from fulcrum.resources.build import build_job, build_record, build_spec_configmap
from fulcrum.resources.build_key import build_key
from fulcrum.resources.serving import ServingTarget, server_deployment, server_pdb, server_service
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
from tests.support.manifest_cases import BASE

SETTINGS = OperatorSettings(build_namespace="fulcrum-system", storage=RepositoryStorage.parse("hostpath:///srv/models"))


def _md(**spec_patch: object) -> tuple[dict, ModelDeployment]:
    body = copy.deepcopy(BASE)
    body["metadata"].update(namespace="shop", uid="1234-uid", generation=3)
    body["spec"].update(spec_patch)
    return body, parse_model_deployment(body)


def test_server_deployment_is_secure_scheduled_and_owned() -> None:
    body, md = _md()
    pool = md.spec.node_pool("l4")
    dep = server_deployment(body, md.spec, ServingTarget("fp32", pool, "/models/k", "fp32", 3), SETTINGS)
    meta = dep["metadata"]
    assert meta["name"] == "ctr-ranker-fp32-l4" and meta["namespace"] == "shop"
    assert meta["ownerReferences"][0] == {
        "apiVersion": "fulcrum.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": "ctr-ranker",
        "uid": "1234-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert meta["labels"][labels.MANAGED_BY] == "fulcrum"
    assert meta["labels"][labels.MODEL_DEPLOYMENT] == "ctr-ranker"
    assert "app.kubernetes.io/instance" not in meta["labels"]
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 3
    assert pod["nodeSelector"] == {"fulcrum.dev/pool": "l4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--model-control-mode=explicit" in container["args"]
    assert "--load-model=fp32" in container["args"]
    assert "--metrics-config=summary_latencies=true" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    # the selector pins tier and pool, so two Deployments of one ModelDeployment never fight over pods
    assert dep["spec"]["selector"]["matchLabels"][labels.TIER] == "fp32"
    assert set(dep["spec"]["selector"]["matchLabels"].items()) <= set(pod_labels(dep).items())


def pod_labels(dep: dict) -> dict:
    return dep["spec"]["template"]["metadata"]["labels"]


def test_cpu_pool_asks_for_no_gpu() -> None:
    body, md = _md()
    dep = server_deployment(body, md.spec, ServingTarget("fp32", md.spec.node_pool("cpu"), "/m", "fp32", 1), SETTINGS)
    assert "resources" not in dep["spec"]["template"]["spec"]["containers"][0]
    assert "nodeSelector" not in dep["spec"]["template"]["spec"]


def test_service_and_pdb_select_every_server_pod() -> None:
    body, md = _md()
    dep = server_deployment(body, md.spec, ServingTarget("int8", md.spec.node_pool("cpu"), "/m", "int8", 1), SETTINGS)
    for child in (server_service(body), server_pdb(body)):
        selector = child["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert set(selector.items()) <= set(pod_labels(dep).items())
    assert {p["name"] for p in server_service(body)["spec"]["ports"]} == {"http", "grpc", "metrics"}


def test_build_key_ignores_slo_budget_and_scaling_but_not_tiers() -> None:
    _, md = _md()
    pool = md.spec.node_pool("l4")
    key = build_key(md.spec, pool, "triton", "hostPath:/srv/models")
    _, slo_changed = _md(slo={"latencyMs": 50}, budget={"maxCostPerHour": "1"}, scaling={"maxReplicas": 3})
    assert build_key(slo_changed.spec, slo_changed.spec.node_pool("l4"), "triton", "hostPath:/srv/models") == key
    _, tiers_changed = _md(tiers=[{"name": "fp32", "precision": "fp32"}])
    assert build_key(tiers_changed.spec, tiers_changed.spec.node_pool("l4"), "triton", "hostPath:/srv/models") != key
    assert build_key(md.spec, md.spec.node_pool("cpu"), "triton", "hostPath:/srv/models") != key
    assert build_key(md.spec, pool, "local", "hostPath:/srv/models") != key
    assert build_key(md.spec, pool, "triton", "uri:s3://other/prefix") != key
    # a queue timeout changes every tier's config.pbtxt: a new build; none set keeps the keys as they were
    _, timeout = _md(serving={"dynamicBatching": {"queueTimeoutMicroseconds": 15000}})
    assert build_key(timeout.spec, timeout.spec.node_pool("l4"), "triton", "hostPath:/srv/models") != key
    _, default = _md(serving={"dynamicBatching": {"maxQueueDelayMicroseconds": 500}})
    assert build_key(default.spec, default.spec.node_pool("l4"), "triton", "hostPath:/srv/models") == key


def test_build_job_runs_the_builder_on_its_pool() -> None:
    _body, md = _md()
    pool = md.spec.node_pool("l4")
    key = build_key(md.spec, pool, "triton", "hostPath:/srv/models")
    job = build_job(key, pool, SETTINGS)
    assert job["metadata"]["name"] == labels.build_job_name(key)
    assert job["metadata"]["namespace"] == "fulcrum-system"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"fulcrum.dev/pool": "l4"}
    container = pod["containers"][0]
    assert container["command"] == ["fulcrum", "build"]
    assert container["args"][container["args"].index("--node-pool") + 1] == "l4"
    assert container["args"][container["args"].index("--out") + 1] == f"/models/{key}"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    spec_cm = build_spec_configmap("ctr-ranker", md.spec, key, pool, SETTINGS)
    assert pod["volumes"][1]["configMap"]["name"] == spec_cm["metadata"]["name"]
    assert "modeldeployment.yaml" in spec_cm["data"]
    record = build_record(key, pool, {"phase": "Succeeded"}, SETTINGS)
    assert record["metadata"]["name"] != job["metadata"]["name"] or record["kind"] != job["kind"]


def test_dns_name_truncates_with_a_hash() -> None:
    long = labels.dns_name("a" * 40, "b" * 40, "c" * 40)
    assert len(long) == 63
    assert long != labels.dns_name("a" * 40, "b" * 40, "c" * 39 + "d")


def test_storage_parsing() -> None:
    assert RepositoryStorage.parse("pvc://model-repo").kind == "pvc"
    assert RepositoryStorage.parse("s3://b/p").repository_path("k") == "s3://b/p/k"
    assert RepositoryStorage.parse("hostpath:///srv").repository_path("k") == "/models/k"

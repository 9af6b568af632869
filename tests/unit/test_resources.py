"""Pure manifest builders: names, labels, security, scheduling, probes, build keys."""

from __future__ import annotations

import copy

from fulcrum.api import ModelDeployment, parse_model_deployment
from fulcrum.resources import labels
from fulcrum.resources.build import build_job, build_record, build_spec_configmap, repository_cleanup_job
from fulcrum.resources.build_key import build_inputs, build_key
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


IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"


def _key(md: ModelDeployment, pool: str = "l4", target: str = "triton", storage: str = "hostPath:/srv/models",
         image: str = IMAGE) -> str:  # fmt: skip
    return build_key(md.spec, md.spec.node_pool(pool), target, storage, serving_image=image)


def test_build_key_ignores_budget_and_scaling_but_not_tiers() -> None:
    _, md = _md()
    key = _key(md)
    _, unrelated = _md(budget={"maxCostPerHour": "1"}, scaling={"maxReplicas": 3})
    assert _key(unrelated) == key
    _, tiers_changed = _md(tiers=[{"name": "fp32", "precision": "fp32"}])
    assert _key(tiers_changed) != key
    assert _key(md, pool="cpu") != key
    assert _key(md, target="local") != key
    assert _key(md, storage="uri:s3://other/prefix") != key
    # a queue timeout changes every tier's config.pbtxt: a new build; none set keeps the keys as they were
    _, timeout = _md(serving={"dynamicBatching": {"queueTimeoutMicroseconds": 15000}})
    assert _key(timeout) != key
    _, default = _md(serving={"dynamicBatching": {"maxQueueDelayMicroseconds": 500}})
    assert _key(default) == key


def test_a_new_serving_image_or_gpu_model_is_a_new_build() -> None:
    """Tiers are gated and profiled through the serving image, and a TensorRT plan runs only in the TensorRT
    and on the GPU it was built for: either change must not reuse a build."""
    _, md = _md()
    key = _key(md)
    assert _key(md, image="nvcr.io/nvidia/tritonserver:25.01-py3") != key
    pools = [
        {"name": "l4", "gpusPerReplica": 1, "costPerHour": "0.85", "nodeSelector": {"fulcrum.dev/pool": "l4"}},
        {"name": "cpu", "gpusPerReplica": 0, "costPerHour": "0.2"},
    ]
    relabelled = copy.deepcopy(pools)
    relabelled[0]["nodeSelector"]["nvidia.com/gpu.product"] = "NVIDIA-L4"
    other_gpu = copy.deepcopy(relabelled)
    other_gpu[0]["nodeSelector"]["nvidia.com/gpu.product"] = "NVIDIA-A10G"
    keys = {_key(_md(nodePools=p)[1]) for p in (pools, relabelled, other_gpu)}
    assert len(keys) == 3
    inputs = build_inputs(
        _md(nodePools=other_gpu)[1].spec, _md(nodePools=other_gpu)[1].spec.node_pool("l4"), "triton", "s",
        serving_image=IMAGE,
    )  # fmt: skip
    assert (inputs["servingImage"], inputs["gpuProduct"]) == (IMAGE, "NVIDIA-A10G")  # named, not buried
    assert build_inputs(md.spec, md.spec.node_pool("cpu"), "triton", "s", serving_image=IMAGE)["gpuProduct"] is None


def test_the_slo_is_a_build_input_only_while_the_config_search_is_on() -> None:
    _, md = _md()
    _, slower = _md(slo={"latencyMs": 50})
    assert _key(slower) != _key(md)  # the search picks each tier's config for the SLO
    off = {"configSearch": {"enabled": False}}
    _, md_off = _md(serving=off)
    _, slower_off = _md(serving=off, slo={"latencyMs": 50})
    assert _key(slower_off) == _key(md_off) != _key(md)


def test_build_job_on_a_pool_builds_then_measures_through_the_pools_triton() -> None:
    _body, md = _md()
    pool = md.spec.node_pool("l4")
    key = _key(md)
    job = build_job(key, pool, SETTINGS, serving_image=IMAGE)
    assert job["metadata"]["name"] == labels.build_job_name(key)
    assert job["metadata"]["namespace"] == "fulcrum-system"
    assert job["metadata"]["annotations"]["fulcrum.dev/serving-image"] == IMAGE
    # the infrastructure taking the pod away is no failure; the builder's exit code 2 (unusable spec or model)
    # fails the Job at once, in either builder container; any other pod failure is tried again, twice
    assert job["spec"]["backoffLimit"] == 2
    rules = job["spec"]["podFailurePolicy"]["rules"]
    for name in ("build", "measure"):
        assert {"action": "FailJob", "onExitCodes": {"containerName": name, "operator": "In", "values": [2]}} in rules
    assert not any(r.get("onExitCodes", {}).get("containerName") == "triton" for r in rules)
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"fulcrum.dev/pool": "l4"}
    build, sidecar = pod["initContainers"]
    (measure,) = pod["containers"]
    # 1. the build holds the GPU (TensorRT engines), and stops before measuring
    assert build["command"] == ["fulcrum", "build"] and "--no-profile" in build["args"]
    assert build["args"][build["args"].index("--node-pool") + 1] == "l4"
    assert build["args"][build["args"].index("--out") + 1] == f"/models/{key}"
    assert build["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # 2. the pool's own Triton image, a native sidecar on the same GPU, explicit model control on a shared folder
    assert sidecar["image"] == IMAGE and sidecar["restartPolicy"] == "Always"
    assert sidecar["command"] == ["tritonserver"]
    assert "--model-control-mode=explicit" in sidecar["args"] and "--http-address=127.0.0.1" in sidecar["args"]
    assert sidecar["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    # 3. the measure container reuses the build and talks to the sidecar; it needs no GPU and writes the result
    assert (
        measure["args"][: measure["args"].index("--termination-message")]
        == build["args"][: build["args"].index("--termination-message")]
    )
    assert "--no-profile" not in measure["args"] and "resources" not in measure
    url = measure["args"][measure["args"].index("--triton-url") + 1]
    assert url == "127.0.0.1:8000"
    shared = measure["args"][measure["args"].index("--triton-repository") + 1]
    assert f"--model-repository={shared}" in sidecar["args"]
    assert {m["mountPath"] for m in measure["volumeMounts"]} >= {shared}
    assert {m["mountPath"] for m in sidecar["volumeMounts"]} >= {shared}
    assert measure["terminationMessagePath"] == "/dev/termination-log"
    # GPUs the pod asks for: the most of (any init container) and (sidecars + main containers) = one
    spec_cm = build_spec_configmap("ctr-ranker", md.spec, key, pool, SETTINGS)
    assert any(v.get("configMap", {}).get("name") == spec_cm["metadata"]["name"] for v in pod["volumes"])
    assert "modeldeployment.yaml" in spec_cm["data"]
    record = build_record(key, pool, {"phase": "Succeeded"}, SETTINGS)
    # the record and the spec are both ConfigMaps in the build namespace: their names must differ
    assert record["kind"] == spec_cm["kind"] == "ConfigMap"
    assert record["metadata"]["namespace"] == spec_cm["metadata"]["namespace"]
    assert record["metadata"]["name"] == labels.build_record_name(key)
    assert record["metadata"]["name"] != spec_cm["metadata"]["name"]
    assert record["metadata"]["labels"][labels.COMPONENT] == labels.COMPONENT_BUILD_RECORD


def test_a_repository_is_removed_by_a_job_mounting_its_storage_but_never_for_object_storage() -> None:
    key = "ab" * 32
    job = repository_cleanup_job(key, SETTINGS)
    assert job is not None and job["metadata"]["namespace"] == "fulcrum-system"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == f"/models/{key}"
    assert container["volumeMounts"][0]["mountPath"] == "/models"
    assert job["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"] == "/srv/models"
    s3 = OperatorSettings(storage=RepositoryStorage.parse("s3://bucket/prefix"))
    assert repository_cleanup_job(key, s3) is None


def test_local_build_job_measures_through_the_cpu_tritonserver_under_the_replicas_limits() -> None:
    """The dev cluster's real node runs the same three containers as a real pool: the sidecar is the CPU
    tritonserver image with a serving replica's resources; the measure container has no limit (its load must
    not eat the server's CPU)."""
    limits = {"limits": {"cpu": "1", "memory": "2Gi"}}
    _body, md = _md(serving={"resources": limits})
    cpu = md.spec.node_pool("cpu")
    local = OperatorSettings(build_target="local", storage=SETTINGS.storage)
    key = _key(md, pool="cpu", target="local")
    job = build_job(key, cpu, local, serving_image=IMAGE, serving_resources=md.spec.serving.resources.to_wire())
    pod = job["spec"]["template"]["spec"]
    build, sidecar = pod["initContainers"]
    (measure,) = pod["containers"]
    assert build["args"][build["args"].index("--target") + 1] == "local"
    assert sidecar["image"] == IMAGE and sidecar["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"}}
    assert "resources" not in measure and "resources" not in build
    # another CPU limit, another profile: another build; memory alone changes nothing
    _body, faster = _md(serving={"resources": {"limits": {"cpu": "2", "memory": "2Gi"}}})
    assert _key(faster, pool="cpu", target="local") != key
    _body, bigger = _md(serving={"resources": {"limits": {"cpu": "1", "memory": "4Gi"}}})
    assert _key(bigger, pool="cpu", target="local") == key
    _body, none = _md()
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["containerName"] == "build"
    assert "cpu" not in build_inputs(none.spec, cpu, "local", "x", serving_image=IMAGE)


def test_a_tensorrt_tier_serves_with_its_builds_image_on_its_builds_gpu() -> None:
    body, md = _md()
    pool = md.spec.node_pool("l4")
    target = ServingTarget("fp16-trt", pool, "/m", "fp16-trt", 1, image="triton:old", gpu_product="NVIDIA-L4")
    pod = server_deployment(body, md.spec, target, SETTINGS)["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "triton:old"
    assert pod["nodeSelector"] == {"fulcrum.dev/pool": "l4", "nvidia.com/gpu.product": "NVIDIA-L4"}
    plain = server_deployment(body, md.spec, ServingTarget("fp32", pool, "/m", "fp32", 1), SETTINGS)
    assert plain["spec"]["template"]["spec"]["containers"][0]["image"] == SETTINGS.triton_image


def test_dns_name_truncates_with_a_hash() -> None:
    long = labels.dns_name("a" * 40, "b" * 40, "c" * 40)
    assert len(long) == 63
    assert long != labels.dns_name("a" * 40, "b" * 40, "c" * 39 + "d")


def test_storage_parsing() -> None:
    assert RepositoryStorage.parse("pvc://model-repo").kind == "pvc"
    assert RepositoryStorage.parse("s3://b/p").repository_path("k") == "s3://b/p/k"
    assert RepositoryStorage.parse("hostpath:///srv").repository_path("k") == "/models/k"

"""Pure manifest builders: names, labels, security, scheduling, probes, build keys."""

from __future__ import annotations

import copy

import pytest
import yaml

from fulcrum.api import ModelDeployment, parse_model_deployment
from fulcrum.resources import labels
from fulcrum.resources.build import SPEC_ENV, build_job, build_record, repository_cleanup_job
from fulcrum.resources.build_key import build_inputs, build_key
from fulcrum.resources.common import Manifest
from fulcrum.resources.serving import ServingTarget, server_deployment, server_pdb, server_service
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
from tests.support.manifest_cases import BASE

SETTINGS = OperatorSettings(build_namespace="fulcrum-system", storage=RepositoryStorage.parse("hostpath:///srv/models"))


def _md(**spec_patch: object) -> tuple[Manifest, ModelDeployment]:
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


@pytest.mark.parametrize(("startup", "at_least"), [(10, 60), (25, 75), (120, 360), (180, 540)])
def test_startup_probe_waits_well_beyond_the_declared_startup(startup: int, at_least: int) -> None:
    """A replica that starts slower than ``replicaStartupSeconds`` (busy node, small CPU limit) is not restarted
    into the same slow start: the probe allows three times the declared start-up, a minute at least."""
    body, md = _md(nodePools=[{"name": "cpu", "costPerHour": "0.20", "replicaStartupSeconds": startup}])
    target = ServingTarget("fp32", md.spec.node_pool("cpu"), "/models/k", "fp32", 1)
    probe = server_deployment(body, md.spec, target, SETTINGS)["spec"]["template"]["spec"]["containers"][0]
    allowed = probe["startupProbe"]["periodSeconds"] * probe["startupProbe"]["failureThreshold"]
    assert at_least <= allowed <= at_least + 2 * probe["startupProbe"]["periodSeconds"]


def pod_labels(dep: Manifest) -> dict[str, str]:
    found: dict[str, str] = dep["spec"]["template"]["metadata"]["labels"]
    return found


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
         image: str = IMAGE, scope: str = "") -> str:  # fmt: skip
    return build_key(md.spec, md.spec.node_pool(pool), target, storage, serving_image=image, scope=scope)


def test_build_key_ignores_budget_and_scaling_but_not_tiers() -> None:
    _, md = _md()
    key = _key(md)
    _, unrelated = _md(budget={"maxCostPerHour": "1"}, scaling={"maxReplicas": 3})
    assert _key(unrelated) == key
    _, tiers_changed = _md(tiers=[{"name": "fp32", "precision": "fp32"}])
    assert _key(tiers_changed) != key
    assert _key(md, pool="cpu") != key
    assert _key(md, target="local") != key
    assert _key(md, storage="s3:s3://other/prefix") != key
    assert _key(md, scope="team-a") != key
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
    pools: list[Manifest] = [
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


S3 = OperatorSettings(
    build_namespace="fulcrum-system",
    storage=RepositoryStorage.parse(
        "s3://models/fulcrum", endpoint="http://10.0.0.1:8333", secret="repo-writer", serving_secret="repo-reader"
    ),
)


def containers(job: Manifest) -> dict[str, Manifest]:
    pod = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}


def mounts(container: Manifest) -> dict[str, Manifest]:
    return {m["name"]: m for m in container["volumeMounts"]}


def test_build_job_on_a_pool_fetches_builds_measures_through_the_pools_triton_and_publishes() -> None:
    _body, md = _md()
    pool = md.spec.node_pool("l4")
    key = _key(md, storage=S3.storage.identity)
    job = build_job(key, pool, S3, md.spec, serving_image=IMAGE)
    assert job["metadata"]["name"] == labels.build_job_name(key)
    assert job["metadata"]["namespace"] == "fulcrum-system"
    assert job["metadata"]["annotations"]["fulcrum.dev/serving-image"] == IMAGE
    # retried when the pod fails for a reason outside the model; a bad spec (exit 2) fails the Job at once
    assert job["spec"]["backoffLimit"] == 2
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert {(r["onExitCodes"]["containerName"], tuple(r["onExitCodes"]["values"])) for r in rules[:3]} == {
        ("fetch", (2,)),
        ("build", (2,)),
        ("measure", (2,)),
    }
    assert rules[3] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"fulcrum.dev/pool": "l4"}
    assert [c["name"] for c in pod["initContainers"]] == ["fetch", "build", "triton", "measure"]
    assert [c["name"] for c in pod["containers"]] == ["publish"]
    steps = containers(job)
    build, sidecar, measure = steps["build"], steps["triton"], steps["measure"]
    # the build holds the GPU (TensorRT engines), and stops before measuring
    assert build["command"] == ["fulcrum", "build"] and "--no-profile" in build["args"]
    assert build["args"][build["args"].index("--node-pool") + 1] == "l4"
    assert build["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # the pool's own Triton image, a native sidecar on the same GPU, explicit model control on a shared folder
    assert sidecar["image"] == IMAGE and sidecar["restartPolicy"] == "Always"
    assert sidecar["command"] == ["tritonserver"]
    assert "--model-control-mode=explicit" in sidecar["args"] and "--http-address=127.0.0.1" in sidecar["args"]
    assert sidecar["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    # the measure step reuses the build and talks to the sidecar; it needs no GPU
    assert (
        measure["args"][: measure["args"].index("--termination-message")]
        == build["args"][: build["args"].index("--termination-message")]
    )
    assert "--no-profile" not in measure["args"] and "resources" not in measure
    assert measure["args"][measure["args"].index("--triton-url") + 1] == "127.0.0.1:8000"
    shared = measure["args"][measure["args"].index("--triton-repository") + 1]
    assert f"--model-repository={shared}" in sidecar["args"]
    assert {m["mountPath"] for m in measure["volumeMounts"]} >= {shared}
    assert {m["mountPath"] for m in sidecar["volumeMounts"]} >= {shared}
    fetch = steps["fetch"]
    platform = fetch["args"][fetch["args"].index("--platform") + 1]
    assert '"nodePool":"l4"' in platform and '"gpusPerReplica":1' in platform and IMAGE in platform
    assert "--no-relative-files" in fetch["args"]
    for step in steps.values():
        assert step["securityContext"]["readOnlyRootFilesystem"] is True
        if step is not sidecar:
            assert step["terminationMessagePath"] == "/dev/termination-log"
    # the spec travels in the fetch step's environment and reaches the build through the read-only inputs
    spec_env = next(e["value"] for e in fetch["env"] if e["name"] == SPEC_ENV)
    assert parse_model_deployment(yaml.safe_load(spec_env)).spec == md.spec
    assert build["args"][build["args"].index("--spec") + 1] == "/work/inputs/modeldeployment.yaml"
    assert not any("configMap" in v for v in pod["volumes"])
    record = build_record(key, pool, {"phase": "Succeeded"}, S3)
    assert record["metadata"]["name"] != job["metadata"]["name"] or record["kind"] != job["kind"]


def test_a_repository_is_removed_by_a_job_mounting_its_storage_but_never_for_object_storage() -> None:
    content_key = "ab" * 32
    job = repository_cleanup_job(content_key, SETTINGS)
    assert job is not None and job["metadata"]["namespace"] == "fulcrum-system"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == f"/models/{content_key}"
    assert container["volumeMounts"][0]["mountPath"] == "/models"
    assert job["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"] == "/srv/models"
    assert repository_cleanup_job(content_key, S3) is None


def test_only_fetch_and_publish_hold_credentials_and_no_step_running_model_code_can_change_its_inputs() -> None:
    """The containers that run the model's code (build) or talk to Triton (measure) get no Secret and no
    storage, and read their inputs (and so the key the output is published under) from a read-only mount;
    nothing they write reaches the others' HOME."""
    _body, md = _md()
    pool = md.spec.node_pool("cpu")
    steps = containers(build_job("k" * 32, pool, S3, md.spec, serving_image=IMAGE))
    for name in ("fetch", "publish"):
        assert steps[name]["envFrom"] == [{"secretRef": {"name": "repo-writer"}}]
        env = {e["name"]: e["value"] for e in steps[name]["env"]}
        assert env["AWS_ENDPOINT_URL"] == "http://10.0.0.1:8333" and env["PYTHONNOUSERSITE"] == "1"
        assert steps[name]["args"][steps[name]["args"].index("--repository") + 1] == "s3://models/fulcrum"
    for name in ("build", "measure", "triton"):
        step = steps[name]
        assert "envFrom" not in step and not any(e["name"].startswith("AWS_") for e in step["env"])
    assert mounts(steps["build"])["inputs"]["readOnly"] is True
    assert mounts(steps["measure"])["inputs"]["readOnly"] is True
    assert mounts(steps["publish"])["inputs"]["readOnly"] is True
    assert mounts(steps["publish"])["out"]["readOnly"] is True
    homes = {n: m["name"] for n, step in steps.items() for m in step["volumeMounts"] if m["mountPath"] == "/tmp"}
    assert len(set(homes.values())) == len(homes) == 5  # one HOME volume each


def test_filesystem_storage_is_mounted_only_where_it_is_read_or_published() -> None:
    _body, md = _md()
    job = build_job("k" * 32, md.spec.node_pool("cpu"), SETTINGS, md.spec, serving_image=IMAGE)
    steps = containers(job)
    assert mounts(steps["fetch"])["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}
    assert mounts(steps["publish"])["models"] == {"name": "models", "mountPath": "/models", "readOnly": False}
    assert "models" not in mounts(steps["build"]) and "models" not in mounts(steps["measure"])
    volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "models")
    assert volume["hostPath"]["path"] == "/srv/models"


def test_pvc_sources_are_mounted_read_only_in_the_fetch_step_only() -> None:
    _body, md = _md(
        model={**BASE["spec"]["model"], "source": {"uri": "pvc://team-models/ctr/model.onnx", "format": "onnx"}}
    )
    job = build_job("k" * 32, md.spec.node_pool("cpu"), S3, md.spec, serving_image=IMAGE, namespace="shop")
    assert job["metadata"]["namespace"] == "shop"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["source-0"]["persistentVolumeClaim"] == {"claimName": "team-models", "readOnly": True}
    steps = containers(job)
    assert mounts(steps["fetch"])["source-0"] == {
        "name": "source-0", "mountPath": "/mnt/pvc/team-models", "readOnly": True,
    }  # fmt: skip
    assert all("source-0" not in mounts(steps[n]) for n in ("build", "measure", "publish"))


def test_local_build_job_measures_through_the_cpu_tritonserver_under_the_replicas_limits() -> None:
    """The dev cluster's real node runs the same three containers as a real pool: the sidecar is the CPU
    tritonserver image with a serving replica's resources; the measure container has no limit (its load must
    not eat the server's CPU)."""
    limits = {"limits": {"cpu": "1", "memory": "2Gi"}}
    _body, md = _md(serving={"resources": limits})
    cpu = md.spec.node_pool("cpu")
    local = OperatorSettings(build_target="local", storage=S3.storage)
    key = _key(md, pool="cpu", target="local")
    job = build_job(key, cpu, local, md.spec, serving_image=IMAGE)
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["fetch", "build", "triton", "measure"]
    _fetch, build, sidecar, measure = pod["initContainers"]
    assert build["args"][build["args"].index("--target") + 1] == "local"
    assert sidecar["image"] == IMAGE and sidecar["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"}}
    assert "resources" not in measure and "resources" not in build
    # another CPU limit, another profile: another build; memory alone changes nothing
    _body, faster = _md(serving={"resources": {"limits": {"cpu": "2", "memory": "2Gi"}}})
    assert _key(faster, pool="cpu", target="local") != key
    _body, bigger = _md(serving={"resources": {"limits": {"cpu": "1", "memory": "4Gi"}}})
    assert _key(bigger, pool="cpu", target="local") == key
    _body, none = _md()
    assert [r["onExitCodes"]["containerName"] for r in job["spec"]["podFailurePolicy"]["rules"][:3]] == [
        "fetch", "build", "measure"
    ]  # fmt: skip
    # the builder's content key sees the CPU limits too (the published repository holds the profiles)
    fetch_args = pod["initContainers"][0]["args"]
    assert '"cpu":{"limits":"1"}' in fetch_args[fetch_args.index("--platform") + 1]
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


def test_serving_pods_download_object_storage_before_triton_starts() -> None:
    body, md = _md()
    target = ServingTarget("fp32", md.spec.node_pool("cpu"), "s3://models/fulcrum/" + "a" * 64, "fp32", 1)
    pod = server_deployment(body, md.spec, target, S3)["spec"]["template"]["spec"]
    [pull] = pod["initContainers"]
    assert pull["command"] == ["fulcrum", "storage", "pull"]
    assert pull["args"] == ["--from", "s3://models/fulcrum/" + "a" * 64, "--into", "/models/" + "a" * 64]
    assert pull["envFrom"] == [{"secretRef": {"name": "repo-reader"}}]  # read-only keys
    assert pull["image"] == S3.storage_image and pull["securityContext"]["readOnlyRootFilesystem"] is True
    assert pull["terminationMessagePolicy"] == "FallbackToLogsOnError"  # why it failed shows in the pod status
    triton = pod["containers"][0]
    assert "envFrom" not in triton  # Triton never holds a credential
    assert f"--model-repository=/models/{'a' * 64}" in triton["args"]
    assert mounts(triton)["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}
    assert {"name": "models", "emptyDir": {}} in pod["volumes"]


def test_serving_pods_mount_only_their_key_of_a_claim_read_only() -> None:
    body, md = _md()
    pvc = OperatorSettings(storage=RepositoryStorage.parse("pvc://model-repo"))
    key = "b" * 64
    pod = server_deployment(
        body, md.spec, ServingTarget("fp32", md.spec.node_pool("cpu"), f"/models/{key}", "fp32", 1), pvc
    )
    spec = pod["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    triton = spec["containers"][0]
    assert mounts(triton)["models"] == {
        "name": "models",
        "mountPath": f"/models/{key}",
        "subPath": key,
        "readOnly": True,
    }
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "model-repo", "readOnly": True}} in spec["volumes"]


def test_spec_repository_overrides_the_storage_and_builds_in_its_namespace() -> None:
    from fulcrum.resources.storage import build_namespace, storage_for

    _body, md = _md(repository={"uri": "s3://team-bucket/models", "secretRef": {"name": "team-s3"}})
    storage = storage_for(md.spec, S3)
    assert (storage.kind, storage.location, storage.secret, storage.serving_secret, storage.endpoint) == (
        "s3", "s3://team-bucket/models", "team-s3", "team-s3", None,
    )  # fmt: skip
    assert build_namespace(md.spec, "shop", S3) == "shop"
    steps = containers(
        build_job("k" * 32, md.spec.node_pool("cpu"), S3, md.spec, serving_image=IMAGE, namespace="shop")
    )
    assert steps["fetch"]["envFrom"] == [{"secretRef": {"name": "team-s3"}}]
    assert not any(e["name"] == "AWS_ENDPOINT_URL" for e in steps["fetch"]["env"])  # from the team's Secret
    _body, plain = _md()
    assert build_namespace(plain.spec, "shop", S3) == "fulcrum-system"


def test_build_keys_are_shared_across_namespaces_only_for_pinned_bytes() -> None:
    from fulcrum.reconcile.plan import pool_builds

    _body, unpinned = _md()
    a = {b.pool.name: b.key for b in pool_builds(unpinned.spec, S3, {}, {}, "team-a")}
    b = {b.pool.name: b.key for b in pool_builds(unpinned.spec, S3, {}, {}, "team-b")}
    assert a["l4"] != b["l4"]  # same URI, maybe not the same bytes: each namespace fetches and hashes
    model = {**BASE["spec"]["model"], "source": {**BASE["spec"]["model"]["source"], "sha256": "c" * 64}}
    _body, pinned = _md(model=model)
    a = {b.pool.name: b.key for b in pool_builds(pinned.spec, S3, {}, {}, "team-a")}
    b = {b.pool.name: b.key for b in pool_builds(pinned.spec, S3, {}, {}, "team-b")}
    assert a == b
    _body, own = _md(model=model, repository={"uri": "s3://team/models"})
    assert pool_builds(own.spec, S3, {}, {}, "team-a")[0].key != pool_builds(own.spec, S3, {}, {}, "team-b")[0].key
    # the rebuild annotation: a build of this namespace's own; no annotation keeps the key
    again = pool_builds(pinned.spec, S3, {}, {}, "team-a", rebuild="keys-fixed")[0].key
    assert again not in set(a.values()) | set(b.values())
    assert again != pool_builds(pinned.spec, S3, {}, {}, "team-b", rebuild="keys-fixed")[0].key
    assert pool_builds(pinned.spec, S3, {}, {}, "team-a", rebuild="")[0].key == a["l4"]


def test_dns_name_truncates_with_a_hash() -> None:
    long = labels.dns_name("a" * 40, "b" * 40, "c" * 40)
    assert len(long) == 63
    assert long != labels.dns_name("a" * 40, "b" * 40, "c" * 39 + "d")


def test_storage_parsing() -> None:
    assert RepositoryStorage.parse("pvc://model-repo").kind == "pvc"
    s3 = RepositoryStorage.parse("s3://b/p/")
    assert (s3.kind, s3.location, s3.pod_location) == ("s3", "s3://b/p", "s3://b/p")
    assert s3.owns("s3://b/p/" + "a" * 64) and not s3.owns("s3://b/other/" + "a" * 64) and not s3.owns("s3://b/p")
    assert RepositoryStorage.parse("gs://b/p").kind == "s3"
    assert RepositoryStorage.parse("hostpath:///srv").owns("/models/k")
    for bad in ("http://x", "hostpath://relative", "s3://"):
        with pytest.raises(ValueError, match="repository storage"):
            RepositoryStorage.parse(bad)


def test_every_step_of_a_build_pod_keeps_its_whole_termination_message() -> None:
    """The kubelet keeps 12 KiB of termination messages per pod, split evenly over all its containers: the
    builder's limit must fit each step's share, or the result arrives cut (invalid JSON)."""
    from model_repo_builder.termination import LIMIT

    _body, md = _md()
    pod = build_job("k" * 32, md.spec.node_pool("cpu"), S3, md.spec, serving_image=IMAGE)["spec"]["template"]["spec"]
    steps = len(pod["initContainers"]) + len(pod["containers"])
    assert steps * LIMIT <= 12 * 1024, (steps, LIMIT)

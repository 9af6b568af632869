"""The chart installed as a user installs it, on a real node: the operator in its pod, builds in the builder
image, Triton in the tritonserver-cpu image, reached through its Service from another pod.

One release (namespaced mode: it watches one namespace of this module) serves the module. Its build namespace is
the session's, so the ctr-ranker build is shared with the other operator tests (content-keyed records).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fulcrum.api import parse_model_deployment
from fulcrum.dev.objectstore import ObjectStoreConfig
from fulcrum.reconcile.plan import pool_builds
from fulcrum.resources import labels
from fulcrum.resources.build import build_record
from fulcrum.resources.serving import triton_image
from fulcrum.resources.settings import OperatorSettings
from tests.support.kube import Kube, debug, example_manifest, wait_ready
from tests.support.polling import wait_for
from tests.support.release import Release, dev_values, repository_storage

pytestmark = pytest.mark.e2e

BUILD_NAMESPACE = "fulcrum-e2e-builds"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def watched(cluster: Any) -> Iterator[str]:
    name = f"chart-install-{uuid.uuid4().hex[:6]}"
    cluster.rest.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": {"fulcrum.dev/e2e": "true"}}})
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(cluster: Any, crd_installed: None, model_storage: ObjectStoreConfig, watched: str) -> Iterator[Release]:
    installed = Release(
        cluster, BUILD_NAMESPACE, model_storage, dev_values(cluster.images, model_storage, watch=[watched])
    )
    try:
        yield installed.install()
    finally:
        installed.uninstall()


@pytest.fixture(scope="module")
def served(cluster: Any, kube: Kube, release: Release, watched: str) -> Obj:
    """ctr-ranker, built in a Job from the builder image and Ready on tritonserver-cpu pods."""
    kube.create(watched, example_manifest())
    wait_ready(kube, release, watched, "ctr-ranker")
    return kube.get(watched, "ctr-ranker")


def pods(cluster: Any, namespace: str, selector: str = "") -> list[Obj]:
    items: list[Obj] = cluster.rest.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)["items"]
    return items


def test_the_operator_runs_in_its_pod_as_the_chart_says(cluster: Any, release: Release) -> None:
    [pod] = release.operator_pods()
    spec = pod["spec"]
    assert spec["serviceAccountName"] == release.name  # the chart's ServiceAccount: in-cluster config, its RBAC
    assert spec["nodeName"] == "local-0"
    container = spec["containers"][0]
    assert container["image"] == cluster.images["fulcrum"].ref
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # what the kubelet really gave the process
    probe = "id -u; (touch /probe 2>/dev/null && echo writable) || echo read-only"
    out = cluster.kubectl("exec", "-n", release.namespace, pod["metadata"]["name"], "--", "sh", "-c", probe).stdout
    assert out.split() == ["65532", "read-only"]
    # the operator talks to the API server through the `kubernetes` Service with its ServiceAccount's token
    assert (
        "KUBERNETES_SERVICE_HOST"
        in cluster.kubectl("exec", "-n", release.namespace, pod["metadata"]["name"], "--", "env").stdout
    )


def test_a_pod_gets_an_answer_from_triton_through_the_service(cluster: Any, served: Obj, watched: str) -> None:
    status = served["status"]
    assert status["activeNodePool"] == "local" and status["readyReplicas"] >= 1
    # the build ran in the builder image, under the replicas' CPU limit
    job_pods = pods(cluster, BUILD_NAMESPACE, f"{labels.BUILD_KEY}={status['build']['key']}")
    if job_pods:  # absent when an earlier session's record was reused
        spec = job_pods[0]["spec"]
        steps = {c["name"]: c for c in [*spec["initContainers"], *spec["containers"]]}
        assert list(steps) == ["fetch", "build", "triton", "measure", "publish"]
        assert {steps[n]["image"] for n in ("fetch", "build", "measure", "publish")} == {
            cluster.images["fulcrum-builder"].ref
        }
        sidecar = steps["triton"]
        # the tiers were profiled through the serving image, under a replica's CPU limit
        assert sidecar["image"] == cluster.images["tritonserver-cpu"].ref
        assert sidecar["resources"]["limits"]["cpu"] == "1"
    servers = pods(cluster, watched, f"{labels.MODEL_DEPLOYMENT}=ctr-ranker")
    assert servers and all(
        p["spec"]["containers"][0]["image"] == cluster.images["tritonserver-cpu"].ref for p in servers
    )
    assert all(p["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "1" for p in servers)

    service = cluster.rest.get(f"/api/v1/namespaces/{watched}/services/ctr-ranker")
    url = f"http://{service['spec']['clusterIP']}:8000/v2/models/{status['activeTier']}/infer"
    inputs = [
        {"name": t["name"], "shape": [1, *t["dims"]], "datatype": t["dataType"], "data": _zeros(t)}
        for t in served["spec"]["model"]["inputs"]
    ]
    client = (
        "import json, sys, urllib.request\n"
        f"request = urllib.request.Request({url!r}, data=json.dumps({{'inputs': {inputs!r}}}).encode(),"
        " headers={'Content-Type': 'application/json'})\n"
        "answer = json.loads(urllib.request.urlopen(request, timeout=30).read())\n"
        "open('/dev/termination-log', 'w').write(json.dumps(answer['outputs'][0]['data']))\n"
    )
    cluster.rest.create(
        f"/api/v1/namespaces/{watched}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client"},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"fulcrum.dev/pool": "local"},
                "containers": [
                    {"name": "client", "image": cluster.images["fulcrum"].ref, "command": ["python3", "-c", client]}
                ],
            },
        },
    )

    def finished() -> Obj | None:
        pod: Obj = cluster.rest.get(f"/api/v1/namespaces/{watched}/pods/client")
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    pod = wait_for("the client pod to finish", finished, timeout=120)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0, cluster.kubectl("logs", "-n", watched, "client", check=False).stdout
    scores = json.loads(terminated["message"])
    assert len(scores) == 1 and 0.0 <= float(scores[0]) <= 1.0


def _zeros(tensor: Obj) -> list[float | int]:
    count = 1
    for d in tensor["dims"]:
        count *= d
    return [1] * count if tensor["dataType"].startswith("INT") else [0.5] * count


def test_kubectl_logs_works_for_every_pod(cluster: Any, release: Release, served: Obj, watched: str) -> None:
    every = [(BUILD_NAMESPACE, p) for p in pods(cluster, BUILD_NAMESPACE)] + [
        (watched, p) for p in pods(cluster, watched)
    ]
    assert len(every) >= 2
    for namespace, pod in every:
        for container in pod["spec"]["containers"]:
            result = cluster.kubectl(
                "logs", "-n", namespace, pod["metadata"]["name"], "-c", container["name"], "--tail=5", check=False
            )
            assert result.returncode == 0, f"{namespace}/{pod['metadata']['name']}: {result.stderr}"
    operator_log = release.log()
    assert "fulcrum" in operator_log.lower() or operator_log.strip(), operator_log


def seed_record(kube: Kube, release: Release, served: Obj, manifest: Obj) -> None:
    """ctr-ranker's build record, under the key the operator computes for ``manifest``."""
    settings = OperatorSettings(
        build_namespace=release.build_namespace,
        storage=repository_storage(release.store),
        build_target="local",
        triton_image=release.triton_image,
    )
    real = kube.build_record(BUILD_NAMESPACE, served["status"]["build"]["key"])
    spec = parse_model_deployment(manifest).spec
    pool = spec.node_pool("local")
    # keyed as the operator keys it (scoped to the namespace unless every file is pinned)
    key = next(b.key for b in pool_builds(spec, settings, {}, {}, served["metadata"]["namespace"]) if b.pool == pool)
    # as the real build of that key would record it: measured with (and so served with) the manifest's image
    result = {**real, "servingImage": triton_image(spec, settings)}
    kube.create_build_record(BUILD_NAMESPACE, build_record(key, pool, result, settings))


def test_a_serving_image_that_does_not_exist_is_reported_and_nothing_else_is_affected(
    kube: Kube, release: Release, served: Obj, watched: str
) -> None:
    missing = "localhost:5000/no-such-tritonserver:1"
    manifest = example_manifest("bad-image", serving={**served["spec"]["serving"], "image": missing})
    # The serving image is a build input (the build profiles through it): the real build of that key would wait on
    # the same pull in its Triton sidecar (tests/unit/test_reconcile_plan.py holds that path). Here the record of
    # ctr-ranker's build stands for it, so the Deployment's pods are what fails, in seconds.
    seed_record(kube, release, served, manifest)
    kube.create(watched, manifest)

    def reported() -> Obj | None:
        condition = kube.condition(watched, "bad-image", "Ready")
        if condition and condition["status"] == "False" and condition["reason"] in ("ErrImagePull", "ImagePullBackOff"):
            return condition
        return None

    condition = wait_for(
        "the pull failure in bad-image's status",
        reported,
        180,
        on_timeout=lambda: debug(kube, release, watched, "bad-image"),
    )
    assert missing in condition["message"]
    available = kube.condition(watched, "bad-image", "Available")
    assert available is not None and available["reason"] == condition["reason"]
    assert kube.is_true(watched, "ctr-ranker", "Ready")


def test_deleting_the_models_and_the_release_leaves_no_running_pod(
    cluster: Any, kube: Kube, release: Release, served: Obj, watched: str
) -> None:
    for name in ("ctr-ranker", "bad-image"):
        cluster.kubectl("delete", "md", name, "-n", watched, "--ignore-not-found", check=False)
    release.uninstall()

    def running() -> list[str]:
        return [
            f"{ns}/{p['metadata']['name']}"
            for ns in (BUILD_NAMESPACE, watched)
            for p in pods(cluster, ns)
            if p["status"].get("phase") in ("Pending", "Running")
        ]

    wait_for("no pod left running", lambda: not running(), 120, on_timeout=lambda: str(running()))
    # finished build pods stay for their Job's TTL (their logs); they run nothing

"""The operator on a real control plane: build Jobs, Triton pods on the local node, honest status.

One operator (a real `fulcrum run` process) serves the module; the ctr-ranker example is built once (its
build record is then reused by content key) and served by real tritonserver pods on ``local-0``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kube import BUILD_TIMEOUT, Kube, debug, example_manifest, infer, wait_ready
from tests.support.kube_api import pod_ip
from tests.support.polling import wait_for
from tests.support.release import Release

pytestmark = pytest.mark.e2e


def infer_example(pod_ip: str, md: dict[str, Any]) -> dict[str, Any]:
    """One request of the example's inputs (ones and halves) to the served model."""
    inputs = []
    for tensor in md["spec"]["model"]["inputs"]:
        count = 1
        for d in tensor["dims"]:
            count *= d
        data = [1] * count if tensor["dataType"].startswith("INT") else [0.5] * count
        inputs.append(
            {"name": tensor["name"], "shape": [1, *tensor["dims"]], "datatype": tensor["dataType"], "data": data}
        )
    served = md["status"]["serving"]["modelName"]  # the one name clients call, whatever the tier
    return infer(pod_ip, served, inputs)


def test_example_goes_ready_with_a_real_build_and_triton_answering(
    kube: Kube, operator: Release, namespace: str
) -> None:
    kube.create(namespace, example_manifest())
    wait_ready(kube, operator, namespace, "ctr-ranker")
    md = kube.get(namespace, "ctr-ranker")
    status = md["status"]
    assert status["observedGeneration"] == md["metadata"]["generation"]
    assert status["activeNodePool"] == "local" and status["readyReplicas"] >= 1
    tiers = {t["name"]: t for t in status["tiers"]}
    assert tiers["fp32"]["state"] == "Ready" and tiers["fp32"]["profiles"], tiers
    # gated on held-out rows through the tritonserver the pool serves with, and profiled with the config that serves
    for tier in (t for t in tiers.values() if t["state"] == "Ready"):
        assert tier["validation"]["gatedOn"].startswith("tritonserver"), tier
        assert tier["validation"]["gateRows"] == [256, 512], tier
        profile = tier["profiles"][0]
        assert profile["config"] == {"instances": 1, "maxQueueDelayMicroseconds": 8000, "preferredBatchSizes": [16, 32]}
        assert "search" not in profile  # off for the e2e example
    assert tiers["int8"]["validation"]["calibrationRows"] == [0, 256]
    assert {c["type"] for c in status["conditions"]} >= {
        "Ready",
        "Reconciling",
        "Stalled",
        "RepositoryReady",
        "Available",
    }
    deployments = kube.deployments(namespace, "ctr-ranker")
    assert len(deployments) == 1
    labels = deployments[0].metadata.labels
    assert labels["app.kubernetes.io/managed-by"] == "fulcrum" and "app.kubernetes.io/instance" not in labels
    assert deployments[0].metadata.owner_references[0].kind == "ModelDeployment"
    ready = kube.ready_pods(namespace, "ctr-ranker")
    assert ready
    assert ready[0].spec is not None and ready[0].spec.node_name == "local-0"
    answer = infer_example(pod_ip(ready[0]), md)
    assert answer["model_name"] == "ctr-ranker"
    score = answer["outputs"][0]["data"][0]
    assert 0.0 <= score <= 1.0
    events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.name=ctr-ranker").items
    assert any(e.reason == "BuildStarted" for e in events) or kube.build_jobs(operator.build_namespace)
    assert any(e.reason == "Serving" for e in events)


def test_budget_change_does_not_rebuild_but_a_tier_change_does(kube: Kube, operator: Release, namespace: str) -> None:
    """(With the config search on, as here, the SLO is a build input: the unit tests hold the key to that.)"""
    kube.create(namespace, example_manifest("ranker-b"))
    wait_ready(kube, operator, namespace, "ranker-b")
    jobs = kube.build_jobs(operator.build_namespace)
    build_key = kube.get(namespace, "ranker-b")["status"]["build"]["key"]

    kube.patch_spec(namespace, "ranker-b", {"budget": {"maxCostPerHour": "7.25"}, "scaling": {"maxReplicas": 3}})
    md = wait_for(
        "the budget change observed",
        lambda: (
            (m := kube.get(namespace, "ranker-b"))["status"].get("observedGeneration") == m["metadata"]["generation"]
            and m
        ),
        timeout=60,
    )
    assert md["status"]["build"]["key"] == build_key
    assert kube.build_jobs(operator.build_namespace) == jobs

    tiers = example_manifest()["spec"]["tiers"][:2]
    kube.patch_spec(namespace, "ranker-b", {"tiers": tiers})
    wait_for(
        "a new build Job for the new tiers",
        lambda: len(kube.build_jobs(operator.build_namespace)) == len(jobs) + 1,
        timeout=60,
        on_timeout=lambda: debug(kube, operator, namespace, "ranker-b"),
    )
    # the previous build keeps serving while the new tiers build
    assert kube.deployments(namespace, "ranker-b")
    assert kube.get(namespace, "ranker-b")["status"]["build"]["key"] == build_key
    wait_for(
        "the new build to serve",
        lambda: (
            kube.get(namespace, "ranker-b")["status"]["build"]["key"] != build_key
            and kube.is_true(namespace, "ranker-b", "Ready")
        ),
        timeout=BUILD_TIMEOUT,
        every=2,
        on_timeout=lambda: debug(kube, operator, namespace, "ranker-b"),
    )
    assert [t["name"] for t in kube.get(namespace, "ranker-b")["status"]["tiers"]] == ["fp32", "fp16"]


def test_deleted_child_comes_back_and_deleting_the_parent_removes_all(
    kube: Kube, operator: Release, namespace: str
) -> None:
    kube.create(namespace, example_manifest("ranker-c"))
    wait_ready(kube, operator, namespace, "ranker-c")
    [deployment] = kube.deployments(namespace, "ranker-c")
    kube.apps.delete_namespaced_deployment(deployment.metadata.name, namespace)
    wait_for(
        "the deleted Deployment to come back",
        lambda: any(d.metadata.uid != deployment.metadata.uid for d in kube.deployments(namespace, "ranker-c")),
        timeout=60,
    )

    kube.delete(namespace, "ranker-c")
    selector = "fulcrum.dev/model-deployment=ranker-c"
    wait_for(
        "every child to be garbage-collected",
        lambda: (
            not kube.deployments(namespace, "ranker-c")
            and not kube.core.list_namespaced_service(namespace, label_selector=selector).items
        ),
        timeout=120,
    )


def test_missing_model_file_fails_its_object_only(kube: Kube, operator: Release, namespace: str) -> None:
    broken = example_manifest("broken")
    broken["spec"]["model"]["source"]["uri"] = "file:///nonexistent/fulcrum/model.pt2"
    kube.create(namespace, broken)
    kube.create(namespace, example_manifest("healthy"))

    def repository_failed() -> dict[str, Any] | None:
        condition = kube.condition(namespace, "broken", "RepositoryReady")
        return condition if condition and condition["status"] == "False" and condition["reason"] != "Building" else None

    condition = wait_for(
        "broken to report its build failure",
        repository_failed,
        BUILD_TIMEOUT,
        on_timeout=lambda: debug(kube, operator, namespace, "broken"),
    )
    assert "/nonexistent/fulcrum/model.pt2" in condition["message"]
    assert kube.is_true(namespace, "broken", "Stalled")
    wait_ready(kube, operator, namespace, "healthy")

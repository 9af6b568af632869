"""Fixtures for tests that drive the operator on the local cluster (registered in tests/conftest.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from fulcrum.dev import objectstore
from tests.support.operator_process import OperatorProcess, ensure_secret
from tests.support.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ctr-ranker"
BUILD_TIMEOUT = 900.0
GROUP, VERSION, PLURAL = "fulcrum.dev", "v1alpha1", "modeldeployments"


class Kube:
    def __init__(self, kubeconfig: Path, store: objectstore.ObjectStoreConfig | None = None) -> None:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        self.kubeconfig = kubeconfig
        self.store = store
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self._serving_secrets: set[str] = set()

    def create_serving_secret(self, namespace: str) -> None:
        """What a platform's secret sync does: the object store's read-only keys, which serving pods download
        with, in a namespace that serves models."""
        if self.store is not None and namespace not in self._serving_secrets:
            secret = objectstore.secret(self.store, "reader", objectstore.SERVING_SECRET, namespace)
            ensure_secret(self.kubeconfig, secret)
            self._serving_secrets.add(namespace)

    def create(self, namespace: str, manifest: dict[str, Any]) -> None:
        """Create a ModelDeployment (its namespace gets the serving pods' read-only keys first)."""
        self.create_serving_secret(namespace)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": spec})

    def delete(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
        status = self.get(namespace, name).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == type_), None)

    def is_true(self, namespace: str, name: str, type_: str) -> bool:
        condition = self.condition(namespace, name, type_)
        return condition is not None and condition["status"] == "True"

    def deployments(self, namespace: str, name: str) -> list[Any]:
        selector = f"fulcrum.dev/model-deployment={name}"
        return self.apps.list_namespaced_deployment(namespace, label_selector=selector).items

    def build_jobs(self, build_namespace: str) -> list[str]:
        """Build Jobs of pool ``local``, the real node (the simulated pools' build pods end at once, without a
        result, so they build nothing)."""
        jobs = self.batch.list_namespaced_job(build_namespace, label_selector="fulcrum.dev/node-pool=local").items
        return sorted(j.metadata.name for j in jobs)


@pytest.fixture(scope="module")
def kube(cluster: Any) -> Kube:
    return Kube(Path(cluster.kubeconfig), objectstore.load(cluster.home))


@pytest.fixture(scope="module")
def crd_installed(kube: Kube, cluster: Any) -> None:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    extensions = client.ApiextensionsV1Api(api)
    body = yaml.safe_load((ROOT / "crds" / "fulcrum.dev_modeldeployments.yaml").read_text())
    try:
        extensions.create_custom_resource_definition(body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    wait_for(
        "the CRD to be established",
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in (extensions.read_custom_resource_definition(body["metadata"]["name"]).status.conditions or [])
        ),
        timeout=60,
    )


@pytest.fixture(scope="session")
def model_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repository directory for the session's operators, so their builds (and build records) are shared."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def operator(
    cluster: Any, crd_installed: None, model_storage: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("operator")
    process = OperatorProcess(
        kubeconfig=Path(cluster.kubeconfig),
        build_namespace="fulcrum-e2e-builds",
        repository=model_storage,
        log_path=workdir / "operator.log",
        store=objectstore.load(cluster.home),
    ).start()
    yield process
    process.stop()


def example_manifest(name: str = "ctr-ranker", **spec_patch: Any) -> dict[str, Any]:
    """The ctr-ranker example (its files in the cluster's object store), served on the local node only, with the
    config search off."""
    manifest = yaml.safe_load((EXAMPLE / "modeldeployment.yaml").read_text())
    manifest["metadata"] = {"name": name}
    spec = manifest["spec"]
    spec["tiers"] = [t for t in spec["tiers"] if t["backend"] != "tensorrt"]
    # the config search off: the e2e tests (the closed loop with its synthetic profiles above all) are about the
    # spec's serving config; the search itself runs against the real tritonserver in tests/integration
    spec["serving"]["configSearch"] = {"enabled": False}
    spec["nodePools"] = [
        {
            "name": "local",
            "nodeSelector": {"fulcrum.dev/pool": "local"},
            "gpusPerReplica": 0,
            "costPerHour": "0.05",
            "replicaStartupSeconds": 10,
        }
    ]
    spec.update(copy.deepcopy(spec_patch))
    return manifest


def debug(kube: Kube, operator: OperatorProcess, namespace: str, name: str) -> str:
    try:
        status = json.dumps(kube.get(namespace, name).get("status"), indent=1)[-3000:]
    except client.ApiException as exc:
        status = f"<{exc.status}>"
    return f"status: {status}\noperator log:\n{operator.log()}"


def wait_ready(
    kube: Kube, operator: OperatorProcess, namespace: str, name: str, timeout: float = BUILD_TIMEOUT
) -> None:
    wait_for(
        f"{namespace}/{name} Ready",
        lambda: kube.is_true(namespace, name, "Ready"),
        timeout,
        every=2,
        on_timeout=lambda: debug(kube, operator, namespace, name),
    )

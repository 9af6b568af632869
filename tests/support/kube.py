"""Fixtures for tests that drive the operator on the local cluster (registered in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import copy
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client

from fulcrum.dev import objectstore
from fulcrum.dev.objectstore import ObjectStoreConfig
from fulcrum.resources.build import RECORD_KEY
from fulcrum.resources.labels import MODEL_DEPLOYMENT, build_record_name
from tests.support.kube_api import api_client, name_of, pod_ready
from tests.support.operator_process import ensure_secret
from tests.support.polling import wait_for
from tests.support.release import Release, dev_values

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ctr-ranker"
BUILD_TIMEOUT = 900.0
# one CPU per Triton replica at most; a small request, so that old and new replicas of a rolling switch all fit on
# the two cores of local-0 (requests only place pods; the limit is what bounds a replica's capacity)
REPLICA_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
GROUP, VERSION, PLURAL = "fulcrum.dev", "v1alpha1", "modeldeployments"


class Kube:
    def __init__(self, kubeconfig: Path, store: objectstore.ObjectStoreConfig | None = None) -> None:
        api = api_client(kubeconfig)
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
        # the custom objects API answers with the object's JSON
        return cast(dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))

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

    def ready_pods(self, namespace: str, name: str) -> list[client.V1Pod]:
        """The Ready Triton pods of a ModelDeployment."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"{MODEL_DEPLOYMENT}={name}").items
        return [p for p in pods if pod_ready(p)]

    def build_jobs(self, build_namespace: str) -> list[str]:
        """Build Jobs of pool ``local``, the real node (the simulated pools' build pods end at once, without a
        result, so they build nothing)."""
        jobs = self.batch.list_namespaced_job(build_namespace, label_selector="fulcrum.dev/node-pool=local").items
        return sorted(name_of(j) for j in jobs)

    @contextlib.contextmanager
    def hostpath_claim(self, namespace: str, claim: str, directory: Path) -> Iterator[None]:
        """A claim in ``namespace`` bound to a node directory of the real node (a PersistentVolume made for it,
        deleted on the way out): what a team's storage class would give, on a one-node cluster."""
        volume = f"{namespace}-{claim}"  # a PersistentVolume is cluster-wide: named after both
        self.core.create_persistent_volume(
            client.V1PersistentVolume.model_validate(
                {
                    "metadata": {"name": volume, "labels": {"fulcrum.dev/e2e": "true"}},
                    "spec": {
                        "capacity": {"storage": "64Mi"},
                        "accessModes": ["ReadOnlyMany"],
                        "storageClassName": "",
                        "persistentVolumeReclaimPolicy": "Retain",
                        "hostPath": {"path": str(directory), "type": "Directory"},
                        "claimRef": {"namespace": namespace, "name": claim},
                    },
                }
            )
        )
        try:
            self.core.create_namespaced_persistent_volume_claim(
                namespace,
                client.V1PersistentVolumeClaim.model_validate(
                    {
                        "metadata": {"name": claim},
                        "spec": {
                            "accessModes": ["ReadOnlyMany"],
                            "storageClassName": "",
                            "volumeName": volume,
                            "resources": {"requests": {"storage": "64Mi"}},
                        },
                    }
                ),
            )
            yield
        finally:
            self.core.delete_persistent_volume(volume)

    def build_record(self, build_namespace: str, key: str) -> dict[str, Any]:
        """The result a build record (the ConfigMap of build ``key``) holds."""
        data = self.core.read_namespaced_config_map(build_record_name(key), build_namespace).data
        assert data is not None, f"build record {key} without data"
        result: dict[str, Any] = json.loads(data[RECORD_KEY])
        return result

    def create_build_record(self, build_namespace: str, record: dict[str, Any]) -> None:
        """A seeded build record (its ConfigMap manifest); one an earlier test seeded stays."""
        try:
            # the model the client makes of the manifest anyway (its calls validate their bodies)
            self.core.create_namespaced_config_map(build_namespace, client.V1ConfigMap.model_validate(record))
        except client.ApiException as exc:
            if exc.status != 409:
                raise


@pytest.fixture(scope="module")
def kube(cluster: Any) -> Kube:
    return Kube(Path(cluster.kubeconfig), objectstore.load(cluster.home))


@pytest.fixture(scope="module")
def crd_installed(kube: Kube, cluster: Any) -> None:
    extensions = client.ApiextensionsV1Api(api_client(cluster.kubeconfig))
    body = yaml.safe_load((ROOT / "crds" / "fulcrum.dev_modeldeployments.yaml").read_text())
    try:
        extensions.create_custom_resource_definition(body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        status = extensions.read_custom_resource_definition(body["metadata"]["name"]).status
        assert status is not None, "a CRD without status"
        return any(c.type == "Established" and c.status == "True" for c in status.conditions or [])

    wait_for("the CRD to be established", established, timeout=60)


@pytest.fixture(scope="session")
def model_storage(cluster: Any) -> ObjectStoreConfig:
    """The session cluster's object store: every operator of the session keeps its repositories there (the
    chart's default storage, s3), so their builds and build records are shared; the example's model files are
    there too (``fulcrum dev up`` uploads them), where build Jobs fetch them."""
    store = objectstore.load(cluster.home)
    assert store is not None, "`fulcrum dev up` started no object store"
    return store


@pytest.fixture(scope="module")
def operator(cluster: Any, crd_installed: None, model_storage: ObjectStoreConfig) -> Iterator[Release]:
    """The operator as a user installs it: the chart, its pod on local-0, the dev cluster's images."""
    release = Release(cluster, "fulcrum-e2e-builds", model_storage, dev_values(cluster.images, model_storage))
    try:
        yield release.install()
    finally:
        release.uninstall()


def example_manifest(name: str = "ctr-ranker", **spec_patch: Any) -> dict[str, Any]:
    """The ctr-ranker example (its files in the cluster's object store), served on the local node only, with the
    config search off."""
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLE / "modeldeployment.yaml").read_text())
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
    # each Triton replica gets at most one CPU (the build Job profiles under the same limit): bounded capacity
    spec["serving"] = {**spec.get("serving", {}), "resources": REPLICA_RESOURCES}
    spec.update(copy.deepcopy(spec_patch))
    return manifest


def debug(kube: Kube, operator: Release, namespace: str, name: str) -> str:
    try:
        body = kube.get(namespace, name).get("status") or {}
        # what explains a wait first (conditions, what was observed and decided); the tiers' details last, cut
        head = {k: v for k, v in body.items() if k != "tiers"}
        status = json.dumps(head, indent=1)[-6000:] + "\ntiers: " + json.dumps(body.get("tiers"))[:1500]
    except client.ApiException as exc:
        status = f"<{exc.status}>"
    return f"status: {status}\noperator log:\n{operator.log()}"


def infer(pod_ip: str, model: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """One request to a Triton pod's HTTP/JSON inference endpoint; its answer."""
    request = urllib.request.Request(
        f"http://{pod_ip}:8000/v2/models/{model}/infer",
        data=json.dumps({"inputs": inputs}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def wait_ready(kube: Kube, operator: Release, namespace: str, name: str, timeout: float = BUILD_TIMEOUT) -> None:
    wait_for(
        f"{namespace}/{name} Ready",
        lambda: kube.is_true(namespace, name, "Ready"),
        timeout,
        every=2,
        on_timeout=lambda: debug(kube, operator, namespace, name),
    )

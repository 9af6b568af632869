"""The chart installed as a platform team installs it: ``helm install`` with the dev cluster's images.

The operator runs in its pod on ``local-0`` with in-cluster configuration and the chart's ServiceAccount, build
Jobs run the ``fulcrum-builder`` image and Triton pods the ``tritonserver-cpu`` image. The values a dev cluster
needs beyond the chart's defaults are the images, ``build.target=local`` (python-backend models: what the CPU
tritonserver serves) and where the cluster's object store is (the chart's default storage, ``s3``).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fulcrum.dev import objectstore
from fulcrum.dev.chart_values import image_values, merged, node_values
from fulcrum.dev.images import BuiltImage
from fulcrum.dev.objectstore import ObjectStoreConfig
from fulcrum.resources.settings import RepositoryStorage
from tests.support.chart import CHART, helm_binary
from tests.support.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]


def dev_values(
    images: dict[str, BuiltImage], store: ObjectStoreConfig, *, watch: list[str] | None = None, crds: bool = False
) -> dict[str, Any]:
    """The chart's values on the dev cluster: its images, the local build target, its object store."""
    return merged(
        image_values(images),
        objectstore.chart_values(store),
        node_values(),
        # one operator pod (it still elects itself leader): the dev node has two cores, and the chart's second
        # replica only waits; tests/e2e/test_chart.py and the control tests cover the chart's default
        {"watchNamespaces": watch or [], "crds": {"install": crds}, "operator": {"tickSeconds": 5, "replicas": 1}},
    )


def repository_storage(store: ObjectStoreConfig) -> RepositoryStorage:
    """The storage an operator with :func:`dev_values` (or ``objectstore.operator_flags``) keys its builds by."""
    return RepositoryStorage.parse(objectstore.REPOSITORY, endpoint=store.endpoint)


@dataclass
class Release:
    """One Helm release of the chart on a dev cluster (``cluster``: tests.e2e.conftest.Cluster)."""

    cluster: Any
    namespace: str
    store: ObjectStoreConfig
    values: dict[str, Any]
    name: str = field(default_factory=lambda: f"fulcrum-{uuid.uuid4().hex[:6]}")

    @property
    def build_namespace(self) -> str:
        return self.namespace

    @property
    def triton_image(self) -> str:
        """The serving image Triton pods (and build Jobs' sidecars) run: part of every build key."""
        return str(self.values["triton"]["image"])

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        helm = helm_binary()
        assert helm is not None, "no helm binary (fulcrum dev build makes one)"
        result = subprocess.run(
            [helm, *args, "--kubeconfig", str(self.cluster.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result

    def install(self, timeout: float = 300) -> Release:
        sets = [a for k, v in self.values.items() for a in ("--set-json", f"{k}={json.dumps(v)}")]
        self.helm("install", self.name, str(CHART), "--namespace", self.namespace, "--create-namespace", *sets)
        self.wait_operator_ready(timeout)
        return self

    def operator_pods(self) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=operator"
        pods: list[dict[str, Any]] = self.cluster.rest.get(
            f"/api/v1/namespaces/{self.namespace}/pods", labelSelector=selector
        )["items"]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def wait_operator_ready(self, timeout: float = 300, not_uid: str | None = None) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            for pod in self.operator_pods():
                conditions = (pod.get("status") or {}).get("conditions") or []
                if pod["metadata"]["uid"] != not_uid and any(
                    c["type"] == "Ready" and c["status"] == "True" for c in conditions
                ):
                    return pod
            return None

        pod: dict[str, Any] = wait_for("the operator pod to be Ready", ready, timeout, on_timeout=self.describe)
        return pod

    def describe(self) -> str:
        pods = self.cluster.kubectl("get", "pods", "-n", self.namespace, "-o", "wide", check=False).stdout
        return f"{pods}\noperator log:\n{self.log()}"

    def log(self, lines: int = 80) -> str:
        result: subprocess.CompletedProcess[str] = self.cluster.kubectl(
            "logs", "-n", self.namespace, f"deployment/{self.name}", f"--tail={lines}", "--all-containers", check=False
        )
        return result.stdout + result.stderr

    def kill(self) -> None:
        """The operator's pod dies at once (no grace), as on a node failure; its Deployment starts another."""
        [pod] = self.operator_pods()
        self.cluster.kubectl(
            "delete", "pod", "-n", self.namespace, pod["metadata"]["name"], "--grace-period=0", "--force", check=False
        )
        self.wait_operator_ready(not_uid=pod["metadata"]["uid"])

    def uninstall(self) -> None:
        self.helm("uninstall", self.name, "--namespace", self.namespace, "--wait", check=False)

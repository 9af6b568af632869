"""The e2e fixtures: one real local cluster per session (isolated home, ports and node), a namespace per test.

``cluster`` runs ``fulcrum dev up`` in-process on a private home directory, free loopback ports and a node
(kubelet, containerd, kube-proxy) in network and mount namespaces of its own, so it never touches a developer's
own ``fulcrum dev`` cluster or another session's, and ``fulcrum dev down`` at the end. The binaries and images
come from ``fulcrum dev build`` (scripts/setup runs it; here it builds what is missing).
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from fulcrum.dev import build as dev_build
from fulcrum.dev import cluster as dev_cluster
from fulcrum.dev import health, images
from fulcrum.dev.config import ClusterConfig, Pool, Ports
from fulcrum.dev.paths import DevHome
from fulcrum.dev.rest import Rest
from tests.support.kube_api import api_client

E2E_POOLS = (Pool("l4", 4, 4), Pool("a100", 2, 8), Pool("cpu", 2, 0))


def _project_binaries_first() -> None:
    """kubectl, helm and the rest come from the pin (``fulcrum dev build``), never from whatever the machine has."""
    bin_dir = str(dev_build.plan().bin_dir)
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([bin_dir, *(p for p in path if p != bin_dir)])


_project_binaries_first()


@dataclass
class Cluster:
    """A running dev cluster.

    ``kubeconfig``: admin kubeconfig path; ``api_client``: a ready ``kubernetes.client.ApiClient``;
    ``rest``: a dict-in/dict-out admin client (``rest.get("/api/v1/nodes")``); ``core``/``apps``/``batch``:
    typed API objects; ``env``: os.environ with KUBECONFIG set; ``kubectl(*args)``; ``home``/``config``;
    ``images``: Fulcrum's images as the node pulls them (``images["fulcrum"].ref``, ``.repository``, ``.tag``).
    """

    home: DevHome
    config: ClusterConfig
    kubeconfig: Path
    api_client: client.ApiClient
    rest: Rest
    images: dict[str, images.BuiltImage]

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api_client)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api_client)

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (kubectl, helm, `fulcrum run`) pointed at this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=120
        )

    @property
    def bin_dir(self) -> Path:
        found = dev_build.find_bin_dir()
        assert found is not None
        return found


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(tries: int = 200) -> int:
    """A block of free loopback ports below the kernel's ephemeral range (32768+), where outgoing
    connections could take a port between this check and the cluster's start."""
    for _ in range(tries):
        base = random.randrange(20000, 32000, 10)
        ports = Ports.from_base(base).all()
        if all(_bindable(p) for p in ports) and not any(health.port_open(p) for p in ports):
            return base
    raise RuntimeError("no free block of 8 loopback ports found")


def start_isolated(home: DevHome, pools: tuple[Pool, ...], timeout: float = 300.0) -> ClusterConfig:
    if dev_build.find_bin_dir() is None:
        dev_build.build(dev_build.plan())
    cfg = ClusterConfig(
        port_base=free_port_base(),
        pools=pools,
        subnet_index=dev_cluster.choose_subnet_index(home, first=200),
    )
    # the watchdog takes the cluster down if this session dies without its teardown (a killed CI job)
    return dev_cluster.up(home, cfg, say=lambda _m: None, timeout=timeout, owner_pid=os.getpid())


def built_images() -> dict[str, images.BuiltImage]:
    """Fulcrum's images for this checkout (scripts/setup builds them; a changed source rebuilds its layer)."""
    bin_dir = dev_build.find_bin_dir()
    assert bin_dir is not None
    return images.ensure(say=lambda _m: None, pause_binary=bin_dir / "pause")


def admin_rest(cfg: ClusterConfig, home: DevHome) -> Rest:
    return Rest(cfg.ports.apiserver, home.pki, "admin", host=cfg.host_address)


PREPULL_NAMESPACE = "fulcrum-e2e-prepull"
PREPULLED = ("fulcrum-builder", "tritonserver-cpu", "fulcrum")  # biggest first: the builder is gigabytes


def prepull(rest: Rest, built: dict[str, images.BuiltImage]) -> None:
    """Have the node pull the images of build Jobs, Triton pods and the operator now, in the background.

    One pod per image on ``local-0`` that runs ``true`` and stays Completed: the kubelet pulls (in parallel, as
    the dev node is configured) while the first tests run, so the first build or Triton pod of the session finds
    its image unpacked instead of pulling gigabytes then. Nothing waits for these pods.
    """
    rest.create("/api/v1/namespaces", {"metadata": {"name": PREPULL_NAMESPACE, "labels": {"fulcrum.dev/e2e": "true"}}})
    _wait_default_service_account(rest, PREPULL_NAMESPACE)
    for name in PREPULLED:
        container = {"name": "pull", "image": built[name].ref, "command": ["true"], "imagePullPolicy": "IfNotPresent"}
        pod = {
            "metadata": {"name": name},
            "spec": {
                "nodeName": "local-0",
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [container],
            },
        }
        rest.create(f"/api/v1/namespaces/{PREPULL_NAMESPACE}/pods", pod)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = DevHome(tmp_path_factory.mktemp("fulcrum-dev-home"))
    try:
        built = built_images()
        cfg = start_isolated(home, E2E_POOLS)
        api = api_client(home.kubeconfig)
        rest = admin_rest(cfg, home)
        prepull(rest, built)
        yield Cluster(home, cfg, home.kubeconfig, api, rest, built)
    finally:
        dev_cluster.down(home, say=lambda _m: None)


def _wait_default_service_account(rest: Rest, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rest.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default") is not None:
            return
        time.sleep(0.2)
    raise TimeoutError(f"namespace {name}: no default ServiceAccount after {timeout}s")


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted after the test."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    cluster.rest.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": {"fulcrum.dev/e2e": "true"}}})
    try:
        _wait_default_service_account(cluster.rest, name)
        yield name
    finally:
        cluster.rest.delete(f"/api/v1/namespaces/{name}")

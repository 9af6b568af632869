"""The node agent: registers ``local-0``, keeps its lease, runs its pods, serves their logs."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fulcrum.dev import nodes, procs
from fulcrum.dev.agent.logserver import LogServer
from fulcrum.dev.agent.netalloc import NetAllocator
from fulcrum.dev.agent.podspec import Lookups, decode_secret
from fulcrum.dev.agent.provisioner import Provisioner
from fulcrum.dev.agent.status import now_iso
from fulcrum.dev.agent.volumes import VolumeLookups
from fulcrum.dev.agent.worker import PodWorker, WorkerContext
from fulcrum.dev.config import LOCAL_NODE, ClusterConfig
from fulcrum.dev.paths import DevHome
from fulcrum.dev.rest import ApiError, Rest

log = logging.getLogger("fulcrum.dev.agent")

SYNC_PERIOD = 1.0
LEASE_SECONDS = 40
LEASE_RENEW = 10.0
STATUS_PERIOD = 30.0
BASE_ENV_KEYS = (
    "PATH",
    "HOME",
    "XDG_CACHE_HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "USER",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "TMPDIR",
    "FULCRUM_DEV_CLUSTER",
)


def micro_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"


class Agent:
    def __init__(self, home: DevHome, cfg: ClusterConfig) -> None:
        self.home, self.cfg = home, cfg
        port = cfg.ports.apiserver
        self.rest = Rest(port, home.pki, "node-local-0")
        self.admin = Rest(port, home.pki, "admin")
        self.net = NetAllocator(cfg, str(home.root))
        self.workers: dict[str, PodWorker] = {}
        self.stop = threading.Event()
        venv_bin = str(Path(sys.executable).parent)
        base_env = {k: v for k, v in os.environ.items() if k in BASE_ENV_KEYS}
        base_env[procs.POD_ENV] = str(home.root)
        self.ctx = WorkerContext(
            rest=self.rest,
            pods_dir=home.pods,
            logs_dir=home.logs,
            python=sys.executable,
            venv_bin=venv_bin,
            base_env=base_env,
            lookups=self._lookups(),
            acquire_net=self.net.acquire,
            release_net=self.net.release,
        )
        self.logs = LogServer(home, cfg.ports.kubelet, self.workers)
        self.provisioner = Provisioner(self.admin, home.volumes)

    # -- lookups with the node's credentials (the node authorizer allows what its pods reference) ------------
    def _lookups(self) -> VolumeLookups:
        def config_map(ns: str, name: str) -> dict[str, str] | None:
            obj = self.rest.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/{name}")
            return None if obj is None else dict(obj.get("data") or {})

        def secret(ns: str, name: str) -> dict[str, str] | None:
            obj = self.rest.get_or_none(f"/api/v1/namespaces/{ns}/secrets/{name}")
            return None if obj is None else decode_secret(obj.get("data"))

        def pvc(ns: str, name: str) -> dict[str, Any] | None:
            return self.rest.get_or_none(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}")

        def pv(name: str) -> dict[str, Any] | None:
            return self.rest.get_or_none(f"/api/v1/persistentvolumes/{name}")

        def token(pod: dict[str, Any], audience: str | None, seconds: int) -> str | None:
            meta = pod["metadata"]
            ns, sa = meta["namespace"], pod["spec"].get("serviceAccountName") or "default"
            spec: dict[str, Any] = {
                "expirationSeconds": max(seconds, 600),
                # NodeRestriction: a node may only ask for tokens bound to its own pods
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            }
            if audience:
                spec["audiences"] = [audience]
            try:
                out = self.rest.create(
                    f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
                )
            except ApiError as exc:
                log.warning("token for %s/%s: %s", ns, sa, exc)
                return None
            return str(out.get("status", {}).get("token", ""))

        return VolumeLookups(Lookups(config_map, secret), pvc, pv, token, (self.home.pki / "ca.crt").read_text())

    # -- node ----------------------------------------------------------------------------------------------
    def register(self) -> None:
        node = nodes.local_node(self.cfg)
        try:
            self.rest.create("/api/v1/nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
        self.post_status()

    def post_status(self) -> None:
        status = nodes.local_node_status(self.cfg, now_iso(), self.cfg.ports.kubelet)
        self.rest.patch(f"/api/v1/nodes/{LOCAL_NODE}/status", {"status": status})

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{LOCAL_NODE}"
        spec = {"holderIdentity": LOCAL_NODE, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_now()}
        try:
            self.rest.patch(path, {"spec": spec}, kind="merge")
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.rest.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": LOCAL_NODE, "namespace": "kube-node-lease"},
                    "spec": spec,
                },
            )

    def _heartbeat(self) -> None:
        last_status = time.monotonic()
        while not self.stop.wait(LEASE_RENEW):
            try:
                self.renew_lease()
                if time.monotonic() - last_status > STATUS_PERIOD:
                    self.post_status()
                    last_status = time.monotonic()
            except (ApiError, OSError) as exc:
                log.warning("heartbeat failed: %s", exc)

    # -- pods ----------------------------------------------------------------------------------------------
    def sync_once(self) -> None:
        listing = self.rest.get("/api/v1/pods", fieldSelector=f"spec.nodeName={LOCAL_NODE}")
        seen = set()
        for pod in listing.get("items", []):
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            worker = self.workers.get(uid)
            if worker is None:
                worker = PodWorker(self.ctx, pod)
                self.workers[uid] = worker
                worker.start()
            else:
                worker.update(pod)
        for uid, worker in list(self.workers.items()):
            if uid not in seen:
                worker.removed()
            if worker.done.is_set() and uid not in seen:
                del self.workers[uid]

    def run(self) -> None:
        leftovers = procs.sweep(self.home.root, grace=2.0, key=procs.POD_ENV)
        if leftovers:
            log.info("killed %d pod process(es) left by a previous agent", len(leftovers))
        self.net.setup_node()
        self.register()
        self.renew_lease()
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
        threading.Thread(target=self.provisioner.run, args=(self.stop,), name="provisioner", daemon=True).start()
        self.logs.start()
        log.info("node %s registered; pods get %s", LOCAL_NODE, self.cfg.pod_subnet)
        while not self.stop.is_set():
            try:
                self.sync_once()
            except (ApiError, OSError) as exc:
                log.warning("pod sync failed: %s", exc)
            self.stop.wait(SYNC_PERIOD)
        self.shutdown()

    def shutdown(self) -> None:
        log.info("stopping: killing %d pod(s)", len(self.workers))
        for worker in self.workers.values():
            worker.shutdown()
        for worker in self.workers.values():
            worker.done.wait(timeout=15)
        self.logs.stop()
        self.net.teardown_node()


def main(home: DevHome) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    cfg = ClusterConfig.from_json(home.config_file.read_text())
    agent = Agent(home, cfg)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d", signum)
        agent.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.run()

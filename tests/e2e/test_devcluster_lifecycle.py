"""`fulcrum dev up | status | down` as a user runs them: idempotent up, nothing left after down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fulcrum.dev import cluster as dev_cluster
from fulcrum.dev import network, procs
from fulcrum.dev.config import ClusterConfig
from fulcrum.dev.paths import DevHome
from fulcrum.dev.rest import Rest
from tests.e2e.conftest import free_port_base

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def fulcrum_dev(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FULCRUM_DEV_HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "operator"), str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "fulcrum", "dev", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=600,
    )


def _wait(what: str, probe: Any, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_up_is_idempotent_and_down_leaves_no_process(tmp_path: Path) -> None:
    home = tmp_path / "dev"
    base = str(free_port_base())
    up = fulcrum_dev("up", "--pool", "cpu=1", "--port-base", base, home=home, check=False)
    try:
        assert up.returncode == 0, up.stderr
        again = fulcrum_dev("up", "--pool", "cpu=1", "--port-base", base, home=home)
        assert "already running" in again.stderr
        status = json.loads(fulcrum_dev("status", "--json", home=home).stdout)
        assert {c["name"]: c["state"] for c in status["components"]} == {
            "etcd": "running",
            "kube-apiserver": "running",
            "kube-controller-manager": "running",
            "kube-scheduler": "running",
            "kwok": "running",
            "node-agent": "running",
            "prometheus": "running",
            "objectstore": "running",
        }
        assert status["apiserverReady"] is True
        with urllib.request.urlopen(f"{status['prometheus']}/-/ready", timeout=10) as ready:
            assert ready.status == 200

        # a long-running pod on local-0: down must stop it too
        cfg = ClusterConfig.from_json((home / "cluster.json").read_text())
        rest = Rest(cfg.ports.apiserver, home / "pki", "admin")
        rest.create(
            "/api/v1/namespaces/default/pods",
            {
                "metadata": {"name": "sleeper"},
                "spec": {
                    "nodeSelector": {"fulcrum.dev/pool": "local"},
                    "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "100000"]}],
                },
            },
        )

        def sleeping() -> bool:
            pod = rest.get("/api/v1/namespaces/default/pods/sleeper")
            statuses = pod.get("status", {}).get("containerStatuses") or []
            return bool(statuses and "running" in statuses[0]["state"])

        _wait("the sleeper to run", sleeping)
        pids = procs.tagged_pids(home)
        assert len(pids) >= 8  # seven components (the object store too) and the pod's process
    finally:
        down = fulcrum_dev("down", home=home, check=False)
    assert down.returncode == 0, down.stderr
    assert procs.tagged_pids(home) == []
    for pid in pids:
        assert not procs.is_alive(pid), f"process {pid} survived `fulcrum dev down`"
    if cfg.netns:
        assert not Path(f"/sys/class/net/{cfg.bridge}").exists()
        assert not [p for p in Path("/run/netns").glob(f"{cfg.bridge}-*")]
    crashed = fulcrum_dev("status", "--json", home=home)
    assert {c["state"] for c in json.loads(crashed.stdout)["components"]} == {"stopped"}


def test_cluster_goes_down_when_its_owner_dies(tmp_path: Path) -> None:
    home = DevHome(tmp_path / "owned")
    owner = subprocess.Popen(["sleep", "1000"])
    try:
        cfg = ClusterConfig(
            port_base=free_port_base(),
            pools=(),
            netns=network.netns_supported(),
            subnet_index=dev_cluster.choose_subnet_index(home, first=200),
        )
        dev_cluster.up(home, cfg, say=lambda _m: None, owner_pid=owner.pid)
        assert len(procs.tagged_pids(home.root)) == 9  # eight components (Prometheus, object store) and the watchdog
    finally:
        owner.kill()
        owner.wait()
    try:
        _wait("the watchdog to take the cluster down", lambda: not procs.tagged_pids(home.root), timeout=120)
    finally:
        dev_cluster.down(home, say=lambda _m: None)

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
from fulcrum.dev import network, node, nodehost, procs
from fulcrum.dev.config import ClusterConfig
from fulcrum.dev.paths import DevHome
from tests.e2e.conftest import admin_rest, built_images, free_port_base

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


def boot_ticks() -> float:
    """Now, in the clock ticks since boot that ``/proc/<pid>/stat`` gives a process's start in."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")


def started_before(pid: int, ticks: float) -> bool:
    """Whether ``pid`` started before ``ticks`` (False when it is gone).

    A namespace's identity is its nsfs inode number, and the kernel hands a freed number to the next namespace
    made: once `down` has destroyed the node's namespaces, a pod sandbox of another cluster on this machine (the
    suite runs two) may get the same numbers. Its processes start after `down` began; a leftover of this
    node's started before."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[19]) < ticks  # field 22, starttime


def _wait(what: str, probe: Any, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _host_iptables() -> str:
    """The host's rules and chains (filter and nat tables, no counters or timestamps)."""
    return "".join(
        subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False).stdout
        for table in ("filter", "nat")
    )


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    """After `down`: no process, no mount, no interface, no network namespace, no cgroup and no iptables rule of
    the cluster is left, although a pod was running on its node."""
    home = tmp_path / "dev"
    base = str(free_port_base())
    iptables_before = _host_iptables()
    fulcrum_image = built_images()["fulcrum"].ref
    up = fulcrum_dev("up", "--pool", "cpu=1", "--port-base", base, home=home, check=False)
    cfg = None
    try:
        assert up.returncode == 0, up.stderr
        again = fulcrum_dev("up", "--pool", "cpu=1", "--port-base", base, home=home)
        assert "already running" in again.stderr
        status = json.loads(fulcrum_dev("status", "--json", home=home).stdout)
        assert {c["name"]: c["state"] for c in status["components"]} == dict.fromkeys(dev_cluster.COMPONENTS, "running")
        assert status["apiserverReady"] is True
        with urllib.request.urlopen(f"{status['prometheus']}/-/ready", timeout=10) as ready:
            assert ready.status == 200

        # a long-running pod on local-0: down must stop it too
        cfg = ClusterConfig.from_json((home / "cluster.json").read_text())
        rest = admin_rest(cfg, DevHome(home))
        rest.create(
            "/api/v1/namespaces/default/pods",
            {
                "metadata": {"name": "sleeper"},
                "spec": {
                    "nodeSelector": {"fulcrum.dev/pool": "local"},
                    "containers": [{"name": "c", "image": fulcrum_image, "command": ["sleep", "100000"]}],
                },
            },
        )

        def sleeping() -> bool:
            pod = rest.get("/api/v1/namespaces/default/pods/sleeper")
            statuses = pod.get("status", {}).get("containerStatuses") or []
            return bool(statuses and "running" in statuses[0]["state"])

        _wait("the sleeper to run", sleeping)
        namespaces = nodehost.load_namespaces(DevHome(home))
        assert namespaces is not None
        pids = procs.tagged_pids(home) + nodehost.processes_in(namespaces)
        assert len(pids) >= 13  # twelve components (the object store too), shims and the pod's processes
        assert network.netns_exists(node.netns_name(cfg))
    finally:
        down_began = boot_ticks()
        down = fulcrum_dev("down", home=home, check=False)
    assert down.returncode == 0, down.stderr
    assert procs.tagged_pids(home) == []
    assert [pid for pid in nodehost.processes_in(namespaces) if started_before(pid, down_began)] == []
    for pid in pids:
        assert not procs.is_alive(pid), f"process {pid} survived `fulcrum dev down`"
    assert not network.link_exists(cfg.link)
    assert not network.netns_exists(node.netns_name(cfg))
    assert nodehost.mounts_under(home) == []
    assert not [h for h in nodehost.cgroup_hierarchies() if (h / node.cgroup_root(cfg).lstrip("/")).exists()]
    # kube-proxy's and the kubelet's chains lived in the node's namespace: no rule of this cluster is on the host
    # (only rules added since the start count: other sessions on this machine add and remove their own meanwhile)
    added = set(_host_iptables().splitlines()) - set(iptables_before.splitlines())
    ours = (cfg.link, f"{cfg.pod_subnet.network_address}".rsplit(".", 1)[0] + ".", "KUBE-", "CNI-")
    assert not [rule for rule in added if any(mark in rule for mark in ours)], added
    crashed = fulcrum_dev("status", "--json", home=home)
    assert {c["state"] for c in json.loads(crashed.stdout)["components"]} == {"stopped"}


def test_cluster_goes_down_when_its_owner_dies(tmp_path: Path) -> None:
    home = DevHome(tmp_path / "owned")
    owner = subprocess.Popen(["sleep", "1000"])
    try:
        cfg = ClusterConfig(
            port_base=free_port_base(), pools=(), subnet_index=dev_cluster.choose_subnet_index(home, first=200)
        )
        dev_cluster.up(home, cfg, say=lambda _m: None, owner_pid=owner.pid)
        running = {r.name for r in procs.records(home.run) if procs.running(r)}
        assert running == {*dev_cluster.COMPONENTS, dev_cluster.WATCHDOG}
    finally:
        owner.kill()
        owner.wait()
    try:
        _wait("the watchdog to take the cluster down", lambda: not procs.tagged_pids(home.root), timeout=120)
        assert not network.link_exists(cfg.link)
    finally:
        dev_cluster.down(home, say=lambda _m: None)

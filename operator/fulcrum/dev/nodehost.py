"""Bringing the node ``local-0`` up on this machine and taking it down without a trace (the I/O of
:mod:`fulcrum.dev.node`).

The node's processes (a registry, containerd, the kubelet, kube-proxy) run in its network namespace and in a
mount namespace of their own, held by a small process (the pinned ``pause``) started by ``unshare``. Each one
is entered with ``nsenter --target <holder> --mount --net``. Teardown does not rely on anything exiting
cleanly: it kills every process in the node's cgroup subtree (the pods) and every process in its namespaces
(shims), removes the cgroups, then deletes the network namespace; the mount namespace, and with it every mount
the node made, ends with its last process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fulcrum.dev import images, node
from fulcrum.dev.config import ClusterConfig
from fulcrum.dev.kubeconfig import render_from_pki
from fulcrum.dev.node import NodePaths
from fulcrum.dev.paths import DevHome

CGROUP_MOUNT = Path("/sys/fs/cgroup")
HOLDER = "node"  # the component name of the namespace holder


@dataclass(frozen=True)
class Namespaces:
    """The inode numbers of the node's namespaces: what tells the node's processes from everyone else's."""

    mnt: int
    net: int

    @classmethod
    def of(cls, pid: int) -> Namespaces:
        return cls(os.stat(f"/proc/{pid}/ns/mnt").st_ino, os.stat(f"/proc/{pid}/ns/net").st_ino)


def write_files(cfg: ClusterConfig, home: DevHome, server: str, sandbox_image: str) -> NodePaths:
    """Every configuration file of the node (rewritten at each ``up``: they follow the cluster's config)."""
    paths = NodePaths.of(home)
    for directory in paths.directories():
        directory.mkdir(parents=True, exist_ok=True)
    proxy_kubeconfig = home.component_config / "kube-proxy.kubeconfig"
    _write_if_changed(proxy_kubeconfig, render_from_pki(server, home.pki, "kube-proxy"))
    proxy_kubeconfig.chmod(0o600)
    files = {
        paths.containerd_config: node.containerd_toml(paths, sandbox_image),
        paths.registry_hosts / images.REGISTRY_HOST / "hosts.toml": node.registry_hosts_toml(),
        paths.cni_config / "10-fulcrum.conflist": node.cni_conflist(cfg, paths),
        paths.kubelet_config: node.kubelet_config(cfg, home, paths),
        paths.proxy_config: node.kube_proxy_config(cfg, proxy_kubeconfig),
        paths.resolv_conf: node.resolv_conf(),
        paths.registry_config: node.registry_config(),
    }
    for path, text in files.items():
        _write_if_changed(path, text)
    return paths


def _write_if_changed(path: Path, text: str) -> None:
    """kube-proxy exits when its configuration file is written, even with the same content: write only changes."""
    try:
        if path.read_text() == text:
            return
    except FileNotFoundError:
        pass
    path.write_text(text)


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies (v1 controllers, the named systemd one, the unified one)."""
    try:
        return sorted(p for p in CGROUP_MOUNT.iterdir() if p.is_dir() and (p / "cgroup.procs").exists())
    except FileNotFoundError:
        return []


def create_cgroups(cfg: ClusterConfig) -> None:
    """The kubelet's cgroup root in every hierarchy (the kubelet refuses a root that does not exist)."""
    name = node.cgroup_root(cfg).lstrip("/")
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        if (hierarchy / "cpuset.cpus").exists():  # a new cpuset has no CPUs until given its parent's
            for key in ("cpuset.cpus", "cpuset.mems"):
                if not (path / key).read_text().strip():
                    (path / key).write_text((hierarchy / key).read_text())


def _cgroup_dirs(cfg: ClusterConfig) -> list[Path]:
    name = node.cgroup_root(cfg).lstrip("/")
    found: list[Path] = []
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / name
        if root.is_dir():
            found += [root, *(p for p in root.rglob("*") if p.is_dir())]
    return found


def _pids_in(directory: Path) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    return []


def holder_argv(cfg: ClusterConfig, bin_dir: Path, paths: NodePaths) -> list[str]:
    """The process that holds the node's mount namespace (inside its network namespace): it bind-mounts the
    node's private directories over the fixed paths its components use, then becomes ``pause``."""
    mounts = " && ".join(
        f"mkdir -p {target} && mount --bind {paths.private(target)} {target}" for target in node.PRIVATE_DIRS
    )
    return [
        "nsenter",
        f"--net=/run/netns/{node.netns_name(cfg)}",
        "--",
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        f"{mounts} && exec {bin_dir / 'pause'}",
    ]


def enter(holder_pid: int, argv: list[str]) -> list[str]:
    """``argv`` run in the node's namespaces."""
    return ["nsenter", f"--target={holder_pid}", "--mount", "--net", "--", *argv]


def save_namespaces(home: DevHome, holder_pid: int) -> Namespaces:
    namespaces = Namespaces.of(holder_pid)
    (home.run / "node-namespaces.json").write_text(json.dumps({"mnt": namespaces.mnt, "net": namespaces.net}))
    return namespaces


def load_namespaces(home: DevHome) -> Namespaces | None:
    try:
        data = json.loads((home.run / "node-namespaces.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return Namespaces(int(data["mnt"]), int(data["net"]))


def processes_in(namespaces: Namespaces) -> list[int]:
    """Every process in the node's mount or network namespace (containerd's shims included)."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            mnt = os.stat(entry / "ns" / "mnt").st_ino
            net = os.stat(entry / "ns" / "net").st_ino
        except OSError:
            continue
        if mnt == namespaces.mnt or net == namespaces.net:
            found.append(int(entry.name))
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def sweep(cfg: ClusterConfig, home: DevHome, timeout: float = 20.0) -> list[int]:
    """Kill what is left of the node: its pods (cgroups) and whatever runs in its namespaces; remove the
    cgroups. Returns the pids it found."""
    namespaces = load_namespaces(home)
    netns = Path(f"/run/netns/{node.netns_name(cfg)}")
    if namespaces is None and netns.exists():  # the home's record is gone: the network namespace still tells
        namespaces = Namespaces(mnt=-1, net=netns.stat().st_ino)
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for d in _cgroup_dirs(cfg) for p in _pids_in(d)]
        if namespaces is not None:
            pids += processes_in(namespaces)
        pids = [p for p in pids if p != os.getpid()]
        if not pids:
            break
        killed.update(pids)
        _kill_all(pids)
        for pid in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    for directory in sorted(_cgroup_dirs(cfg), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
    return sorted(killed)


def mounts_under(root: Path) -> list[str]:
    """Mount points of this (the host's) mount namespace at or under ``root``."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(root) or point.startswith(f"{root}/"):
                found.append(point)
    return found


def unmount_under(root: Path) -> list[str]:
    """Lazily unmount whatever is still mounted under ``root`` (deepest first); returns what was mounted."""
    points = sorted(mounts_under(root), key=len, reverse=True)
    for point in points:
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return points

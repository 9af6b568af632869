"""The link between the host and a cluster's node: a veth pair and the node's network namespace.

For cluster index N the host end ``fdev<N>`` holds ``10.243.<N>.1/30`` (the cluster's host address) and routes
the pods' ``10.244.<N>.0/24`` to the node end, ``eth0`` = ``10.243.<N>.2/30`` in the network namespace
``fdev<N>``. Creating the veth pair is atomic, so it also reserves N on the machine: two clusters never get the
same index. The link's alias names the home of the cluster that owns it. The namespace has no default route and
the host does not forward, so pods reach only their node, the host's addresses and one another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fulcrum.dev.config import ClusterConfig
from fulcrum.dev.node import NODE_INTERFACE, netns_name


class NetworkError(RuntimeError):
    pass


REQUIRED_COMMANDS = ("ip", "nsenter", "unshare")


def supported() -> str | None:
    """None when this machine can run a node; otherwise what is missing, in words."""
    if os.geteuid() != 0:
        return "the dev cluster's node (network namespaces, containerd, the kubelet) needs root"
    missing = [c for c in REQUIRED_COMMANDS if shutil.which(c) is None]
    if missing:
        return f"{', '.join(missing)} not found (iproute2, util-linux)"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetworkError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def link_owner(link: str) -> str | None:
    """The home that reserved ``link`` (kept in the link's alias), "" if unknown, None if no such link."""
    try:
        return Path(f"/sys/class/net/{link}/ifalias").read_text().strip()
    except FileNotFoundError:
        return None


def links_of(owner: str) -> list[str]:
    """The node links this owner (a cluster's home) reserved, found by their alias."""
    found = []
    for path in sorted(Path("/sys/class/net").glob("fdev*")):
        try:
            if (path / "ifalias").read_text().strip() == owner:
                found.append(path.name)
        except OSError:
            continue
    return found


def peer_name(link: str) -> str:
    return f"{link}n"[:15]


def reserve_link(link: str, owner: str) -> bool:
    """Create the veth pair ``link`` marked as ``owner``'s; False if it exists (another cluster's, or a race)."""
    if _ip("link", "add", link, "type", "veth", "peer", "name", peer_name(link), check=False).returncode != 0:
        return False
    _ip("link", "set", "dev", link, "alias", owner)
    return True


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def in_netns(netns: str, *argv: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


def _write_sysctl(netns: str, key: str, value: str) -> None:
    """A per-namespace sysctl, written from inside the namespace (/proc/sys/net is the reader's namespace's)."""
    path = f"/proc/sys/{key.replace('.', '/')}"
    result = subprocess.run(
        in_netns(netns, "sh", "-c", f"[ ! -e {path} ] || echo {value} > {path}"),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise NetworkError(f"setting {key}={value} in {netns} failed: {result.stderr.strip()}")


def setup(cfg: ClusterConfig, owner: str) -> None:
    """Create (or complete) the link and the node's namespace; idempotent."""
    link, ns, peer = cfg.link, netns_name(cfg), peer_name(cfg.link)
    if not link_exists(link) and not reserve_link(link, owner):
        raise NetworkError(f"link {link} exists and belongs to {link_owner(link)!r}, not {owner}")
    if not netns_exists(ns):
        _ip("netns", "add", ns)
    if link_exists(peer):  # still on the host: move it into the node and name it as nodes name it
        _ip("link", "set", peer, "netns", ns)
        _ip("-n", ns, "link", "set", peer, "name", NODE_INTERFACE)
    prefix = cfg.link_network.prefixlen
    if f" {cfg.host_address}/" not in _ip("-o", "addr", "show", "dev", link).stdout:
        _ip("addr", "add", f"{cfg.host_address}/{prefix}", "dev", link)
    _ip("link", "set", link, "up")
    _ip("-n", ns, "link", "set", "lo", "up")
    if f" {cfg.node_address}/" not in _ip("-n", ns, "-o", "addr", "show", "dev", NODE_INTERFACE).stdout:
        _ip("-n", ns, "addr", "add", f"{cfg.node_address}/{prefix}", "dev", NODE_INTERFACE)
    _ip("-n", ns, "link", "set", NODE_INTERFACE, "up")
    _ip("route", "replace", str(cfg.pod_subnet), "via", cfg.node_address, "dev", link)
    _write_sysctl(ns, "net.ipv4.ip_forward", "1")  # the node routes between its pods' bridge and the host
    # bridged pod-to-pod packets pass kube-proxy's rules (a Service's reply from a pod on the same bridge)
    _write_sysctl(ns, "net.bridge.bridge-nf-call-iptables", "1")


def teardown(cfg: ClusterConfig) -> None:
    """Delete the node's namespace (its interfaces, bridge, routes and iptables rules go with it) and the link."""
    ns = netns_name(cfg)
    if netns_exists(ns):
        _ip("netns", "del", ns, check=False)
    for name in (cfg.link, peer_name(cfg.link)):
        if link_exists(name):
            _ip("link", "del", name, check=False)

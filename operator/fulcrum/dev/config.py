"""The configuration of one dev cluster: ports, node pools, the local node. Pure data, no I/O."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DEFAULT_PORT_BASE = 25600
POOL_LABEL = "fulcrum.dev/pool"
GPU_RESOURCE = "nvidia.com/gpu"
LOCAL_NODE = "local-0"
LOCAL_POOL = "local"
SERVICE_CIDR = "10.96.0.0/16"  # routed only inside each node's own network namespace (kube-proxy)
LINK_NETWORK_PREFIX = "10.243"  # host <-> node links: 10.243.<index>.0/30
POD_NETWORK_PREFIX = "10.244"  # pods of a cluster: 10.244.<index>.0/24, inside its node's namespace

_POOL_RE = re.compile(r"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)=(?P<nodes>\d+)(x(?P<gpus>\d+))?$")


@dataclass(frozen=True)
class Pool:
    """A pool of kwok nodes: ``count`` nodes with ``gpus`` GPUs each (0: a CPU pool)."""

    name: str
    count: int
    gpus: int = 0
    cpu: str = "32"
    memory: str = "128Gi"

    def node_names(self) -> list[str]:
        return [f"kwok-{self.name}-{i}" for i in range(self.count)]


DEFAULT_POOLS: tuple[Pool, ...] = (Pool("l4", 4, 4), Pool("a100", 2, 8), Pool("cpu", 2, 0))


def parse_pool(text: str) -> Pool:
    """``l4=4x4`` is 4 nodes of 4 GPUs, ``cpu=2`` is 2 nodes without GPUs."""
    match = _POOL_RE.match(text.strip())
    if match is None:
        raise ValueError(
            f"bad pool {text!r}: expected NAME=NODES or NAME=NODESxGPUS, e.g. l4=4x4 or cpu=2 (NAME a DNS label)"
        )
    if match["name"] == LOCAL_POOL:
        raise ValueError(f"pool name {LOCAL_POOL!r} is reserved for the local node {LOCAL_NODE}")
    return Pool(match["name"], int(match["nodes"]), int(match["gpus"] or 0))


def parse_pools(texts: list[str] | tuple[str, ...]) -> tuple[Pool, ...]:
    pools = tuple(parse_pool(t) for t in texts)
    names = [p.name for p in pools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"pool names must be unique, repeated: {', '.join(duplicates)}")
    return pools


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    kubelet: int
    prometheus: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        if not 1024 <= base <= 65535 - 10:
            raise ValueError(f"port base {base} out of range 1024..65525")
        return cls(base, base + 1, base + 2, base + 3, base + 4, base + 5, base + 6, base + 7)

    def all(self) -> list[int]:
        return list(asdict(self).values())


@dataclass(frozen=True)
class ClusterConfig:
    """Everything ``up`` needs; saved as ``cluster.json`` so later commands see the same cluster.

    ``subnet_index`` N (1..254, reserved on the machine by creating the host link ``fdev<N>``) gives the cluster
    its addresses: the host end of the node's link ``10.243.<N>.1`` (the host address), the node
    ``10.243.<N>.2`` and the pods ``10.244.<N>.0/24``.
    """

    port_base: int = DEFAULT_PORT_BASE
    pools: tuple[Pool, ...] = DEFAULT_POOLS
    subnet_index: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.subnet_index <= 254:
            raise ValueError(f"subnet index {self.subnet_index} out of range 1..254")

    @property
    def ports(self) -> Ports:
        return Ports.from_base(self.port_base)

    @property
    def link(self) -> str:
        """The host's end of the node's link (a veth); also the name of the node's network namespace."""
        return f"fdev{self.subnet_index}"

    @property
    def link_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{LINK_NETWORK_PREFIX}.{self.subnet_index}.0/30")

    @property
    def host_address(self) -> str:
        """Where this cluster's host-side services listen: the API server, an object store, Prometheus, ...

        The host's end of the link to ``local-0``: an address this cluster created, which pods on ``local-0`` (routed
        by the node) and host processes (a local address) both reach. Never a shared or an external address.
        """
        return str(self.link_network.network_address + 1)

    @property
    def node_address(self) -> str:
        """``local-0``'s InternalIP: the node's end of the link, inside its network namespace."""
        return str(self.link_network.network_address + 2)

    @property
    def pod_subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{POD_NETWORK_PREFIX}.{self.subnet_index}.0/24")

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The pods' bridge on the node: their default route."""
        return self.pod_subnet.network_address + 1

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClusterConfig:
        data = json.loads(text)
        data["pools"] = tuple(Pool(**p) for p in data.get("pools", []))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

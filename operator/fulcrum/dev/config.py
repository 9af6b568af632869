"""The configuration of one dev cluster: ports, node pools, the local node. Pure data, no I/O."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_PORT_BASE = 25600
POOL_LABEL = "fulcrum.dev/pool"
GPU_RESOURCE = "nvidia.com/gpu"
LOCAL_NODE = "local-0"
LOCAL_POOL = "local"
SERVICE_CIDR = "10.96.0.0/16"
POD_NETWORK = "10.244.0.0/16"  # only inside network namespaces this tool creates

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
    """Everything ``up`` needs; saved as ``cluster.json`` so later commands see the same cluster."""

    port_base: int = DEFAULT_PORT_BASE
    pools: tuple[Pool, ...] = DEFAULT_POOLS
    local_gpus: int = 0
    local_cpu: str = "8"
    local_memory: str = "16Gi"
    subnet_index: int = 1  # pods of local-0 get 10.244.<index>.0/24
    netns: bool = True  # one network namespace per pod; False: unique loopback IPs 127.<index>.x.y
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ports(self) -> Ports:
        return Ports.from_base(self.port_base)

    @property
    def pod_subnet(self) -> ipaddress.IPv4Network:
        if not 1 <= self.subnet_index <= 254:
            raise ValueError(f"subnet index {self.subnet_index} out of range 1..254")
        if self.netns:
            return ipaddress.IPv4Network(f"10.244.{self.subnet_index}.0/24")
        return ipaddress.IPv4Network(f"127.{self.subnet_index}.0.0/16")

    @property
    def bridge(self) -> str:
        return f"fdev{self.subnet_index}"

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The bridge's address on the host: pods' default route."""
        return self.pod_subnet.network_address + 1

    @property
    def host_address(self) -> str:
        """Where host-side services of this cluster listen (object store, Prometheus, ...).

        An address on an interface this cluster created, reachable from the pods of ``local-0`` and from host
        processes alike; never a shared or external address. Loopback only when pods share the host network.
        """
        return str(self.gateway) if self.netns else "127.0.0.1"

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClusterConfig:
        data = json.loads(text)
        data["pools"] = tuple(Pool(**p) for p in data.get("pools", []))
        return cls(**data)

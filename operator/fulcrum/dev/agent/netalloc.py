"""Pod IPs and network namespaces of local-0, shared by the pod workers."""

from __future__ import annotations

import threading
from typing import Any

from fulcrum.dev import network
from fulcrum.dev.config import ClusterConfig
from fulcrum.dev.network import PodNet

HOST_IP = "127.0.0.1"


class NetAllocator:
    def __init__(self, cfg: ClusterConfig, owner: str) -> None:
        self.cfg = cfg
        self.owner = owner
        self._lock = threading.Lock()
        self._by_uid: dict[str, PodNet] = {}

    def setup_node(self) -> None:
        if self.cfg.netns:
            network.teardown_pods(self.cfg.bridge)
            network.ensure_bridge(self.cfg.bridge, str(self.cfg.gateway), self.cfg.pod_subnet.prefixlen, self.owner)

    def teardown_node(self) -> None:
        if self.cfg.netns:
            network.teardown_all(self.cfg.bridge)

    def acquire(self, pod: dict[str, Any]) -> PodNet:
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid in self._by_uid:
                return self._by_uid[uid]
            if pod["spec"].get("hostNetwork"):
                net = PodNet(HOST_IP, None)
            else:
                used = {n.ip for n in self._by_uid.values()}
                ip = network.allocate_ip(self.cfg.pod_subnet, used)
                if self.cfg.netns:
                    net = network.setup_pod(
                        self.cfg.bridge, uid, ip, str(self.cfg.gateway), self.cfg.pod_subnet.prefixlen
                    )
                else:
                    net = PodNet(ip, None)
            self._by_uid[uid] = net
            return net

    def release(self, uid: str) -> None:
        with self._lock:
            net = self._by_uid.pop(uid, None)
            if net is not None and net.netns is not None:
                network.teardown_pod(self.cfg.bridge, uid)

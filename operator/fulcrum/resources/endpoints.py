"""Ready endpoints of a Service, read from its EndpointSlices (what kube-proxy would balance over). Pure.

Both the operator (which pods to scrape) and ``fulcrum load`` (where to send requests) read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Endpoint:
    """One ready address of a Service for a named port, and the pod behind it (when the slice names one)."""

    address: str
    port: int
    pod: str = ""
    pod_uid: str = ""

    @property
    def host_port(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


def ready_endpoints(slices: Iterable[Mapping[str, Any]], port_name: str) -> list[Endpoint]:
    """Every ready endpoint for the named port; an endpoint whose ``ready`` is unknown counts as ready."""
    out: set[Endpoint] = set()
    for endpoint_slice in slices:
        ports = [p["port"] for p in endpoint_slice.get("ports") or [] if p.get("name") == port_name]
        if not ports:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            ref = endpoint.get("targetRef") or {}
            pod = str(ref.get("name", "")) if ref.get("kind") == "Pod" else ""
            uid = str(ref.get("uid", "")) if pod else ""
            out.update(Endpoint(str(address), int(ports[0]), pod, uid) for address in endpoint.get("addresses", []))
    return sorted(out)


def ready_addresses(slices: Iterable[Mapping[str, Any]], port_name: str) -> list[str]:
    """``ip:port`` of every ready endpoint for the named port."""
    return sorted({e.host_port for e in ready_endpoints(slices, port_name)})

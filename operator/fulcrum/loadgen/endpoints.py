"""Ready endpoints of a Service, from its EndpointSlices (what kube-proxy would balance over)."""

from __future__ import annotations

from typing import Any

from fulcrum.controller.kube import KubeClient


def ready_addresses(slices: list[dict[str, Any]], port_name: str) -> list[str]:
    """``ip:port`` of every ready endpoint for the named port (pure)."""
    out = []
    for endpoint_slice in slices:
        ports = [p["port"] for p in endpoint_slice.get("ports") or [] if p.get("name") == port_name]
        if not ports:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            out += [f"{address}:{ports[0]}" for address in endpoint.get("addresses", [])]
    return sorted(set(out))


async def service_endpoints(kube: KubeClient, namespace: str, service: str, port_name: str = "http") -> list[str]:
    slices = await kube.list("EndpointSlice", namespace, f"kubernetes.io/service-name={service}")
    return [f"http://{address}" for address in ready_addresses(slices, port_name)]

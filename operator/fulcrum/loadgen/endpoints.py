"""Ready endpoints of a Service, asked of the API server (``fulcrum load``)."""

from __future__ import annotations

from fulcrum.controller.kube import KubeClient
from fulcrum.resources.endpoints import ready_addresses


async def service_endpoints(kube: KubeClient, namespace: str, service: str, port_name: str = "http") -> list[str]:
    slices = await kube.list("EndpointSlice", namespace, f"kubernetes.io/service-name={service}")
    return [f"http://{address}" for address in ready_addresses(slices, port_name)]

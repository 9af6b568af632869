"""A small async Kubernetes REST client (aiohttp) for exactly what the operator sends.

Credentials come from the kubeconfig or the in-cluster service account, loaded with the official client's
config loader. Writes are server-side apply with field manager ``fulcrum``; status goes through the status
subresource as a merge patch. Every request is counted by verb, for the benchmarks and ``/metrics``.
"""

from __future__ import annotations

import json
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from fulcrum.controller import telemetry

FIELD_MANAGER = "fulcrum"

# kind -> (api prefix, plural, namespaced)
RESOURCES: dict[str, tuple[str, str]] = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "Job": ("/apis/batch/v1", "jobs"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Pod": ("/api/v1", "pods"),
    "Event": ("/api/v1", "events"),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices"),
    "ModelDeployment": ("/apis/fulcrum.dev/v1alpha1", "modeldeployments"),
}


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def object_path(kind: str, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
    prefix, plural = RESOURCES[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


@dataclass
class KubeClient:
    host: str
    ssl_context: ssl.SSLContext | bool
    headers: dict[str, str]
    requests: Counter[str] = field(default_factory=Counter)
    _session: aiohttp.ClientSession | None = None

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None) -> KubeClient:
        configuration = k8s_client.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        context: ssl.SSLContext | bool = False
        if configuration.verify_ssl:
            context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file and isinstance(context, ssl.SSLContext):
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        headers = {"Accept": "application/json", "User-Agent": "fulcrum-operator"}
        token = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
        if token:
            headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
        return cls(host=configuration.host.rstrip("/"), ssl_context=context, headers=headers)

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=32),
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        self.requests[method] += 1
        telemetry.API_REQUESTS.labels(method).inc()
        session = await self._http()
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with session.request(method, self.host + path, data=data, params=params, headers=headers) as response:
            payload = await response.text()
            if response.status >= 400:
                try:
                    status = json.loads(payload)
                    raise KubeError(response.status, status.get("reason", ""), status.get("message", payload))
                except json.JSONDecodeError:
                    raise KubeError(response.status, "", payload[:500]) from None
            return json.loads(payload) if payload else {}

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: create or update the fields Fulcrum owns."""
        meta = manifest["metadata"]
        path = object_path(manifest["kind"], meta["namespace"], meta["name"])
        return await self.request(
            "PATCH",
            path,
            body=manifest,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; ``None`` when it already exists (creation is idempotent by name)."""
        meta = manifest["metadata"]
        try:
            return await self.request("POST", object_path(manifest["kind"], meta["namespace"]), body=manifest)
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise

    async def list(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        result = await self.request("GET", object_path(kind, namespace), params={"labelSelector": label_selector})
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            await self.request("DELETE", object_path(kind, namespace, name), body={"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        """Set spec.replicas only (a merge patch: the other fields keep their owners)."""
        try:
            await self.request(
                "PATCH",
                object_path(kind, namespace, name),
                body={"spec": {"replicas": replicas}},
                content_type="application/merge-patch+json",
            )
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def annotate(self, kind: str, namespace: str, name: str, annotations: dict[str, str | None]) -> None:
        """Set (or, with None, remove) annotations by merge patch; a missing object is not an error."""
        try:
            await self.request(
                "PATCH",
                object_path(kind, namespace, name),
                body={"metadata": {"annotations": annotations}},
                content_type="application/merge-patch+json",
            )
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.request(
            "PATCH",
            object_path("ModelDeployment", namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    async def ensure_namespace(self, name: str) -> None:
        try:
            await self.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
        except KubeError as exc:
            if exc.status not in (409, 403):
                raise

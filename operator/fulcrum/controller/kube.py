"""A small async Kubernetes REST client (aiohttp) for exactly what the operator sends.

Credentials come from the kubeconfig (the official client's loader) or the in-cluster service account. A
service-account token is a *bound* token that the kubelet rotates (about hourly): like client-go, the client
re-reads the token file at most a minute after it last did, and once more at once when the API server answers
401. Writes are server-side apply with field manager ``fulcrum``; status goes through the status subresource as
a merge patch carrying the object's ``resourceVersion``, so a write based on a stale read fails with 409 instead
of overwriting what another writer wrote. Every request is counted by verb, for the benchmarks and ``/metrics``.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from fulcrum.controller import telemetry

FIELD_MANAGER = "fulcrum"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0  # client-go's cachingTokenSource re-reads a token file after a minute
LIST_PAGE_SIZE = 500

# kind -> (api prefix, plural)
RESOURCES: dict[str, tuple[str, str]] = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "Job": ("/apis/batch/v1", "jobs"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Pod": ("/api/v1", "pods"),
    "Secret": ("/api/v1", "secrets"),  # created only: build Jobs' upload forms
    "Event": ("/api/v1", "events"),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices"),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
    "ModelDeployment": ("/apis/fulcrum.dev/v1alpha1", "modeldeployments"),
}


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def conflict(self) -> bool:
        """409: the object changed since it was read (or already exists, for a create)."""
        return self.status == 409

    @property
    def namespace_terminating(self) -> bool:
        """403 from the API server's NamespaceLifecycle admission: nothing new can be created in a namespace that
        is being deleted (its ModelDeployments go with it)."""
        return self.status == 403 and "because it is being terminated" in self.message


def object_path(kind: str, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
    """The REST path of a kind, in a namespace (None: across all namespaces), of one object and a subresource."""
    prefix, plural = RESOURCES[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


def bearer(token: str) -> str:
    """The Authorization header of a token as the kubernetes client's loaders give it: the in-cluster loader
    "bearer <token>" (lower case), a kubeconfig the bare token or "Bearer <token>"."""
    scheme, _, value = token.partition(" ")
    return f"Bearer {value if value and scheme.lower() == 'bearer' else token}"


@dataclass
class TokenFile:
    """A bearer token read from a file and re-read when it may have rotated."""

    path: Path
    period: float = TOKEN_REREAD_SECONDS
    clock: Callable[[], float] = time.monotonic
    _token: str = ""
    _read_at: float | None = None

    def token(self, *, fresh: bool = False) -> str:
        now = self.clock()
        if fresh or self._read_at is None or now - self._read_at >= self.period:
            text = self.path.read_text().strip()
            if text:  # a file caught mid-rotation (empty) keeps the token read before
                self._token = text
            self._read_at = now
        return self._token


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: dict[str, Any]


@dataclass
class KubeClient:
    host: str
    ssl_context: ssl.SSLContext | bool
    headers: dict[str, str]
    token_file: TokenFile | None = None
    requests: Counter[str] = field(default_factory=Counter)
    _session: aiohttp.ClientSession | None = None
    _watch_session: aiohttp.ClientSession | None = None

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None) -> KubeClient:
        """In a pod: the service account (token re-read as it rotates); elsewhere: the kubeconfig."""
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        token_path = SERVICE_ACCOUNT_DIR / "token"
        if host and port and token_path.exists() and not kubeconfig:
            ca = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
            server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
            return cls(server, ca, _base_headers(), TokenFile(token_path))
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        context: ssl.SSLContext | bool = False
        if configuration.verify_ssl:
            context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file and isinstance(context, ssl.SSLContext):
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        headers = _base_headers()
        token = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
        if token:
            headers["Authorization"] = bearer(token)
        return cls(host=configuration.host.rstrip("/"), ssl_context=context, headers=headers)

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=32),
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self._session

    async def _watch_http(self) -> aiohttp.ClientSession:
        """Watches hold their connection for minutes: a pool of their own, so they never starve requests."""
        if self._watch_session is None or self._watch_session.closed:
            self._watch_session = aiohttp.ClientSession(
                headers=self.headers, connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=0)
            )
        return self._watch_session

    async def close(self) -> None:
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()

    def _auth(self, *, fresh: bool = False) -> dict[str, str]:
        if self.token_file is None:
            return {}
        return {"Authorization": f"Bearer {self.token_file.token(fresh=fresh)}"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        session = await self._http()
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        for attempt in (1, 2):
            self.requests[method] += 1
            telemetry.API_REQUESTS.labels(method).inc()
            auth = self._auth(fresh=attempt == 2)
            async with session.request(
                method, self.host + path, data=data, params=params, headers={**headers, **auth}
            ) as response:
                payload = await response.text()
                if response.status == 401 and attempt == 1 and self.token_file is not None:
                    continue  # the token may have rotated since it was read: read it again and retry once
                if response.status >= 400:
                    raise _error(response.status, payload)
                return json.loads(payload) if payload else {}
        raise AssertionError("unreachable")

    # --- reads -------------------------------------------------------------------------------------------------

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", object_path(kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list_with_version(
        self, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object of ``kind`` (in ``namespace``, or all), page by page, and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": str(LIST_PAGE_SIZE)}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            page = await self.request("GET", object_path(kind, namespace), params=params)
            api_version, list_kind = page.get("apiVersion", ""), page.get("kind", "").removesuffix("List")
            for item in page.get("items") or []:
                item.setdefault("apiVersion", api_version)  # a list's items carry neither
                item.setdefault("kind", list_kind)
                items.append(item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion", ""))
            params["continue"] = meta["continue"]

    async def list(self, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        items, _ = await self.list_with_version(kind, namespace, label_selector)
        return items

    async def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        *,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """The watch stream from ``resource_version`` until the server ends it (after ``timeout_seconds``)."""
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        session = await self._watch_http()
        self.requests["WATCH"] += 1
        telemetry.API_REQUESTS.labels("WATCH").inc()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        for attempt in (1, 2):
            async with session.get(
                self.host + object_path(kind, namespace),
                params=params,
                headers=self._auth(fresh=attempt == 2),
                timeout=timeout,
            ) as response:
                if response.status == 401 and attempt == 1 and self.token_file is not None:
                    continue
                if response.status >= 400:
                    raise _error(response.status, await response.text())
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            event = json.loads(line)
                            yield WatchEvent(event.get("type", ""), event.get("object") or {})
                return

    # --- writes ------------------------------------------------------------------------------------------------

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

    async def update(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Replace an object (PUT); its ``metadata.resourceVersion`` makes it fail with 409 if it changed since."""
        meta = manifest["metadata"]
        return await self.request("PUT", object_path(manifest["kind"], meta["namespace"], meta["name"]), body=manifest)

    async def delete(self, kind: str, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete (its dependents in the background); gone already is fine. ``uid``: only that incarnation."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", object_path(kind, namespace, name), body=body)
        except KubeError as exc:
            if exc.status not in (404, 409):
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
        """Set (or, with None, remove) annotations with a merge patch; gone already is fine."""
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

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        """Merge-patch the status subresource, on condition that the object is still at ``resource_version``."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.request(
            "PATCH",
            object_path("ModelDeployment", namespace, name, "status"),
            body=body,
            content_type="application/merge-patch+json",
        )

    async def ensure_namespace(self, name: str) -> None:
        try:
            await self.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
        except KubeError as exc:
            if exc.status not in (409, 403):
                raise


def _base_headers() -> dict[str, str]:
    return {"Accept": "application/json", "User-Agent": "fulcrum-operator"}


def _error(status: int, payload: str) -> KubeError:
    try:
        parsed = json.loads(payload)
    except json.JSONDecodeError:
        return KubeError(status, "", payload[:500])
    if not isinstance(parsed, dict):
        return KubeError(status, "", payload[:500])
    return KubeError(status, str(parsed.get("reason", "")), str(parsed.get("message", payload)))

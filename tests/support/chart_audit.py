"""An audit of the API requests one process makes, and what RBAC each needs.

:class:`RecordingProxy` is a plain-HTTP front of the real API server on 127.0.0.1: the process under test gets a
kubeconfig pointing at it (with its own bearer token, which the proxy passes through untouched), and the proxy
records method, path, query and response status of every request, watches included (streamed). The API server
still authenticates and authorizes every request: the proxy changes nothing but the transport.

:func:`attributes` turns a recorded request into the RBAC attributes the API server checked for it, so a test
can ask the real authorizer (SubjectAccessReview) which of them a given set of rules allows.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "host",
    "accept-encoding",
    "upgrade",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    status: int


NAMED = {"leases"}
"""Kinds the chart's rules grant by resourceNames (the operator's own Lease): their requests keep the name."""


@dataclass(frozen=True, order=True)
class Attributes:
    """What RBAC checks for a resource request (subresource joined to the resource as ``pods/log``)."""

    verb: str
    group: str
    resource: str
    namespace: str  # "" for cluster-scoped requests and requests across all namespaces
    name: str = ""  # only for the kinds the chart grants by name (NAMED): RBAC then checks it too

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " (cluster)"
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {self.resource}{'.' + self.group if self.group else ''}{named}{where}"

    def review(self, user: str, groups: list[str]) -> dict[str, Any]:
        resource, _, subresource = self.resource.partition("/")
        attrs: dict[str, Any] = {"verb": self.verb, "group": self.group, "resource": resource}
        if subresource:
            attrs["subresource"] = subresource
        if self.namespace:
            attrs["namespace"] = self.namespace
        if self.name:
            attrs["name"] = self.name
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": attrs},
        }


def attributes(request: Request) -> list[Attributes]:
    """RBAC attributes of one request; [] for non-resource requests (discovery: /api, /apis/..., /version).

    A server-side apply that creates its object (PATCH answered 201) is checked for ``patch`` and, by the
    apply handler, for ``create`` too.
    """
    parts = [p for p in request.path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return []
    if not rest:
        return []  # discovery of one group version
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else None
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    method = request.method.upper()
    if method == "GET":
        verb = "get" if name else ("watch" if request.query.get("watch") in ("true", "1") else "list")
    else:
        verb = {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
    named = name if resource in NAMED and name else ""
    found = [Attributes(verb, group, resource, namespace, named)]
    if method == "PATCH" and request.status == 201:
        found.append(Attributes("create", group, resource, namespace))
    return found


def all_attributes(requests: Iterable[Request]) -> dict[Attributes, set[int]]:
    """Every distinct attribute set with the response statuses seen for it."""
    out: dict[Attributes, set[int]] = {}
    for request in requests:
        for attr in attributes(request):
            out.setdefault(attr, set()).add(request.status)
    return out


@dataclass
class RecordingProxy:
    upstream: str  # https://<the cluster's host address>:<port>
    ca_file: Path
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        query = {k: v[-1] for k, v in parse_qs(request.query_string).items()}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body or None
        ) as upstream:
            with self._lock:
                self.requests.append(Request(request.method, request.path, query, upstream.status))
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass
            return response

    async def _start(self, ready: threading.Event) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]
        ready.set()

    def start(self) -> int:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.create_task(self._start(ready))
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="recording-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the recording proxy did not start")
        return self.port

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        future = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            future.result(15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop = None


def token_kubeconfig(server: str, token: str, namespace: str) -> dict[str, Any]:
    """A kubeconfig that authenticates with a ServiceAccount token (and nothing else)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "proxy", "cluster": {"server": server}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "proxy", "user": "operator", "namespace": namespace}}],
        "current-context": "operator",
    }

"""The request audit of the chart's e2e RBAC check: RBAC attributes of requests, and the recording proxy."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.chart_audit import Attributes, RecordingProxy, Request, all_attributes, attributes


@pytest.mark.parametrize(
    ("method", "path", "query", "status", "expected"),
    [
        (
            "GET",
            "/apis/fulcrum.dev/v1alpha1/namespaces/shop/modeldeployments",
            {},
            200,
            [Attributes("list", "fulcrum.dev", "modeldeployments", "shop")],
        ),
        ("GET", "/apis/apps/v1/deployments", {"watch": "true"}, 200, [Attributes("watch", "apps", "deployments", "")]),
        (
            "GET",
            "/api/v1/namespaces/shop/pods",
            {"labelSelector": "job-name=x"},
            200,
            [Attributes("list", "", "pods", "shop")],
        ),
        ("GET", "/api/v1/namespaces/shop/configmaps/x", {}, 404, [Attributes("get", "", "configmaps", "shop")]),
        (
            "PATCH",
            "/apis/fulcrum.dev/v1alpha1/namespaces/shop/modeldeployments/m/status",
            {},
            200,
            [Attributes("patch", "fulcrum.dev", "modeldeployments/status", "shop")],
        ),
        # server-side apply that created the object: patch, and create checked by the apply handler
        (
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/d",
            {"fieldManager": "fulcrum"},
            201,
            [Attributes("patch", "apps", "deployments", "shop"), Attributes("create", "apps", "deployments", "shop")],
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/d",
            {"fieldManager": "fulcrum"},
            200,
            [Attributes("patch", "apps", "deployments", "shop")],
        ),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/shop/deployments/d",
            {},
            200,
            [Attributes("delete", "apps", "deployments", "shop")],
        ),
        (
            "DELETE",
            "/api/v1/namespaces/shop/configmaps",
            {},
            200,
            [Attributes("deletecollection", "", "configmaps", "shop")],
        ),
        ("POST", "/api/v1/namespaces", {}, 403, [Attributes("create", "", "namespaces", "")]),
        ("GET", "/api/v1/namespaces/shop", {}, 200, [Attributes("get", "", "namespaces", "")]),
        ("POST", "/api/v1/namespaces/shop/events", {}, 201, [Attributes("create", "", "events", "shop")]),
        (
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            {"watch": "1"},
            403,
            [Attributes("watch", "apiextensions.k8s.io", "customresourcedefinitions", "")],
        ),
        # discovery is not a resource request
        ("GET", "/api", {}, 200, []),
        ("GET", "/apis", {}, 200, []),
        ("GET", "/apis/fulcrum.dev/v1alpha1", {}, 200, []),
        ("GET", "/api/v1", {}, 200, []),
        ("GET", "/version", {}, 200, []),
    ],
)
def test_attributes(method: str, path: str, query: dict[str, str], status: int, expected: list[Attributes]) -> None:
    assert attributes(Request(method, path, query, status)) == expected


def test_all_attributes_collects_statuses() -> None:
    requests = [
        Request("POST", "/api/v1/namespaces", {}, 403),
        Request("POST", "/api/v1/namespaces", {}, 409),
        Request("GET", "/api", {}, 200),
    ]
    assert all_attributes(requests) == {Attributes("create", "", "namespaces", ""): {403, 409}}


def test_review_names_the_subresource() -> None:
    review = Attributes("patch", "fulcrum.dev", "modeldeployments/status", "shop").review("u", ["g"])
    assert review["spec"]["resourceAttributes"] == {
        "verb": "patch",
        "group": "fulcrum.dev",
        "resource": "modeldeployments",
        "subresource": "status",
        "namespace": "shop",
    }
    assert "namespace" not in Attributes("create", "", "namespaces", "").review("u", [])["spec"]["resourceAttributes"]


# --- the proxy, against a real HTTPS server ---------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server: 403 unless the bearer token is right; /stream sends three chunks, like a watch."""
    cert_file, key_file = _self_signed(tmp_path)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer s3cret":
            return web.json_response({"kind": "Status", "code": 403}, status=403)
        if request.path == "/stream":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            for i in range(3):
                await response.write(f'{{"type":"ADDED","n":{i}}}\n'.encode())
                await asyncio.sleep(0.05)
            await response.write_eof()
            return response
        body = await request.read()
        return web.json_response({"method": request.method, "body": body.decode()}, status=201)

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        server: object = site._server
        port.append(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        started.set()
        return runner

    runner_box: list[web.AppRunner] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner_box.append(loop.run_until_complete(start()))
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield f"https://127.0.0.1:{port[0]}", cert_file
    asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_proxy_passes_requests_through_and_records_them(upstream: tuple[str, Path]) -> None:
    url, ca = upstream
    proxy = RecordingProxy(url, ca)
    port = proxy.start()
    try:
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": "Bearer s3cret"}
        request = urllib.request.Request(
            f"{base}/api/v1/namespaces/shop/events?x=1", data=b'{"a":1}', headers=auth, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            assert response.read() == b'{"method": "POST", "body": "{\\"a\\":1}"}'
        with urllib.request.urlopen(urllib.request.Request(f"{base}/stream?watch=true", headers=auth), timeout=10) as r:
            assert r.read().decode().splitlines() == [f'{{"type":"ADDED","n":{i}}}' for i in range(3)]
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{base}/api/v1/namespaces", timeout=10)  # no token: the upstream says 403
        assert denied.value.code == 403
    finally:
        proxy.stop()
    assert proxy.snapshot() == [
        Request("POST", "/api/v1/namespaces/shop/events", {"x": "1"}, 201),
        Request("GET", "/stream", {"watch": "true"}, 200),
        Request("GET", "/api/v1/namespaces", {}, 403),
    ]

"""``/metrics`` over HTTPS for authorized clients only (``fulcrum run --metrics-secure``).

The pattern of controller-runtime's ``filters.WithAuthenticationAndAuthorization``: a client presents a bearer
token (Prometheus: its ServiceAccount's); a TokenReview asks the API server who it is, a SubjectAccessReview
whether that user may ``get`` the non-resource URL ``/metrics``. Answers are cached like controller-runtime's
delegating authenticator and authorizer (authentication 1 min, allow 5 min, deny 30 s), so a scrape every few
seconds costs the API server two requests a few times an hour. The certificate comes from ``--metrics-cert-dir``
(``tls.crt``/``tls.key``, e.g. a cert-manager Secret; reloaded when it changes) or is a self-signed one made at
start. The plain-HTTP default is prometheus_client's own server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger("fulcrum.metrics_server")

METRICS_PATH = "/metrics"
AUTHN_TTL, ALLOW_TTL, DENY_TTL = 60.0, 300.0, 30.0

Post = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]  # (API path, body) -> response body


@dataclass
class KubeAuthorizer:
    """Who a bearer token is (TokenReview) and whether it may GET a path (SubjectAccessReview), cached."""

    post: Post
    clock: Callable[[], float] = time.monotonic
    _users: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)
    _decisions: dict[tuple[str, str], tuple[float, bool]] = field(default_factory=dict)

    async def user(self, token: str) -> dict[str, Any] | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._users.get(key)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        review = await self.post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
        )
        status = review.get("status") or {}
        user = status.get("user") if status.get("authenticated") else None
        self._users[key] = (self.clock() + AUTHN_TTL, user)
        return user

    async def allowed(self, user: dict[str, Any], path: str) -> bool:
        key = (user.get("uid") or user.get("username", ""), path)
        cached = self._decisions.get(key)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        review = await self.post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.get("username", ""),
                    "uid": user.get("uid", ""),
                    "groups": user.get("groups", []),
                    "extra": user.get("extra", {}),
                    "nonResourceAttributes": {"path": path, "verb": "get"},
                },
            },
        )
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions[key] = (self.clock() + (ALLOW_TTL if allowed else DENY_TTL), allowed)
        return allowed

    async def check(self, authorization: str | None, path: str) -> tuple[int, str]:
        """(HTTP status, reason): 200, 401 (no or bad token), 403 (not allowed) or 503 (the API did not answer)."""
        if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
            return 401, "a bearer token is required"
        try:
            user = await self.user(authorization[7:].strip())
            if user is None:
                return 401, "the token is not valid"
            if not await self.allowed(user, path):
                return 403, f"{user.get('username', 'this user')} may not get {path}"
        except Exception as exc:  # the API server is unreachable or refuses the review itself
            log.warning("could not review a /metrics client: %s", exc)
            return 503, "cannot check the token now"
        return 200, ""


def self_signed(directory: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A self-signed serving certificate for ``hosts`` (names and IPs), valid a year."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fulcrum-metrics")])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class SecureMetricsServer:
    authorizer: KubeAuthorizer
    address: str
    port: int
    cert_dir: Path | None = None
    registry: CollectorRegistry = REGISTRY
    _runner: web.AppRunner | None = None
    _watch: asyncio.Task[None] | None = None

    def _context(self) -> tuple[ssl.SSLContext, Path, Path]:
        if self.cert_dir is not None:
            cert, key = self.cert_dir / "tls.crt", self.cert_dir / "tls.key"
        else:
            hosts = ["localhost", "127.0.0.1", socket.gethostname(), *filter(None, [os.environ.get("POD_IP")])]
            cert, key = self_signed(Path(tempfile.mkdtemp(prefix="fulcrum-metrics-")), hosts)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        return context, cert, key

    async def _serve(self, request: web.Request) -> web.Response:
        status, reason = await self.authorizer.check(request.headers.get("Authorization"), METRICS_PATH)
        if status != 200:
            headers = {"WWW-Authenticate": 'Bearer realm="fulcrum"'} if status == 401 else {}
            return web.Response(status=status, text=reason + "\n", headers=headers)
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> int:
        """Serve; returns the port (useful with port 0)."""
        context, cert, key = self._context()
        app = web.Application()
        app.router.add_get(METRICS_PATH, self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, self.port, ssl_context=context)
        await site.start()
        port = int(self._runner.addresses[0][1]) if self._runner.addresses else self.port
        if self.cert_dir is not None:
            self._watch = asyncio.create_task(self._reload_on_change(context, cert, key))
        log.info("serving %s over HTTPS on %s:%d (TokenReview + SubjectAccessReview)", METRICS_PATH, self.address, port)
        return port

    async def _reload_on_change(self, context: ssl.SSLContext, cert: Path, key: Path) -> None:
        """cert-manager renews the Secret in place: later handshakes use the new pair."""
        seen = cert.stat().st_mtime
        while True:
            await asyncio.sleep(30)
            with contextlib.suppress(OSError, ssl.SSLError):
                mtime = cert.stat().st_mtime
                if mtime != seen:
                    context.load_cert_chain(cert, key)
                    seen = mtime
                    log.info("reloaded the metrics certificate from %s", cert.parent)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

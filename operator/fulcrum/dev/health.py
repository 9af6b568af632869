"""Probing the control plane over mutual TLS (no Kubernetes client needed)."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path


def tls_context(pki: Path, client_stem: str = "admin") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / f"{client_stem}.crt"), str(pki / f"{client_stem}.key"))
    return ctx


def https_get(host: str, port: int, path: str, ctx: ssl.SSLContext, timeout: float = 3.0) -> tuple[int, str]:
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_https_ok(
    host: str,
    port: int,
    path: str,
    ctx: ssl.SSLContext,
    timeout: float,
    *,
    alive: Callable[[], bool] | None = None,
    what: str = "",
) -> None:
    """Poll ``GET path`` until 200; raise TimeoutError with the last answer otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"{what or port} exited while starting (see its log)")
        try:
            status, body = https_get(host, port, path, ctx)
            if status == 200:
                return
            last = f"HTTP {status}: {body[-500:]}"
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{what or port}: {path} not OK after {timeout:.0f}s; last answer: {last}")

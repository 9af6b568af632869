"""Readiness, liveness and startup probes: httpGet, tcpSocket and exec, run from the node."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fulcrum.dev.agent.podspec import resolve_port


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def from_spec(cls, probe: dict[str, Any]) -> ProbeTiming:
        return cls(
            float(probe.get("initialDelaySeconds", 0) or 0),
            float(probe.get("periodSeconds", 10) or 10),
            float(probe.get("timeoutSeconds", 1) or 1),
            int(probe.get("successThreshold", 1) or 1),
            int(probe.get("failureThreshold", 3) or 3),
        )


ExecRunner = Callable[[list[str], float], int]  # argv, timeout -> exit code


def http_get(host: str, port: int, path: str, *, scheme: str, headers: dict[str, str], timeout: float) -> bool:
    conn: http.client.HTTPConnection
    if scheme.upper() == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # kubelet does not verify probe certificates either
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path or "/", headers={"User-Agent": "kube-probe/1.32", **headers})
        return 200 <= conn.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def tcp_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def run_probe(probe: dict[str, Any], container: dict[str, Any], pod_ip: str, exec_runner: ExecRunner) -> bool:
    timeout = float(probe.get("timeoutSeconds", 1) or 1)
    if "httpGet" in probe:
        spec = probe["httpGet"]
        headers = {h["name"]: h["value"] for h in spec.get("httpHeaders", []) or []}
        return http_get(
            spec.get("host") or pod_ip,
            resolve_port(container, spec["port"]),
            spec.get("path", "/"),
            scheme=spec.get("scheme", "HTTP"),
            headers=headers,
            timeout=timeout,
        )
    if "tcpSocket" in probe:
        spec = probe["tcpSocket"]
        return tcp_open(spec.get("host") or pod_ip, resolve_port(container, spec["port"]), timeout)
    if "exec" in probe:
        try:
            return exec_runner(list(probe["exec"].get("command", [])), timeout) == 0
        except (OSError, subprocess.SubprocessError):
            return False
    if "grpc" in probe:
        return tcp_open(pod_ip, int(probe["grpc"]["port"]), timeout)
    return True


class ProbeState:
    """Thresholds of one probe: flips after ``success_threshold`` / ``failure_threshold`` results in a row."""

    def __init__(self, timing: ProbeTiming, initially: bool) -> None:
        self.timing = timing
        self.ok = initially
        self._successes = 0
        self._failures = 0
        self.next_at = 0.0

    def record(self, result: bool) -> bool:
        if result:
            self._successes += 1
            self._failures = 0
            if self._successes >= self.timing.success_threshold:
                self.ok = True
        else:
            self._failures += 1
            self._successes = 0
            if self._failures >= self.timing.failure_threshold:
                self.ok = False
        return self.ok

    @property
    def failures(self) -> int:
        return self._failures

"""Run the real operator (`fulcrum run`) as a host process against a dev cluster, with the admin kubeconfig.

Most e2e tests run the operator as users do: the chart installed with the dev cluster's images
(:mod:`tests.support.release`). Tests that must fault the operator's own network path from the host (blocking a
Triton pod's metrics port with host iptables, which traffic from a pod on the node never crosses) or run several
operator processes side by side with their own flags use this instead. Its builds and Triton pods still run the
dev cluster's images on the real node: ``images`` gives the builder and Triton references the chart would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fulcrum.dev import objectstore
from fulcrum.dev.images import BuiltImage
from fulcrum.dev.procs import CLUSTER_ENV


def ensure_secret(kubeconfig: Path, secret: Mapping[str, object]) -> None:
    """Create (or update) a Secret, and its namespace if needed."""
    from kubernetes import client

    from tests.support.kube_api import api_client, meta

    api = client.CoreV1Api(api_client(kubeconfig))
    # the model the client makes of the manifest anyway (its calls validate their bodies)
    body = client.V1Secret.model_validate(secret)
    name, namespace = meta(body).name, meta(body).namespace
    assert name and namespace, secret
    try:
        api.create_namespace(client.V1Namespace.model_validate({"metadata": {"name": namespace}}))
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    try:
        api.create_namespaced_secret(namespace, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        api.replace_namespaced_secret(name, namespace, body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OperatorProcess:
    kubeconfig: Path
    build_namespace: str
    store: objectstore.ObjectStoreConfig
    """The cluster's object store: repositories go there, as with the chart's default storage."""
    log_path: Path
    images: dict[str, BuiltImage]
    tick_seconds: float = 5.0
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def triton_image(self) -> str:
        """The serving image Triton pods (and build Jobs' sidecars) run: part of every build key."""
        return self.images["tritonserver-cpu"].ref

    def start(self) -> OperatorProcess:
        # The write keys in the build namespace, for the build Jobs: this operator holds none itself, so it signs
        # no upload forms and its Jobs publish with these (the documented fallback; the chart-installed operators
        # of the other e2e tests sign forms). Signing here would need the read-only Secret in the build
        # namespace, which those tests' chart releases render there and Helm refuses to adopt.
        ensure_secret(
            self.kubeconfig, objectstore.secret(self.store, "writer", objectstore.BUILD_SECRET, self.build_namespace)
        )
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            # tagged with the cluster's home: if pytest dies before its teardown, the cluster's watchdog sweeps it
            CLUSTER_ENV: str(self.kubeconfig.parent),
        }
        argv = [
            sys.executable,
            "-m",
            "fulcrum",
            "run",
            "--build-namespace",
            self.build_namespace,
            *objectstore.operator_flags(self.store),
            "--build-target",
            "local",
            "--builder-image",
            self.images["fulcrum-builder"].ref,
            "--triton-image",
            self.triton_image,
            "--storage-image",  # the serving pods' repository download
            self.images["fulcrum"].ref,
            "--tick-seconds",
            str(self.tick_seconds),
            "--metrics-port",
            "0",
            "--liveness",
            f"http://127.0.0.1:{free_port()}/healthz",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: the operator dies mid-work, as in a node failure."""
        self.stop(signal.SIGKILL)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

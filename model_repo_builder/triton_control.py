"""A Triton server the measure stage drives: model control (load with a config, unload) and inference, over HTTP.

Two kinds of server, one interface:

- the build Job's sidecar on a pool (``--triton-url``): the pool's own Triton image, started with
  ``--model-control-mode=explicit`` on a folder both containers mount (``--triton-repository``); the stage
  copies a tier's model directory there before loading it;
- the bundled CPU tritonserver (``--target local``), started here as ``python -m fulcrum.local_triton`` (a
  process boundary: the builder imports nothing of the operator but ``fulcrum.api``) in explicit mode on
  the built repository itself.

Every load passes the whole model config (``load`` with a ``config`` parameter), so the config search
measures each candidate without touching the repository's ``config.pbtxt``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_repo_builder.dtypes import TRITON_TO_NUMPY, Array


class TritonError(RuntimeError):
    """Triton refused a request (the message is Triton's)."""


@dataclass(frozen=True)
class TritonServer:
    address: str
    """``host:port`` of the HTTP endpoint."""
    repository: Path | None = None
    """Where to copy model directories before loading them; None: the server serves the built repository."""
    description: str = "tritonserver"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 300) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - a loopback / pod-local server
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            with suppress(ValueError):
                detail = str(json.loads(detail).get("error", detail))
            raise TritonError(detail.strip() or f"HTTP {error.code}") from error
        return json.loads(text) if text else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/health/live", timeout=2) as response:  # noqa: S310
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_live(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TritonError(f"tritonserver at {self.address} did not answer /v2/health/live in {timeout:.0f}s")
            time.sleep(0.5)

    def version(self) -> str:
        metadata = self._request("GET", "/v2")
        return str(metadata.get("version", "")) if isinstance(metadata, dict) else ""

    def stage(self, model_dir: Path) -> None:
        """Make ``model_dir`` loadable by name (a copy into the server's repository, when it has its own)."""
        if self.repository is None:
            return
        target = self.repository / model_dir.name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model_dir, target)

    def load(self, name: str, config_json: str) -> None:
        """Load (or reload) ``name`` with this whole config; raises :class:`TritonError` with Triton's reason."""
        self._request("POST", f"/v2/repository/models/{name}/load", {"parameters": {"config": config_json}})

    def unload(self, name: str) -> None:
        with suppress(TritonError):
            self._request("POST", f"/v2/repository/models/{name}/unload", {})

    def infer(self, name: str, inputs: Mapping[str, Array], outputs: Sequence[str], batch: int) -> dict[str, Array]:
        """Run every row of ``inputs`` through ``name``, ``batch`` rows a request; outputs concatenated."""
        from tritonclient import http

        client = http.InferenceServerClient(self.address, connection_timeout=60, network_timeout=300)
        try:
            n = len(next(iter(inputs.values())))
            parts: dict[str, list[Array]] = {o: [] for o in outputs}
            for start in range(0, n, batch):
                request = []
                for key, array in inputs.items():
                    rows = np.ascontiguousarray(array[start : start + batch])
                    tensor = http.InferInput(key, list(rows.shape), triton_type(rows.dtype))
                    tensor.set_data_from_numpy(rows)
                    request.append(tensor)
                try:
                    result = client.infer(name, request, outputs=[http.InferRequestedOutput(o) for o in outputs])
                except Exception as error:  # tritonclient raises its own InferenceServerException
                    raise TritonError(str(error)) from error
                for o in outputs:
                    parts[o].append(np.asarray(result.as_numpy(o)))
            return {o: np.concatenate(p) for o, p in parts.items()}
        finally:
            client.close()


def triton_type(dtype: np.dtype[Any]) -> str:
    for name, numpy_type in TRITON_TO_NUMPY.items():
        if np.dtype(numpy_type) == dtype:
            return name
    raise ValueError(f"no Triton type for {dtype}")


def http_sender(address: str, model: str, inputs: Mapping[str, Array], outputs: Sequence[str]) -> Callable[[], None]:
    """A thread-safe ``send()`` posting one sample (cycling through ``inputs``) to ``model``."""
    from tritonclient import http

    local = threading.local()
    n = len(next(iter(inputs.values())))
    counter = iter(range(1 << 62))
    lock = threading.Lock()
    kinds = {name: triton_type(array.dtype) for name, array in inputs.items()}
    requested = list(outputs)

    def send() -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = http.InferenceServerClient(address, connection_timeout=30, network_timeout=60)
        with lock:
            i = next(counter) % n
        request = []
        for name, array in inputs.items():
            sample = np.ascontiguousarray(array[i : i + 1])
            tensor = http.InferInput(name, list(sample.shape), kinds[name])
            tensor.set_data_from_numpy(sample)
            request.append(tensor)
        client.infer(model, request, outputs=[http.InferRequestedOutput(o) for o in requested])

    return send


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def bundled_server(repo: Path, timeout: float = 120.0) -> Iterator[TritonServer]:
    """The bundled CPU tritonserver in explicit model-control mode on ``repo`` (nothing loaded at start)."""
    http, grpc, metrics = _free_port(), _free_port(), _free_port()
    args = [
        f"--model-repository={repo.resolve()}",
        "--model-control-mode=explicit",
        "--strict-readiness=false",
        "--http-address=127.0.0.1",
        f"--http-port={http}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics}",
        "--allow-gpu-metrics=false",
        "--log-warning=false",
        "--log-info=false",
        "--exit-timeout-secs=3",  # open client connections would hold the shutdown for 30 s
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fulcrum.local_triton", *args], stdout=log, stderr=subprocess.STDOUT
        )
        server = TritonServer(f"127.0.0.1:{http}", None, "bundled tritonserver on CPU")
        try:
            deadline = time.monotonic() + timeout
            while not server.ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise TritonError(f"tritonserver did not start (exit code {process.poll()}):\n{tail}")
                time.sleep(0.25)
            version = server.version()
            yield TritonServer(server.address, None, f"tritonserver {version} on CPU (bundled)".replace("  ", " "))
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def external_server(address: str, repository: Path, device: str) -> TritonServer:
    """The build Job's sidecar: ``address`` (host:port), ``repository`` shared with it, ``device`` it runs on."""
    server = TritonServer(address.removeprefix("http://").rstrip("/"), repository)
    server.wait_live()
    version = server.version()
    return TritonServer(server.address, repository, f"tritonserver {version} on {device}")

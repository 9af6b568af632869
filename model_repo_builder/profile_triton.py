"""Profiles measured against a real tritonserver serving the built ``--target local`` repository.

The server is the bundled CPU tritonserver, started as a separate process through
``python -m fulcrum.local_triton`` (a process boundary: the builder imports nothing of the operator but
``fulcrum.api``). Single-sample HTTP requests arrive open-loop (:func:`profile.open_loop`); Triton's own
dynamic batcher and instance groups, from the generated config, do the batching.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from model_repo_builder import profile as prof
from model_repo_builder.dtypes import TRITON_TO_NUMPY, Array


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:  # noqa: S310
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def local_server(repo: Path, timeout: float = 120.0) -> Iterator[str]:
    """Run the bundled tritonserver on ``repo``; yields its HTTP address ``127.0.0.1:PORT``."""
    http, grpc, metrics = _free_port(), _free_port(), _free_port()
    args = [
        f"--model-repository={repo.resolve()}",
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
        url = f"http://127.0.0.1:{http}"
        try:
            deadline = time.monotonic() + timeout
            while not _ready(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"tritonserver did not become ready (exit code {process.poll()}):\n{tail}")
                time.sleep(0.25)
            yield f"127.0.0.1:{http}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def http_sender(address: str, model: str, inputs: Mapping[str, Array], outputs: Sequence[str]) -> Callable[[], None]:
    """A thread-safe ``send()`` posting one sample (cycling through ``inputs``) to ``model``."""
    from tritonclient import http

    local = threading.local()
    n = len(next(iter(inputs.values())))
    counter = iter(range(1 << 62))
    lock = threading.Lock()
    kinds = {name: _triton_name(array.dtype) for name, array in inputs.items()}

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
        client.infer(model, request, outputs=[http.InferRequestedOutput(o) for o in outputs])

    return send


def _triton_name(dtype: np.dtype[np.generic]) -> str:
    for name, numpy_type in TRITON_TO_NUMPY.items():
        if np.dtype(numpy_type) == dtype:
            return name
    raise ValueError(f"no Triton type for {dtype}")


def profile_model(
    send: Callable[[], None],
    *,
    duration: float,
    max_points: int | None,
    fractions: Sequence[float] = prof.DEFAULT_FRACTIONS,
    clients: int = 32,
) -> list[prof.PointResult]:
    capacity = prof.closed_loop_capacity(send, clients=8, seconds=1.0)
    return prof.profile_curve(
        lambda rate, seed: prof.open_loop(send, rate, duration, seed, workers=clients),
        capacity,
        fractions=fractions,
        max_points=max_points,
    )

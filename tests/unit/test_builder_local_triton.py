"""fulcrum.local_triton: locating the wheel's server, the backend directory, the command line, the env."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fulcrum import local_triton

pytest.importorskip("pytriton", reason="needs the nvidia-pytriton wheel (pip install 'fulcrum[local]')")


def test_backend_directory_is_assembled_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local_triton.CACHE_ENV, str(tmp_path))
    install = local_triton.find_install()
    first = local_triton.backend_directory(install)
    python = first / "python"
    assert (python / "libtriton_python.so").is_file()
    assert (python / "triton_python_backend_utils.py").is_file()
    assert os.access(python / "triton_python_backend_stub", os.X_OK)
    assert first.is_relative_to(tmp_path / "triton-backends")
    stamp = (python / "triton_python_backend_stub").stat().st_mtime_ns
    assert local_triton.backend_directory(install) == first
    assert (python / "triton_python_backend_stub").stat().st_mtime_ns == stamp


def test_command_adds_backend_directory_unless_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local_triton.CACHE_ENV, str(tmp_path))
    argv = local_triton.command(["--model-repository=/r", "--http-port=1"])
    assert argv[0].endswith("/tritonserver")
    assert argv[1:3] == ["--model-repository=/r", "--http-port=1"]
    assert argv[3].startswith("--backend-directory=")
    given = ["--model-repository=/r", "--backend-directory=/mine"]
    assert local_triton.command(given)[1:] == given
    assert local_triton.command(["--backend-directory", "/mine"])[1:] == ["--backend-directory", "/mine"]


def test_env_has_libs_libpython_and_site_packages() -> None:
    env = local_triton.server_env(base={"LD_LIBRARY_PATH": "/existing"})
    parts = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert parts[0].endswith("nvidia_pytriton.libs")
    assert local_triton.libpython_dir() in parts
    assert parts[-1] == "/existing"
    assert any(Path(p).name == "site-packages" for p in env[local_triton.SITE_PACKAGES_ENV].split(os.pathsep))


def test_serve_args_bind_address_and_turn_summary_metrics_on(tmp_path: Path) -> None:
    args = local_triton.serve_args(tmp_path, address="0.0.0.0", http_port=1, grpc_port=2, metrics_port=3)
    assert f"--model-repository={tmp_path.resolve()}" in args
    assert {"--http-address=0.0.0.0", "--grpc-address=0.0.0.0", "--metrics-address=0.0.0.0"} <= set(args)
    assert "--metrics-config=summary_latencies=true" in args


def test_native_models_are_detected(tmp_path: Path) -> None:
    (tmp_path / "fp32").mkdir()
    (tmp_path / "fp32" / "config.pbtxt").write_text('name: "fp32"\nplatform: "onnxruntime_onnx"\n')
    (tmp_path / "fp16").mkdir()
    (tmp_path / "fp16" / "config.pbtxt").write_text('name: "fp16"\nbackend: "python"\n')
    assert local_triton.native_models(tmp_path) == ["fp32"]


class _Answers200(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_wait_ready_waits_for_the_metrics_endpoint_too(tmp_path: Path) -> None:
    """tritonserver answers /v2/health/ready before its metrics port listens: ready means both answer."""
    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers200)
    metrics_port = local_triton.free_port("127.0.0.1")
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    process = subprocess.Popen(["sleep", "60"])
    server = local_triton.TritonServer(
        process, "127.0.0.1", http_server.server_address[1], 0, metrics_port, tmp_path / "log", ["tritonserver"]
    )
    started: list[http.server.ThreadingHTTPServer] = []

    def start_metrics_later() -> None:
        time.sleep(1.0)
        metrics = http.server.ThreadingHTTPServer(("127.0.0.1", metrics_port), _Answers200)
        started.append(metrics)
        metrics.serve_forever()

    try:
        assert server.is_ready() and not server.metrics_answer()
        threading.Thread(target=start_metrics_later, daemon=True).start()
        server.wait_ready(30)
        assert started and server.metrics_answer()
    finally:
        process.kill()
        process.wait()
        http_server.shutdown()
        for metrics in started:
            metrics.shutdown()


def test_metrics_off_follows_the_last_allow_metrics_flag(tmp_path: Path) -> None:
    def server(*args: str) -> local_triton.TritonServer:
        return local_triton.TritonServer(
            subprocess.Popen(["true"]), "127.0.0.1", 1, 2, 3, tmp_path / "log", ["tritonserver", *args]
        )

    assert not server().metrics_off
    assert not server("--allow-metrics=true").metrics_off
    assert server("--allow-metrics=true", "--allow-metrics=false").metrics_off
    assert not server("--allow-metrics=false", "--allow-metrics=true").metrics_off

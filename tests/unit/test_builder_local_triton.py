"""fulcrum.local_triton: locating the wheel's server, the backend directory, the command line, the env."""

from __future__ import annotations

import os
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

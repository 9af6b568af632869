"""Run the ``tritonserver`` that the ``nvidia-pytriton`` wheel ships, on CPU, with the python backend.

The wheel carries the server binary and the python backend, but the backend *stub* lives in a
separate folder per Python version, and the stub needs the wheel's shared libraries and this
interpreter's ``libpython`` on ``LD_LIBRARY_PATH``. This module assembles a backend directory
(cached under ``~/.cache/fulcrum/triton-backends/<version>/``), prepares the environment and runs
the server.

Contract (``fulcrum serve`` and the builder's bundled server; the ``tritonserver-cpu`` image does the same in a
shell script): ``python -m fulcrum.local_triton <tritonserver args...>`` execs the real ``tritonserver`` with
exactly those arguments plus ``--backend-directory`` (unless given).

Generated ``model.py`` files find the venv's packages through :data:`SITE_PACKAGES_ENV`
(``os.pathsep``-separated directories), because the stub ignores ``PYTHONPATH``.

No torch, no onnx here: the operator imports this module.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SITE_PACKAGES_ENV = "FULCRUM_SITE_PACKAGES"
CACHE_ENV = "FULCRUM_CACHE_DIR"


class TritonUnavailableError(RuntimeError):
    """The bundled tritonserver could not be found or prepared."""


@dataclass(frozen=True)
class TritonInstall:
    """Where the pieces of the bundled server are."""

    root: Path  # .../site-packages/pytriton/tritonserver
    binary: Path
    python_backend: Path
    stub: Path
    libs: Path  # .../site-packages/nvidia_pytriton.libs
    version: str

    @property
    def library_path(self) -> Path:
        return self.root / "lib"


def _pytriton_version() -> str:
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version("nvidia-pytriton")
    except metadata.PackageNotFoundError:  # pragma: no cover - checked by find_install
        return "unknown"


def find_install() -> TritonInstall:
    """Locate the server, python backend, stub and libraries inside the installed ``nvidia-pytriton`` wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonUnavailableError(
            "the bundled tritonserver needs the nvidia-pytriton wheel: pip install 'fulcrum[local]'"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    root = package / "tritonserver"
    py_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(
        root=root,
        binary=root / "bin" / "tritonserver",
        python_backend=root / "backends" / "python",
        stub=root / "python_backend_stubs" / py_version / "triton_python_backend_stub",
        libs=package.parent / "nvidia_pytriton.libs",
        version=_pytriton_version(),
    )
    for what, path in (
        ("tritonserver binary", install.binary),
        ("python backend", install.python_backend),
        (f"python backend stub for Python {py_version}", install.stub),
    ):
        if not path.exists():
            raise TritonUnavailableError(f"{what} not found at {path} (nvidia-pytriton {install.version})")
    return install


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV)
    return Path(base) if base else Path.home() / ".cache" / "fulcrum"


def backend_directory(install: TritonInstall | None = None) -> Path:
    """A ``--backend-directory`` holding ``python/`` with libtriton_python.so, the utils and the stub (cached)."""
    install = install or find_install()
    py_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = cache_dir() / "triton-backends" / f"{install.version}-py{py_version}"
    python_dir = target / "python"
    stub = python_dir / "triton_python_backend_stub"
    if stub.exists() and (python_dir / "libtriton_python.so").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    # Assemble in a temporary folder and rename, so concurrent callers never see a half-copied backend.
    staging = Path(tempfile.mkdtemp(prefix=".python-", dir=target))
    try:
        for item in install.python_backend.iterdir():
            if item.is_file():
                shutil.copy2(item, staging / item.name)
        shutil.copy2(install.stub, staging / "triton_python_backend_stub")
        (staging / "triton_python_backend_stub").chmod(0o755)
        try:
            staging.rename(python_dir)
        except OSError:
            if not stub.exists():  # somebody else won the race only if theirs is complete
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def site_packages() -> list[str]:
    """This interpreter's site-packages directories (the venv's), for generated model.py files."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return sorted(p for p in paths if Path(p).is_dir())


def libpython_dir() -> str:
    return str(sysconfig.get_config_var("LIBDIR") or Path(sys.base_prefix) / "lib")


def server_env(install: TritonInstall | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment tritonserver and its python stub need."""
    install = install or find_install()
    env = dict(os.environ if base is None else base)
    library_dirs = [str(install.libs), libpython_dir()]
    if install.library_path.is_dir():
        library_dirs.append(str(install.library_path))
    existing = env.get("LD_LIBRARY_PATH")
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*library_dirs, *([existing] if existing else [])])
    env[SITE_PACKAGES_ENV] = os.pathsep.join(site_packages())
    return env


def command(args: Sequence[str], install: TritonInstall | None = None) -> list[str]:
    """The full tritonserver command line: ``args`` plus ``--backend-directory`` unless given."""
    install = install or find_install()
    argv = [str(install.binary), *args]
    if not any(a == "--backend-directory" or a.startswith("--backend-directory=") for a in args):
        argv.append(f"--backend-directory={backend_directory(install)}")
    return argv


def exec_server(args: Sequence[str]) -> None:  # pragma: no cover - replaces the process
    install = find_install()
    argv = command(args, install)
    os.execve(argv[0], argv, server_env(install))  # noqa: S606 - the contract: become tritonserver


NATIVE_PLATFORMS = ("onnxruntime_onnx", "tensorrt_plan", "pytorch_libtorch", "tensorflow_savedmodel")


def native_models(repo: Path | str) -> list[str]:
    """Models of a repository whose config names a platform this wheel's server has no backend for."""
    found = []
    for config in sorted(Path(repo).glob("*/config.pbtxt")):
        for line in config.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "platform" and value.strip().strip('"') in NATIVE_PLATFORMS:
                found.append(config.parent.name)
                break
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class TritonServer:
    """A running tritonserver started by :func:`start`."""

    process: subprocess.Popen[bytes]
    address: str
    http_port: int
    grpc_port: int
    metrics_port: int
    log_path: Path
    argv: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://{self.address}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address}:{self.metrics_port}/metrics"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as response:  # noqa: S310
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    @property
    def metrics_off(self) -> bool:
        """Whether the arguments turned the metrics endpoint off (the last ``--allow-metrics`` wins)."""
        flags = [a for a in self.argv if a.startswith("--allow-metrics=")]
        return bool(flags) and flags[-1] == "--allow-metrics=false"

    def metrics_answer(self) -> bool:
        """Whether the metrics endpoint answers: tritonserver starts it after the HTTP endpoint is ready."""
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2) as response:  # noqa: S310
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the server is ready and its metrics endpoint answers (each starts on its own)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TritonUnavailableError(
                    f"tritonserver exited with {self.process.returncode}; last log lines:\n{self._tail()}"
                )
            if self.is_ready() and (self.metrics_off or self.metrics_answer()):
                return
            time.sleep(0.25)
        raise TimeoutError(f"tritonserver not ready after {timeout:.0f}s; last log lines:\n{self._tail()}")

    def _tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_args(
    repo: Path | str,
    *,
    address: str = "127.0.0.1",
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    extra: Sequence[str] = (),
) -> list[str]:
    """tritonserver arguments for a repository: endpoints bound to ``address``, summary latency metrics on."""
    return [
        f"--model-repository={Path(repo).resolve()}",
        f"--http-address={address}",
        f"--http-port={http_port}",
        f"--grpc-address={address}",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=true",
        f"--metrics-address={address}",
        f"--metrics-port={metrics_port}",
        "--metrics-config=summary_latencies=true",
        "--allow-gpu-metrics=false",
        "--strict-readiness=true",
        *extra,
    ]


def start(
    repo: Path | str,
    *,
    address: str = "127.0.0.1",
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
) -> TritonServer:
    """Start tritonserver on ``repo`` in the background (free ports when not given). Call ``wait_ready()``."""
    install = find_install()
    ports = [p if p is not None else free_port(address) for p in (http_port, grpc_port, metrics_port)]
    args = serve_args(
        repo, address=address, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2], extra=extra_args
    )
    argv = command(args, install)
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env=server_env(install), stdout=log, stderr=subprocess.STDOUT)
    return TritonServer(process, address, ports[0], ports[1], ports[2], log_path, argv)


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - execs
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        exec_server(args)
    except TritonUnavailableError as error:
        print(f"fulcrum.local_triton: {error}", file=sys.stderr)
        raise SystemExit(2) from error


if __name__ == "__main__":  # pragma: no cover
    main()

"""Fulcrum's container images, built offline with buildah and delivered to the dev node through a registry.

``images/<name>/Containerfile`` are ordinary Containerfiles: docker, podman or buildah build them from the
repository root, FROM ``python:3.11-slim-bookworm`` by default. Here no registry can be pulled from, so the base
comes from Debian packages: mmdebstrap makes a bookworm root filesystem with Python 3.11, buildah imports it
and the recipes build FROM it (``--build-arg BASE=...``). The pod sandbox image holds only the pinned ``pause``.

Every image is cached by a content key (the recipe, its base and every file it copies): an unchanged key is
never rebuilt, a changed one rebuilds only the layers whose inputs changed (buildah ``--layers``; the heavy
dependency layers change only with pyproject.toml). Built images are pushed into one registry store under
``~/.cache/fulcrum/images/registry`` by a registry on loopback that runs just for the push; each dev cluster's
node then serves that store read-only from its own network namespace as ``localhost:5000`` (see
:mod:`fulcrum.dev.node`), so an image is written once per machine and pulled the way a real cluster pulls.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from fulcrum.dev import health
from fulcrum.dev.paths import cache_root

Say = Callable[[str], None]

REGISTRY_HOST = "localhost:5000"  # the registry as the node sees it (inside the node's network namespace)
RECIPE_VERSION = "2"  # bump when the build commands below change what an image holds
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "libpython3.11", "ca-certificates")
PYTHON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IGNORED_PARTS = ("__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache")
IGNORED_SUFFIXES = (".pyc", ".egg-info")
HEARTBEAT_SECONDS = 30.0
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUILD_CA_BUNDLE = "/etc/ssl/certs/build-host-ca-certificates.crt"
PIP_CACHE_TARGET = "/root/.cache/pip"  # the recipes' cache mount


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Recipe:
    """An image built from ``images/<name>/Containerfile``; ``inputs`` are what it copies (hashed into its key)."""

    name: str
    inputs: tuple[str, ...]
    build_args: tuple[tuple[str, str], ...] = ()


_FULCRUM_SOURCES = ("pyproject.toml", "images/requirements.py", "operator", "model_repo_builder")
RECIPES: tuple[Recipe, ...] = (
    Recipe("fulcrum", _FULCRUM_SOURCES),
    Recipe("tritonserver-cpu", ("pyproject.toml", "images/requirements.py", "images/tritonserver-cpu")),
    Recipe("fulcrum-builder", _FULCRUM_SOURCES),
)
PAUSE = "pause"
NAMES = (PAUSE, *(r.name for r in RECIPES))


@dataclass(frozen=True)
class BuiltImage:
    """One image in the registry store (recorded as ``built/<name>-<key>.json``)."""

    name: str
    key: str
    ref: str  # as pods name it: localhost:5000/<name>:<key>
    size_bytes: int  # unpacked, as buildah reports it
    compressed_bytes: int  # the layers' blobs in the registry: what a node pulls
    build_seconds: float

    @property
    def repository(self) -> str:
        return self.ref.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.key


# --- where things are --------------------------------------------------------------------------------------


def images_root() -> Path:
    return cache_root() / "images"


def registry_store() -> Path:
    """The registry's storage: every image pushed once, served read-only by each cluster's node."""
    return images_root() / "registry"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def storage_args() -> list[str]:
    root = images_root()
    return ["--root", str(root / "storage"), "--runroot", str(root / "runroot"), "--storage-driver", "overlay"]


# --- content keys (pure but for reading the input files) ---------------------------------------------------


def _ignored(path: Path) -> bool:
    return any(part in IGNORED_PARTS for part in path.parts) or path.name.endswith(IGNORED_SUFFIXES)


def input_files(root: Path, inputs: Iterable[str]) -> list[Path]:
    """Every file under ``inputs`` (files or directories, relative to ``root``) that a build copies, sorted."""
    found: list[Path] = []
    for item in inputs:
        path = root / item
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and not _ignored(p.relative_to(root))]
        elif path.is_file():
            found.append(path)
        else:
            raise ImageError(f"image input {item} not found under {root}")
    return sorted(found)


def digest(parts: Iterable[bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()[:16]


def base_key() -> str:
    return digest([RECIPE_VERSION.encode(), SUITE.encode(), *(p.encode() for p in BASE_PACKAGES)])


def recipe_key(recipe: Recipe, root: Path, base: str) -> str:
    containerfile = root / "images" / recipe.name / "Containerfile"
    files = input_files(root, [*recipe.inputs, str(containerfile.relative_to(root))])
    parts = [RECIPE_VERSION.encode(), base.encode(), recipe.name.encode(), repr(recipe.build_args).encode()]
    for path in files:
        parts += [str(path.relative_to(root)).encode(), path.read_bytes(), bytes([path.stat().st_mode & 0o111 != 0])]
    return digest(parts)


def pause_key(pause_binary: Path) -> str:
    return digest([RECIPE_VERSION.encode(), PAUSE.encode(), pause_binary.read_bytes()])


def image_ref(name: str, key: str) -> str:
    return f"{REGISTRY_HOST}/{name}:{key}"


def keys(root: Path | None = None, pause_binary: Path | None = None) -> dict[str, str]:
    """The current content key of every image (pause only when its binary is given)."""
    root = root or repo_root()
    base = base_key()
    found = {r.name: recipe_key(r, root, base) for r in RECIPES}
    if pause_binary is not None:
        found = {PAUSE: pause_key(pause_binary), **found}
    return found


# --- what is built ---------------------------------------------------------------------------------------


def record_path(name: str, key: str) -> Path:
    return images_root() / "built" / f"{name}-{key}.json"


def tag_dir(name: str, key: str) -> Path:
    """Where the registry store keeps the tag ``name:key`` (removing it untags the image)."""
    return registry_store() / "docker/registry/v2/repositories" / name / "_manifests/tags" / key


def in_store(name: str, key: str) -> bool:
    return (tag_dir(name, key) / "current/link").exists()


def built(name: str, key: str) -> BuiltImage | None:
    """The record of an image in the registry store, or None when it must be built."""
    record = record_path(name, key)
    try:
        data = json.loads(record.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not in_store(name, key):
        return None
    with contextlib.suppress(OSError):
        os.utime(record)  # when a checkout last wanted this key: what pruning the cache goes by
    return BuiltImage(**data)


# --- building --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(say: Say) -> Iterator[None]:
    """One image build at a time on this machine (all clusters share the store)."""
    with _lock_file() as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another image build on this machine to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def try_locked() -> Iterator[bool]:
    """The image build lock if it is free now, else False at once (for work that must never run beside a build)."""
    with _lock_file() as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _lock_file() -> IO[str]:
    root = images_root()
    root.mkdir(parents=True, exist_ok=True)
    return open(root / ".lock", "w")


def _require(*commands: str) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        raise ImageError(f"{', '.join(missing)} not found: run scripts/system-packages (Debian packages, as root)")


def _run(argv: list[str], log: Path, what: str, say: Say) -> None:
    """Run a build step, output to ``log``; say each buildah STEP and, while a step runs long, how long."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    current = [what]
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            say(f"  ... {current[0]} ({time.monotonic() - started:.0f}s so far; log: {log})")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    tail: list[str] = []
    try:
        with log.open("a", buffering=1) as out:
            out.write(f"$ {' '.join(argv)}\n")
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                tail = [*tail[-30:], line.rstrip()]
                if line.startswith("STEP "):
                    current[0] = f"{what}: {line.strip()[:100]}"
                    say(f"  {current[0]}")
            code = proc.wait()
    finally:
        done.set()
    if code != 0:
        raise ImageError(f"{what} failed (exit {code}); log: {log}\n" + "\n".join(tail))


def _image_exists(reference: str) -> bool:
    result = subprocess.run(
        ["buildah", *storage_args(), "inspect", "--type", "image", reference],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _image_size(reference: str) -> int:
    out = subprocess.run(
        ["buildah", *storage_args(), "images", "--json", reference], capture_output=True, text=True, check=True
    ).stdout
    images = json.loads(out or "[]")
    return parse_size(str(images[0].get("size", "0"))) if images else 0


def parse_size(text: str) -> int:
    """buildah's human size (decimal units, three significant digits: ``184 MB``) in bytes. Pure."""
    number, _, unit = text.strip().partition(" ")
    scale = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    return round(float(number) * scale.get(unit or "B", 1))


def build_base(say: Say) -> str:
    """``localhost/fulcrum-base:<key>``: Debian bookworm minbase with Python 3.11, made by mmdebstrap."""
    key = base_key()
    reference = f"localhost/fulcrum-base:{key}"
    if _image_exists(reference):
        return reference
    _require("mmdebstrap", "buildah")
    root = images_root()
    logs = root / "logs"
    say(f"base image: mmdebstrap {SUITE} minbase + {', '.join(BASE_PACKAGES)}")
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                # merged /usr the way debootstrap does it: without the usrmerge package and the perl it drags in
                "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                f"--include={','.join(BASE_PACKAGES)}",
                '--aptopt=Acquire::Languages "none"',
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/info/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--customize-hook=rm -rf $1/var/lib/apt/lists/* $1/var/cache/apt/* $1/var/log/*",
                SUITE,
                str(tarball),
            ],
            logs / f"base-{key}.log",
            "mmdebstrap",
            say,
        )
        container = subprocess.run(
            ["buildah", *storage_args(), "from", "scratch"], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            for step in (
                ["add", container, str(tarball), "/"],
                ["config", "--env", f"PATH={PYTHON_PATH}", "--cmd", '["python3"]', container],
                ["commit", "--quiet", container, reference],
            ):
                subprocess.run(["buildah", *storage_args(), *step], capture_output=True, check=True)
        finally:
            subprocess.run(["buildah", *storage_args(), "rm", container], capture_output=True, check=False)
    return reference


def _build_recipe(recipe: Recipe, key: str, base: str, root: Path, say: Say) -> str:
    local = f"localhost/{recipe.name}:{key}"
    if _image_exists(local):
        return local
    args = [arg for name, value in recipe.build_args for arg in ("--build-arg", f"{name}={value}")]
    args += _pip_for_the_build()
    _run(
        [
            "buildah",
            *storage_args(),
            "bud",
            "--layers",
            "--pull=never",
            "--isolation=chroot",
            "--network=host",  # pip reaches PyPI as the host does; no bridge, no firewall rules
            "--build-arg",
            f"BASE={base}",
            *args,
            "--file",
            str(root / "images" / recipe.name / "Containerfile"),
            "--tag",
            local,
            str(root),
        ],
        images_root() / "logs" / f"{recipe.name}-{key}.log",
        recipe.name,
        say,
    )
    return local


def _pip_for_the_build() -> list[str]:
    """``--volume`` arguments that give pip in RUN steps the host's pip cache and the host's trust.

    A pip.conf mounted for the build only (nothing of it lands in an image) names the cache (the recipes' cache
    mount target, here the host's ``~/.cache/fulcrum/pip``: a torch wheel is downloaded once per machine) and,
    when the machine trusts a TLS-inspecting proxy's CA in its system bundle, that bundle (pip carries its own).
    """
    pip_cache = cache_root() / "pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    config = images_root() / "pip.conf"
    lines = ["[global]", f"cache-dir = {PIP_CACHE_TARGET}"]
    volumes = ["--volume", f"{pip_cache}:{PIP_CACHE_TARGET}", "--volume", f"{config}:/etc/pip.conf:ro"]
    bundle = Path(os.environ.get("PIP_CERT") or HOST_CA_BUNDLE)
    if bundle.is_file():
        lines.append(f"cert = {BUILD_CA_BUNDLE}")
        volumes += ["--volume", f"{bundle}:{BUILD_CA_BUNDLE}:ro"]
    config.write_text("\n".join(lines) + "\n")
    return volumes


def _build_pause(pause_binary: Path, key: str) -> str:
    local = f"localhost/{PAUSE}:{key}"
    if _image_exists(local):
        return local
    container = subprocess.run(
        ["buildah", *storage_args(), "from", "scratch"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        for step in (
            ["copy", "--chmod", "0755", container, str(pause_binary), "/pause"],
            ["config", "--entrypoint", '["/pause"]', "--user", "65535:65535", container],
            ["commit", "--quiet", container, local],
        ):
            subprocess.run(["buildah", *storage_args(), *step], capture_output=True, check=True)
    finally:
        subprocess.run(["buildah", *storage_args(), "rm", container], capture_output=True, check=False)
    return local


@contextlib.contextmanager
def push_registry() -> Iterator[str]:
    """A registry on a free loopback port writing the store, for as long as the pushes take."""
    _require("docker-registry")
    store = registry_store()
    store.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "registry.yml"
        config.write_text(registry_config(store, f"127.0.0.1:{port}", read_only=False))
        log = images_root() / "logs" / "push-registry.log"
        with log.open("a") as out:
            proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not health.port_open(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ImageError(f"the push registry did not start; see {log}")
                time.sleep(0.1)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def registry_config(store: Path, address: str, *, read_only: bool) -> str:
    """The distribution registry's configuration (YAML, written as JSON). Pure."""
    storage: dict[str, object] = {"filesystem": {"rootdirectory": str(store)}, "delete": {"enabled": False}}
    if read_only:
        storage["maintenance"] = {"readonly": {"enabled": True}, "uploadpurging": {"enabled": False}}
    else:
        storage["maintenance"] = {"uploadpurging": {"enabled": False}}
    document = {"version": 0.1, "log": {"level": "warn"}, "storage": storage, "http": {"addr": address}}
    return json.dumps(document, indent=2)


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _push(local: str, name: str, key: str, registry: str) -> int:
    """Push to the store (zstd layers: fast to write and to unpack); returns the layers' compressed bytes."""
    subprocess.run(
        [
            "buildah",
            *storage_args(),
            "push",
            "--quiet",
            "--tls-verify=false",
            "--compression-format=zstd",
            local,
            f"docker://{registry}/{name}:{key}",
        ],
        capture_output=True,
        check=True,
    )
    request = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{key}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our loopback registry
        manifest = json.loads(response.read())
    return sum(int(layer["size"]) for layer in manifest.get("layers", []))


def ensure(
    names: Iterable[str] = NAMES, *, say: Say = print, pause_binary: Path | None = None, root: Path | None = None
) -> dict[str, BuiltImage]:
    """Build and push what is missing of ``names``; returns every one of them as built."""
    root = root or repo_root()
    wanted = list(dict.fromkeys(names))
    unknown = set(wanted) - set(NAMES)
    if unknown:
        raise ImageError(f"unknown images: {', '.join(sorted(unknown))} (known: {', '.join(NAMES)})")
    if PAUSE in wanted and pause_binary is None:
        raise ImageError("the pause image needs the pause binary (fulcrum dev build)")
    current = keys(root, pause_binary)
    result = {n: b for n in wanted if (b := built(n, current[n])) is not None}
    if len(result) == len(wanted):
        return result
    _require("buildah", "docker-registry")
    with _locked(say):
        todo = [n for n in wanted if built(n, current[n]) is None]
        base = build_base(say) if any(n != PAUSE for n in todo) else ""
        for name in todo:
            key = current[name]
            started = time.monotonic()
            say(f"image {name}:{key}: building")
            if name == PAUSE:
                assert pause_binary is not None
                local = _build_pause(pause_binary, key)
            else:
                recipe = next(r for r in RECIPES if r.name == name)
                local = _build_recipe(recipe, key, base, root, say)
            say(f"image {name}:{key}: pushing into the registry store (zstd layers)")
            with push_registry() as registry:
                compressed = _push(local, name, key, registry)
            image = BuiltImage(
                name=name,
                key=key,
                ref=image_ref(name, key),
                size_bytes=_image_size(local),
                compressed_bytes=compressed,
                build_seconds=round(time.monotonic() - started, 1),
            )
            marker = record_path(name, key)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(asdict(image), indent=1))
            say(
                f"image {name}:{key}: {image.size_bytes / 1e6:.0f} MB unpacked, "
                f"{image.compressed_bytes / 1e6:.0f} MB to pull, in {image.build_seconds:.0f}s"
            )
    return {n: b for n in wanted if (b := built(n, current[n])) is not None}


def refs(images: dict[str, BuiltImage]) -> dict[str, str]:
    return {name: image.ref for name, image in images.items()}

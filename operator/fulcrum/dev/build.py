"""Build (or reuse) the dev cluster's binaries from the pinned Go module in ``hack/devcluster``.

The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), the node (kubelet,
kube-proxy and the pod sandbox's ``pause``), the clients (kubectl, helm), kwok, Prometheus and promtool.
They land in ``~/.cache/fulcrum/bin/<key>/`` where ``<key>`` names the Kubernetes release and hashes go.mod, go.sum,
the Go sources of ``hack/devcluster`` and this recipe: the same pin is never built twice, a new pin gets a
new directory. GOCACHE and GOMODCACHE live under ``~/.cache/fulcrum/go`` so a rebuild after a pin bump
recompiles only what changed. Builds run one binary at a time (2-core CI machines).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fulcrum.dev.paths import bin_root, go_root

SOURCE_ENV = "FULCRUM_DEVCLUSTER_SRC"
RECIPE_VERSION = "2"  # bump when the build flags below change
COMPLETE = ".complete"
WANTED = ".wanted"  # touched whenever a checkout asks for the pin's binaries (fulcrum.dev.bin_cache prunes by it)


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Binary:
    name: str
    package: str
    ldflags: tuple[str, ...] = ()
    module_dir: str = "."  # the Go module (relative to hack/devcluster) that pins it
    tags: tuple[str, ...] = ()  # Go build tags


def default_source() -> Path:
    env = os.environ.get(SOURCE_ENV)
    if env:
        return Path(env)
    # operator/fulcrum/dev/build.py -> repository root
    return Path(__file__).resolve().parents[3] / "hack" / "devcluster"


def module_versions(go_mod: str) -> dict[str, str]:
    """``module path -> version`` of the direct requirements (``replace`` targets win)."""
    versions: dict[str, str] = {}
    for match in re.finditer(r"^\s*([\w./-]+)\s+(v[\w.+-]+)(?:\s*//.*)?$", go_mod, re.MULTILINE):
        versions.setdefault(match[1], match[2])
    for match in re.finditer(r"^\s*([\w./-]+)\s+=>\s+([\w./-]+)\s+(v[\w.+-]+)", go_mod, re.MULTILINE):
        versions[match[1]] = match[3]
    return versions


def helm_kube_flags(helm_client_go: str | None) -> tuple[str, ...]:
    """The Kubernetes version helm assumes without a cluster (``helm template``), stamped in as Helm's own release
    build does (its Makefile: the client-go minor it compiles against, major 1). Without them helm assumes
    v1.20.0, and any chart requiring a newer Kubernetes fails to render offline."""
    if not helm_client_go:
        return ()
    minor = helm_client_go.lstrip("v").split(".")[1]
    return tuple(
        f"-X helm.sh/helm/v3/pkg/{package}.k8sVersion{part}={value}"
        for package in ("chartutil", "lint/rules")
        for part, value in (("Major", "1"), ("Minor", minor))
    )


def binaries(versions: dict[str, str], helm_client_go: str | None = None) -> list[Binary]:
    k8s = versions.get("k8s.io/kubernetes")
    if k8s is None:
        raise BuildError("hack/devcluster/go.mod does not require k8s.io/kubernetes")
    major, minor = k8s.lstrip("v").split(".")[:2]
    kube_flags = (
        f"-X k8s.io/component-base/version.gitVersion={k8s}",
        f"-X k8s.io/component-base/version.gitMajor={major}",
        f"-X k8s.io/component-base/version.gitMinor={minor}",
        "-X k8s.io/component-base/version.gitTreeState=clean",
        f"-X k8s.io/client-go/pkg/version.gitVersion={k8s}",
    )
    kwok = versions.get("sigs.k8s.io/kwok", "unknown")
    helm = versions.get("helm.sh/helm/v3", "unknown")
    prometheus = prometheus_flags(versions.get("github.com/prometheus/prometheus", "unknown"))
    weed = versions.get("github.com/seaweedfs/seaweedfs", "unknown")
    # small ones first: a broken pin fails in seconds, not after the API server
    return [
        Binary("pause", "fulcrum.dev/hack/devcluster/pause"),
        Binary("etcd", "go.etcd.io/etcd/server/v3"),
        Binary(
            "kwok", "sigs.k8s.io/kwok/cmd/kwok", (f"-X sigs.k8s.io/kwok/pkg/consts.Version={kwok}",), module_dir="kwok"
        ),
        Binary(
            "helm",
            "helm.sh/helm/v3/cmd/helm",
            (f"-X helm.sh/helm/v3/internal/version.version={helm}", *helm_kube_flags(helm_client_go)),
            module_dir="helm",
        ),
        Binary("promtool", "github.com/prometheus/prometheus/cmd/promtool", prometheus, "prometheus", PROMETHEUS_TAGS),
        Binary(
            "prometheus", "github.com/prometheus/prometheus/cmd/prometheus", prometheus, "prometheus", PROMETHEUS_TAGS
        ),
        Binary(
            "weed",
            "github.com/seaweedfs/seaweedfs/weed",
            (f"-X github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT={weed}",),
            module_dir="seaweedfs",
        ),
        Binary("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", kube_flags),
        Binary("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", kube_flags),
        Binary("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", kube_flags),
        Binary("kubectl", "k8s.io/kubernetes/cmd/kubectl", kube_flags),
        Binary("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy", kube_flags),
        Binary("kubelet", "k8s.io/kubernetes/cmd/kubelet", kube_flags),
    ]


# Only Kubernetes service discovery is compiled in (the other 25 SD plugins pull in every cloud's SDK).
PROMETHEUS_TAGS = ("remove_all_sd", "enable_kubernetes_sd")


def prometheus_flags(module_version: str) -> tuple[str, ...]:
    """The Go module's ``v0.315.1`` is Prometheus ``3.15.1``: what ``prometheus --version`` prints."""
    match = re.fullmatch(r"v0\.(\d)(\d\d)\.(\d+)", module_version)
    release = f"{match[1]}.{int(match[2])}.{match[3]}" if match else module_version
    return (
        f"-X github.com/prometheus/common/version.Version={release}",
        "-X github.com/prometheus/common/version.Branch=fulcrum-dev",
    )


def module_files(source: Path) -> list[Path]:
    """go.mod, go.sum and Go sources of the main module and its sub-modules (kwok, helm, prometheus), stable order."""
    return sorted(p for p in source.rglob("*") if p.name in ("go.mod", "go.sum") or p.suffix == ".go")


def version_key(files: dict[str, str]) -> str:
    """``k8s-<release>-<hash of the pins and this recipe>``."""
    hasher = hashlib.sha256(RECIPE_VERSION.encode())
    for name in sorted(files):
        hasher.update(f"\n{name}\n{files[name]}".encode())
    k8s = module_versions(files.get("go.mod", "")).get("k8s.io/kubernetes", "unknown")
    return f"k8s-{k8s}-{hasher.hexdigest()[:12]}"


@dataclass(frozen=True)
class Plan:
    source: Path
    key: str
    bin_dir: Path
    binaries: list[Binary]

    @property
    def complete(self) -> bool:
        return (self.bin_dir / COMPLETE).exists() and all((self.bin_dir / b.name).exists() for b in self.binaries)


def plan(source: Path | None = None) -> Plan:
    source = source or default_source()
    if not (source / "go.mod").exists() or not (source / "go.sum").exists():
        raise BuildError(
            f"no go.mod/go.sum in {source}: run from a Fulcrum checkout or set ${SOURCE_ENV} to hack/devcluster"
        )
    files = {str(p.relative_to(source)): p.read_text() for p in module_files(source)}
    versions: dict[str, str] = {}
    for name, text in files.items():
        if name.endswith("go.mod"):
            versions.update(module_versions(text))
    key = version_key(files)
    helm_client_go = module_versions(files.get("helm/go.mod", "")).get("k8s.io/client-go")
    return Plan(source, key, bin_root() / key, binaries(versions, helm_client_go))


def find_bin_dir(source: Path | None = None) -> Path | None:
    """The directory of complete binaries for the current pin, or None when they must be built."""
    try:
        p = plan(source)
    except BuildError:
        return None
    if not p.complete:
        return None
    mark_wanted(p.bin_dir)
    return p.bin_dir


def mark_wanted(bin_dir: Path) -> None:
    """Say that a checkout wants this pin now (its ``.wanted`` file's mtime), so pruning keeps it a while."""
    with contextlib.suppress(OSError):  # a read-only cache is used as it is
        (bin_dir / WANTED).touch()


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    root = go_root()
    env.update(
        {
            "GOCACHE": str(root / "build"),
            "GOMODCACHE": str(root / "mod"),
            "GOFLAGS": "-mod=readonly",
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
        }
    )
    return env


Reporter = Callable[[str, str, float], None]  # (binary, event: start|package|done, elapsed seconds)


def build(p: Plan, report: Reporter | None = None, force: bool = False) -> Path:
    """Build every binary of the plan serially; returns the bin dir. A no-op when already complete."""
    if p.complete and not force:
        mark_wanted(p.bin_dir)
        return p.bin_dir
    go = shutil.which("go")
    if go is None:
        raise BuildError("the `go` command is not on PATH: install Go >= 1.24 (https://go.dev/dl)")
    staging = p.bin_dir.with_name(p.bin_dir.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    env = go_env()
    for binary in p.binaries:
        target = staging / binary.name
        if target.exists() and not force:
            continue
        started = time.monotonic()
        if report:
            report(binary.name, "start", 0.0)
        ldflags = " ".join(("-s", "-w", *binary.ldflags))
        tags = [f"-tags={','.join(binary.tags)}"] if binary.tags else []
        cmd = [go, "build", "-v", "-trimpath", *tags, f"-ldflags={ldflags}", "-o", str(target) + ".tmp", binary.package]
        proc = subprocess.Popen(
            cmd, cwd=p.source / binary.module_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            tail = [*tail[-40:], line.rstrip()]
            if report:
                report(binary.name, "package", time.monotonic() - started)
        if proc.wait() != 0:
            raise BuildError(f"building {binary.name} ({binary.package}) failed:\n" + "\n".join(tail))
        os.replace(str(target) + ".tmp", target)
        if report:
            report(binary.name, "done", time.monotonic() - started)
    (staging / COMPLETE).write_text(p.key + "\n")
    (staging / WANTED).touch()
    if p.bin_dir.exists():
        shutil.rmtree(p.bin_dir)
    os.replace(staging, p.bin_dir)
    return p.bin_dir

"""Where ``fulcrum dev`` keeps binaries, certificates, state and logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "FULCRUM_DEV_HOME"


def cache_root() -> Path:
    """``~/.cache/fulcrum`` (honours ``XDG_CACHE_HOME``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fulcrum"


def default_home() -> Path:
    return cache_root() / "dev"


def bin_root() -> Path:
    return cache_root() / "bin"


def go_root() -> Path:
    """GOCACHE and GOMODCACHE live here so a second CI run reuses the compiled packages."""
    return cache_root() / "go"


def resolve_home(explicit: str | Path | None = None) -> Path:
    """``--home`` wins, then ``$FULCRUM_DEV_HOME``, then ``~/.cache/fulcrum/dev``."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return default_home()


@dataclass(frozen=True)
class DevHome:
    """The directory of one dev cluster; two homes are two independent clusters."""

    root: Path

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def config_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def run(self) -> Path:
        """One ``<component>.json`` per started process (pid, process group, command)."""
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def component_config(self) -> Path:
        return self.root / "config"

    def ensure(self) -> None:
        for path in (self.root, self.pki, self.run, self.logs, self.component_config):
            path.mkdir(parents=True, exist_ok=True)
        self.pki.chmod(0o700)


def disk_bytes(path: Path) -> int:
    """What the regular files under ``path`` take on disk (allocated blocks; 0 when it does not exist)."""
    total = 0
    if not path.exists():
        return 0
    for entry in path.rglob("*"):
        try:
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_blocks * 512
        except OSError:
            continue
    return total

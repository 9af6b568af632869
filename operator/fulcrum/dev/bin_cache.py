"""Pruning the Go binary cache: pins no checkout has wanted for a while leave ``~/.cache/fulcrum/bin``.

Each pin of ``hack/devcluster`` builds into a directory of its own (``bin/k8s-<release>-<hash>``, 600-850 MB:
:mod:`fulcrum.dev.build`), and any change to a go.mod, go.sum or Go source there is a new pin, so the cache only
grows. Asking for a pin's binaries (:func:`fulcrum.dev.build.find_bin_dir`, ``fulcrum dev bin-dir``, a build)
touches its directory's ``.wanted`` file, so that file's mtime says when the pin was last wanted. What stays, as
in the image cache (:mod:`fulcrum.dev.image_cache`): the current pin, the ``keep_newest`` most recently wanted
pins (another checkout, the previous commit), every pin wanted within ``keep_seconds`` (a cluster of another
checkout may be up on it) and every directory a running process was started from (``/proc/<pid>/exe``), however
old. A pin built before pins were marked is marked when pruning first sees it, so it goes only a whole
``keep_seconds`` later. Half-built ``.partial`` directories are a build in progress (or one to resume): never touched.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from fulcrum.dev.build import COMPLETE, WANTED, mark_wanted
from fulcrum.dev.paths import bin_root, disk_bytes

KEEP_NEWEST = 2  # the current pin and the one before it (or another checkout's)
KEEP_SECONDS = 6 * 3600.0  # anything wanted this recently may belong to a cluster that is up


@dataclass(frozen=True)
class CachedPin:
    """One complete binary directory and when a checkout last asked for it."""

    path: Path
    last_wanted: float | None  # None: never marked (built before pins were marked wanted)

    @property
    def key(self) -> str:
        return self.path.name


def stale_pins(
    cached: Iterable[CachedPin],
    current: str,
    in_use: Iterable[Path],
    *,
    now: float,
    keep_newest: int = KEEP_NEWEST,
    keep_seconds: float = KEEP_SECONDS,
) -> list[CachedPin]:
    """The directories to remove, oldest first. Pure."""
    used = set(in_use)
    newest_first = sorted(cached, key=lambda p: now if p.last_wanted is None else p.last_wanted, reverse=True)
    stale = [
        pin
        for rank, pin in enumerate(newest_first)
        if not (
            pin.key == current
            or pin.path in used
            or rank < keep_newest
            or pin.last_wanted is None  # its clock starts when pruning first sees it (see prune)
            or now - pin.last_wanted < keep_seconds
        )
    ]
    return sorted(stale, key=lambda p: p.last_wanted or now)


def cached_pins(root: Path | None = None) -> list[CachedPin]:
    """Every complete pin directory (``.complete``), last wanted as its ``.wanted`` says."""
    found: list[CachedPin] = []
    base = (root or bin_root()).resolve()
    if not base.is_dir():
        return found
    for entry in sorted(base.iterdir()):
        # a build in progress (.partial) and a removal in progress (hidden) are not pins
        if not entry.is_dir() or entry.is_symlink() or entry.name.endswith(".partial") or entry.name.startswith("."):
            continue
        if not (entry / COMPLETE).exists():
            continue
        try:
            found.append(CachedPin(entry, (entry / WANTED).stat().st_mtime))
        except OSError:
            found.append(CachedPin(entry, None))
    return found


def directories_in_use(root: Path | None = None, proc: Path = Path("/proc")) -> set[Path]:
    """The pin directories (under the resolved ``root``) that running processes were started from: a cluster that
    is up, whatever checkout started it and however long ago its pin was last asked for."""
    base = (root or bin_root()).resolve()
    used: set[Path] = set()
    for pid in proc.iterdir():
        if not pid.name.isdigit():
            continue
        try:
            exe = Path(os.readlink(pid / "exe").removesuffix(" (deleted)"))
        except OSError:  # gone meanwhile, a kernel thread, or not ours to read
            continue
        if exe.parent.parent == base:
            used.add(exe.parent)
    return used


@dataclass(frozen=True)
class PruneResult:
    removed: list[CachedPin]
    freed_bytes: int


def prune(
    current: str,
    *,
    root: Path | None = None,
    say: Callable[[str], None] = print,
    keep_newest: int = KEEP_NEWEST,
    keep_seconds: float = KEEP_SECONDS,
    dry_run: bool = False,
) -> PruneResult:
    """Remove the stale pin directories (see :func:`stale_pins`); ``current`` is this checkout's pin key."""
    base = (root or bin_root()).resolve()
    cached = cached_pins(base)
    if not dry_run:
        # a pin built before pins were marked may be another checkout's daily one: it goes only after a whole
        # keep_seconds from now without anyone asking for it
        for pin in cached:
            if pin.last_wanted is None:
                mark_wanted(pin.path)
    stale = stale_pins(
        cached,
        current,
        directories_in_use(base),
        now=time.time(),
        keep_newest=keep_newest,
        keep_seconds=keep_seconds,
    )
    if dry_run:
        return PruneResult(stale, 0)
    freed = 0
    for pin in stale:
        say(f"binary cache: removing {pin.key} (last wanted {_age(pin.last_wanted)} ago)")
        size = disk_bytes(pin.path)
        # renamed first, so no build or lookup ever sees a half-removed directory as a complete pin
        doomed = pin.path.with_name(f".{pin.key}.removing-{os.getpid()}")
        try:
            os.replace(pin.path, doomed)
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        freed += size
    return PruneResult(stale, freed)


def _age(then: float | None) -> str:
    if then is None:
        return "never marked"
    hours = (time.time() - then) / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"

"""Pruning the image cache: keys no checkout has used for a while leave the build storage and the registry store.

Every code change makes new image keys (:mod:`fulcrum.dev.images`), and each key of the builder image holds
gigabytes, so a cache that only grows fills a disk within days of work. A key's record
(``built/<name>-<key>.json``) is touched each time a checkout asks for it, so its mtime says when it was last
wanted. What stays: the keys the running checkout wants, the ``keep_newest`` most recently wanted keys of each
image (another checkout, the previous commit) and every key wanted within ``keep_seconds`` (a cluster of another
checkout that is up now). The rest is removed under the image build lock, so no push runs meanwhile: the tag
from the registry store, then the registry's own garbage collection deletes the blobs no tag references, and the
local image from buildah's storage (shared layers stay while a kept image uses them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fulcrum.dev import images
from fulcrum.dev.paths import disk_bytes

KEEP_NEWEST = 2  # per image: the current key and the one before it (or another checkout's)
KEEP_SECONDS = 6 * 3600.0  # anything wanted this recently may belong to a cluster that is up


@dataclass(frozen=True)
class CachedKey:
    """One built image key and when a checkout last asked for it (its record's mtime)."""

    name: str
    key: str
    last_wanted: float


def stale_keys(
    cached: Iterable[CachedKey],
    current: Mapping[str, str],
    *,
    now: float,
    keep_newest: int = KEEP_NEWEST,
    keep_seconds: float = KEEP_SECONDS,
) -> list[CachedKey]:
    """The keys to remove, oldest first. Pure."""
    by_name: dict[str, list[CachedKey]] = {}
    for entry in cached:
        by_name.setdefault(entry.name, []).append(entry)
    stale: list[CachedKey] = []
    for name, entries in by_name.items():
        newest_first = sorted(entries, key=lambda e: e.last_wanted, reverse=True)
        for rank, entry in enumerate(newest_first):
            kept = entry.key == current.get(name) or rank < keep_newest or now - entry.last_wanted < keep_seconds
            if not kept:
                stale.append(entry)
    return sorted(stale, key=lambda e: e.last_wanted)


def cached_keys(root: Path | None = None) -> list[CachedKey]:
    """Every key with a build record, as the records say (``built/<name>-<key>.json``)."""
    built = (root or images.images_root()) / "built"
    found: list[CachedKey] = []
    for record in sorted(built.glob("*.json")):
        try:
            data = json.loads(record.read_text())
            found.append(CachedKey(str(data["name"]), str(data["key"]), record.stat().st_mtime))
        except (OSError, ValueError, KeyError):
            continue
    return found


@dataclass(frozen=True)
class PruneResult:
    removed: list[CachedKey]
    freed_bytes: int  # what the registry store and buildah's storage shrank by together


def _collect_registry_garbage(store: Path) -> None:
    """The registry's own GC: blobs and manifests no tag references leave the store."""
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "registry.yml"
        document = json.loads(images.registry_config(store, "127.0.0.1:0", read_only=False))
        document["storage"]["delete"] = {"enabled": True}
        config.write_text(json.dumps(document))
        subprocess.run(
            ["docker-registry", "garbage-collect", "--delete-untagged", str(config)],
            capture_output=True,
            check=True,
        )


def prune(
    current: Mapping[str, str],
    *,
    say: images.Say = print,
    keep_newest: int = KEEP_NEWEST,
    keep_seconds: float = KEEP_SECONDS,
    dry_run: bool = False,
) -> PruneResult:
    """Remove the stale keys (see :func:`stale_keys`) from the registry store and buildah's storage."""
    root = images.images_root()
    with images.try_locked() as held:
        if not held:
            say("image cache: another image build holds the lock; pruning is left for the next run")
            return PruneResult([], 0)
        stale = stale_keys(
            cached_keys(root), current, now=time.time(), keep_newest=keep_newest, keep_seconds=keep_seconds
        )
        if not stale or dry_run:
            return PruneResult(stale, 0)
        store = images.registry_store()
        before = disk_bytes(store) + disk_bytes(root / "storage")
        for entry in stale:
            say(f"image cache: removing {entry.name}:{entry.key} (last wanted {_age(entry.last_wanted)} ago)")
            shutil.rmtree(images.tag_dir(entry.name, entry.key), ignore_errors=True)
            subprocess.run(
                ["buildah", *images.storage_args(), "rmi", f"localhost/{entry.name}:{entry.key}"],
                capture_output=True,
                check=False,  # gone already, or never built here (a record copied with the store)
            )
            images.record_path(entry.name, entry.key).unlink(missing_ok=True)
        if store.exists():
            _collect_registry_garbage(store)
        # layers of removed images that no other image uses (buildah --layers keeps intermediate images)
        subprocess.run(["buildah", *images.storage_args(), "rmi", "--prune"], capture_output=True, check=False)
        after = disk_bytes(store) + disk_bytes(root / "storage")
    return PruneResult(stale, max(0, before - after))


def _age(then: float) -> str:
    hours = (time.time() - then) / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"

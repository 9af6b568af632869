"""Which image keys the cache prunes, and that asking for a key counts as wanting it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fulcrum.dev import image_cache, images
from fulcrum.dev.image_cache import CachedKey, stale_keys

HOUR = 3600.0
NOW = 1_000_000.0


def key(name: str, key: str, hours_ago: float) -> CachedKey:
    return CachedKey(name, key, NOW - hours_ago * HOUR)


def test_old_keys_go_and_the_newest_two_of_each_image_stay() -> None:
    cached = [key("fulcrum-builder", k, h) for k, h in (("a", 100), ("b", 50), ("c", 30), ("d", 20))]
    cached += [key("fulcrum", "x", 90)]
    stale = stale_keys(cached, {}, now=NOW, keep_newest=2, keep_seconds=6 * HOUR)
    assert [(e.name, e.key) for e in stale] == [("fulcrum-builder", "a"), ("fulcrum-builder", "b")]


def test_the_current_key_stays_however_old() -> None:
    cached = [key("fulcrum", k, h) for k, h in (("old", 500), ("b", 50), ("c", 30))]
    stale = stale_keys(cached, {"fulcrum": "old"}, now=NOW, keep_newest=1, keep_seconds=HOUR)
    assert [e.key for e in stale] == ["b"]


def test_a_key_wanted_recently_stays_beyond_the_newest() -> None:
    """Another checkout's cluster may be up with it."""
    cached = [key("fulcrum", k, h) for k, h in (("a", 5), ("b", 4), ("c", 3), ("d", 30))]
    stale = stale_keys(cached, {}, now=NOW, keep_newest=1, keep_seconds=6 * HOUR)
    assert [e.key for e in stale] == ["d"]


def test_nothing_is_stale_in_an_empty_or_young_cache() -> None:
    assert stale_keys([], {}, now=NOW) == []
    assert stale_keys([key("pause", "p", 0.1)], {}, now=NOW, keep_newest=0) == []


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return images.images_root()


def record(cache: Path, name: str, key: str, mtime: float, *, pushed: bool = True) -> Path:
    path = cache / "built" / f"{name}-{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    built = images.BuiltImage(name, key, images.image_ref(name, key), 1, 1, 1.0)
    path.write_text(json.dumps(built.__dict__))
    os.utime(path, (mtime, mtime))
    if pushed:
        link = images.registry_store() / "docker/registry/v2/repositories" / name / "_manifests/tags" / key
        (link / "current").mkdir(parents=True)
        (link / "current/link").write_text("sha256:0")
    return path


def test_records_are_read_with_when_they_were_last_wanted(cache: Path) -> None:
    record(cache, "fulcrum-builder", "k1", 1000.0)
    record(cache, "fulcrum", "k2", 2000.0)
    (cache / "built" / "broken-k3.json").write_text("{not json")
    found = {(e.name, e.key): e.last_wanted for e in image_cache.cached_keys()}
    assert found == {("fulcrum-builder", "k1"): 1000.0, ("fulcrum", "k2"): 2000.0}


def test_asking_for_a_built_image_marks_it_wanted(cache: Path) -> None:
    path = record(cache, "fulcrum", "k1", 1000.0)
    assert images.built("fulcrum", "k1") is not None
    assert path.stat().st_mtime > 1000.0
    missing = record(cache, "fulcrum", "k2", 1000.0, pushed=False)
    assert images.built("fulcrum", "k2") is None  # a record whose tag left the store is not an image
    assert missing.stat().st_mtime == 1000.0


def test_a_dry_run_names_the_stale_keys_and_removes_nothing(cache: Path) -> None:
    old = record(cache, "fulcrum", "old", 1000.0)
    for k in ("b", "c"):
        record(cache, "fulcrum", k, 2000.0)
    result = image_cache.prune({"fulcrum": "c"}, say=lambda _m: None, dry_run=True)
    assert [(e.name, e.key) for e in result.removed] == [("fulcrum", "old")]
    assert old.exists()

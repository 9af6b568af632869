"""Which pin directories the binary cache prunes, and that asking for a pin counts as wanting it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulcrum.dev import bin_cache, build
from fulcrum.dev.bin_cache import CachedPin, stale_pins

HOUR = 3600.0
NOW = 1_000_000.0
ROOT = Path("/cache/bin")


def pin(key: str, hours_ago: float | None) -> CachedPin:
    return CachedPin(ROOT / key, None if hours_ago is None else NOW - hours_ago * HOUR)


def keys(pins: list[CachedPin]) -> list[str]:
    return [p.key for p in pins]


def test_old_pins_go_oldest_first_and_the_newest_two_stay() -> None:
    cached = [pin(k, h) for k, h in (("b", 50), ("a", 100), ("c", 30), ("d", 20))]
    assert keys(stale_pins(cached, "", set(), now=NOW, keep_newest=2, keep_seconds=6 * HOUR)) == ["a", "b"]


def test_the_current_pin_stays_however_old() -> None:
    cached = [pin(k, h) for k, h in (("old", 500), ("b", 50), ("c", 30))]
    assert keys(stale_pins(cached, "old", set(), now=NOW, keep_newest=1, keep_seconds=HOUR)) == ["b"]


def test_a_pin_a_running_process_was_started_from_stays_however_old() -> None:
    cached = [pin(k, h) for k, h in (("up", 500), ("b", 50), ("c", 30))]
    assert keys(stale_pins(cached, "c", {ROOT / "up"}, now=NOW, keep_newest=1, keep_seconds=HOUR)) == ["b"]


def test_a_pin_wanted_recently_stays_beyond_the_newest() -> None:
    cached = [pin(k, h) for k, h in (("a", 5), ("b", 4), ("c", 3), ("d", 30))]
    assert keys(stale_pins(cached, "", set(), now=NOW, keep_newest=1, keep_seconds=6 * HOUR)) == ["d"]


def test_nothing_is_stale_in_an_empty_or_young_or_never_marked_cache() -> None:
    assert stale_pins([], "", set(), now=NOW) == []
    assert stale_pins([pin("p", 0.1)], "", set(), now=NOW, keep_newest=0) == []
    assert stale_pins([pin("p", None)], "", set(), now=NOW, keep_newest=0, keep_seconds=0) == []


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = tmp_path / "fulcrum" / "bin"
    root.mkdir(parents=True)
    return root


def pin_dir(root: Path, key: str, *, completed: float, wanted: float | None = None) -> Path:
    path = root / key
    path.mkdir()
    (path / "kubectl").write_bytes(b"\0" * 4096)
    (path / build.COMPLETE).write_text(key + "\n")
    os.utime(path / build.COMPLETE, (completed, completed))
    if wanted is not None:
        (path / build.WANTED).touch()
        os.utime(path / build.WANTED, (wanted, wanted))
    return path


def test_pins_are_read_with_when_they_were_last_wanted(cache: Path) -> None:
    pin_dir(cache, "k8s-v1-aaa", completed=1000.0, wanted=5000.0)
    pin_dir(cache, "k8s-v1-bbb", completed=2000.0)  # built before pins were marked wanted
    (cache / "k8s-v1-ccc.partial").mkdir()  # a build in progress
    (cache / "k8s-v1-ddd").mkdir()  # not complete: no marker at all
    found = {p.key: p.last_wanted for p in bin_cache.cached_pins()}
    assert found == {"k8s-v1-aaa": 5000.0, "k8s-v1-bbb": None}


def test_a_pin_never_marked_stays_and_its_clock_starts_when_pruning_first_sees_it(cache: Path) -> None:
    """It may be another checkout's daily pin, built before pins were marked: its .complete says nothing."""
    unmarked = pin_dir(cache, "k8s-v1-unmarked", completed=1000.0)
    pin_dir(cache, "k8s-v1-current", completed=1000.0, wanted=1000.0)
    assert bin_cache.prune("k8s-v1-current", keep_newest=0, keep_seconds=HOUR, dry_run=True).removed == []
    assert not (unmarked / build.WANTED).exists()  # a dry run writes nothing
    seen = time.time()
    assert bin_cache.prune("k8s-v1-current", keep_newest=0, keep_seconds=HOUR).removed == []
    assert (unmarked / build.WANTED).stat().st_mtime >= seen - 1
    cached = bin_cache.cached_pins()
    later = bin_cache.stale_pins(cached, "k8s-v1-current", set(), now=seen + 2 * HOUR, keep_newest=0, keep_seconds=HOUR)
    assert keys(later) == ["k8s-v1-unmarked"]


def test_asking_for_the_current_pin_marks_it_wanted(cache: Path) -> None:
    plan = build.plan()
    plan.bin_dir.mkdir()
    for binary in plan.binaries:
        (plan.bin_dir / binary.name).touch()
    (plan.bin_dir / build.COMPLETE).write_text(plan.key)
    asked = time.time()
    assert build.find_bin_dir() == plan.bin_dir
    assert (plan.bin_dir / build.WANTED).stat().st_mtime >= asked - 1


@pytest.fixture
def running_from(cache: Path) -> Iterator[Path]:
    """A process started from a binary in an old pin's directory (as a cluster that is up is)."""
    path = pin_dir(cache, "k8s-v1-running", completed=1000.0, wanted=1000.0)
    sleep = shutil.which("sleep")
    assert sleep is not None
    exe = path / "sleep"
    shutil.copy(sleep, exe)  # a copy: /proc/<pid>/exe names the file run, after symlinks
    process = subprocess.Popen([str(exe), "60"])
    try:
        yield path
    finally:
        process.kill()
        process.wait()


def test_prune_removes_only_stale_pins_and_never_one_in_use(cache: Path, running_from: Path) -> None:
    old = pin_dir(cache, "k8s-v1-old", completed=1000.0, wanted=2000.0)
    older = pin_dir(cache, "k8s-v1-older", completed=1000.0, wanted=1000.0)
    current = pin_dir(cache, "k8s-v1-current", completed=500.0, wanted=500.0)
    newest = pin_dir(cache, "k8s-v1-newest", completed=3000.0, wanted=3000.0)
    assert bin_cache.directories_in_use() == {running_from.resolve()}

    dry = bin_cache.prune("k8s-v1-current", keep_newest=1, keep_seconds=HOUR, dry_run=True)
    assert keys(dry.removed) == ["k8s-v1-older", "k8s-v1-old"] and dry.freed_bytes == 0
    assert old.exists() and older.exists()

    said: list[str] = []
    result = bin_cache.prune("k8s-v1-current", keep_newest=1, keep_seconds=HOUR, say=said.append)
    assert keys(result.removed) == ["k8s-v1-older", "k8s-v1-old"]
    assert result.freed_bytes >= 2 * 4096
    assert not old.exists() and not older.exists()
    assert current.exists() and newest.exists() and running_from.exists()
    assert sorted(p.name for p in cache.iterdir()) == ["k8s-v1-current", "k8s-v1-newest", "k8s-v1-running"]
    assert len(said) == 2 and "k8s-v1-older" in said[0]

"""Start, find and stop the processes of a dev cluster.

Each started process is a session leader (its own process group) recorded as
``run/<name>.json``; every process also carries ``FULCRUM_DEV_CLUSTER=<home>`` in its environment,
inherited by its children, so :func:`sweep` can find anything left behind even after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CLUSTER_ENV = "FULCRUM_DEV_CLUSTER"
KILL_WAIT_SECONDS = 10.0  # how long a SIGKILLed process may take to be gone


@dataclass(frozen=True)
class ProcRecord:
    name: str
    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: tells a reused pid from ours
    argv: list[str]
    log: str


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process, or None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def start_ticks(pid: int) -> int:
    stat = _stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return stat[1]


def is_alive(pid: int, start_ticks: int | None = None) -> bool:
    stat = _stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        _reap(pid)
        return False
    return start_ticks is None or stat[1] == start_ticks


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def start(
    run_dir: Path, name: str, argv: list[str], *, log: Path, env: dict[str, str], cwd: Path | None = None
) -> ProcRecord:
    """Start ``argv`` detached (new session), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    stat = _stat(proc.pid)
    record = ProcRecord(name, proc.pid, stat[1] if stat else 0, argv, str(log))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / f"{name}.json").write_text(json.dumps(asdict(record)))
    return record


def load(run_dir: Path, name: str) -> ProcRecord | None:
    path = run_dir / f"{name}.json"
    try:
        return ProcRecord(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def records(run_dir: Path) -> list[ProcRecord]:
    found = []
    for path in sorted(run_dir.glob("*.json")):
        rec = load(run_dir, path.stem)
        if rec is not None:
            found.append(rec)
    return found


def running(record: ProcRecord | None) -> bool:
    return record is not None and is_alive(record.pid, record.start_ticks)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def stop(record: ProcRecord, grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    if running(record):
        _signal_group(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (running(record) or _group_members(record.pid)):
            time.sleep(0.1)
    if running(record) or _group_members(record.pid):
        _signal_group(record.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (running(record) or _group_members(record.pid)):
            time.sleep(0.05)
    _reap(record.pid)


def forget(run_dir: Path, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (run_dir / f"{name}.json").unlink()


def tagged_pids(home: Path, key: str = CLUSTER_ENV) -> list[int]:
    """Processes whose environment says they belong to the cluster at ``home``."""
    needle = f"{key}={home}".encode()
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def sweep(home: Path, grace: float = 5.0, key: str = CLUSTER_ENV) -> list[int]:
    """Kill every process still tagged with ``home``; returns the pids that were found."""
    pids = tagged_pids(home, key)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if is_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    # SIGKILL is not instant on a loaded machine: return only once they are gone (reaped when they are ours)
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while any(is_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        _reap(pid)
    return pids


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0

"""One container = one local process group, output to a log file per restart."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LaunchSpec:
    argv: list[str]  # already wrapped into the pod's network namespace
    env: dict[str, str]
    cwd: str
    log: Path


class ContainerProcess:
    def __init__(self, spec: LaunchSpec) -> None:
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        cwd = Path(spec.cwd)
        cwd.mkdir(parents=True, exist_ok=True)
        with open(spec.log, "ab") as out:
            self.proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=spec.env,
                cwd=str(cwd),
                start_new_session=True,
                close_fds=True,
            )
        self.log = spec.log
        self.started = time.time()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        """The exit code (128+signal for a signal, like a container runtime) or None while running."""
        code = self.proc.poll()
        if code is None:
            return None
        return 128 - code if code < 0 else code

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, grace: float) -> int:
        """SIGTERM the group, SIGKILL after ``grace`` seconds; returns the exit code."""
        if self.poll() is None:
            self.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + max(grace, 0.0)
            while time.monotonic() < deadline and self.poll() is None:
                time.sleep(0.05)
        # the group may outlive its leader (children of a shell): kill what is left
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        code = self.poll()
        return code if code is not None else 137


def run_to_exit(argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> int:
    """Run a probe command; exit code, or 1 on timeout."""
    try:
        proc = subprocess.run(
            argv, env=env, cwd=cwd, capture_output=True, timeout=timeout, check=False, start_new_session=True
        )
    except subprocess.TimeoutExpired:
        return 1
    return proc.returncode

"""``python -m fulcrum.dev.watchdog --home DIR --pid PID --ticks T``: take a cluster down when its owner dies.

The pytest fixture starts a cluster that must not outlive the test session, even when pytest is killed
(a CI timeout, SIGKILL) and never reaches its teardown. This small detached process polls the owner and
runs ``fulcrum dev down`` for the home once the owner is gone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fulcrum.dev import cluster, procs
from fulcrum.dev.paths import DevHome

POLL = 1.0


def watch(home: DevHome, pid: int, ticks: int) -> None:
    while procs.is_alive(pid, ticks):
        time.sleep(POLL)
    cluster.down(home, say=lambda _m: None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m fulcrum.dev.watchdog")
    parser.add_argument("--home", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--ticks", type=int, required=True)
    args = parser.parse_args()
    watch(DevHome(Path(args.home)), args.pid, args.ticks)

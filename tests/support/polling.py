"""Waiting in tests: poll with a generous timeout and fail with what was last seen (never a speed assertion)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout: float = 180.0,
    every: float = 1.0,
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    """Poll ``probe()`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    detail = f"\n{on_timeout()}" if on_timeout else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last observation: {last!r}{detail}")

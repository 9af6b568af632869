"""A de-duplicating work queue with per-key exponential backoff, like client-go's rate-limited queue.

A key is processed by one worker at a time; a key enqueued while it is processed runs again afterwards.
Failures back off per key (1 s doubling to 5 min), so one bad object never starves the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")

BACKOFF_START = 1.0
BACKOFF_MAX = 300.0


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, key)

    def backoff(self, key: K) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return float(min(BACKOFF_MAX, BACKOFF_START * 2.0 ** (failures - 1)))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return self._queue.qsize()

    async def run_worker(
        self, handle: Callable[[K], Awaitable[float | None]], on_error: Callable[[K, Exception], None]
    ) -> None:
        """Process keys forever. ``handle`` returns seconds until the key should be looked at again, or None."""
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            started = time.monotonic()
            try:
                again = await handle(key)
                self.forget(key)
                if again is not None:
                    self.add_after(key, again)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad object must never stop the others
                on_error(key, exc)
                self.add_after(key, self.backoff(key))
            finally:
                self._active.discard(key)
                del started
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)

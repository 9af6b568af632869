"""A de-duplicating work queue with delayed adds and per-key exponential backoff, like client-go's workqueue.

- A key is queued at most once, and processed by one worker at a time; a key added while it is processed runs
  again afterwards (it is "dirty").
- A delayed add keeps **one pending timer per key**, the earliest: asking for a key in 15 s a hundred times
  (each event's reconcile asks for the next control tick) leaves one timer, so the rate of reconciles of one
  object never grows with its events.
- Failures back off per key (1 s doubling to 5 min), so one bad object never starves the others.
- Delays use the monotonic clock: a wall-clock step (NTP, a VM resumed) never fires or starves timers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

BACKOFF_START = 1.0
BACKOFF_MAX = 300.0


class WorkQueue(Generic[K]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}  # key -> (due, its one pending timer)
        self.adds = 0
        """Keys handed to workers so far (for tests and the operator's own metrics)."""

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds; an earlier pending add of the same key wins, a later one is moved up."""
        if delay <= 0:
            self.add(key)
            return
        due = self._clock() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        handle = asyncio.get_running_loop().call_later(delay, self._fire, key)
        self._timers[key] = (due, handle)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def pending(self, key: K) -> float | None:
        """Seconds until the pending delayed add of ``key`` fires, or None."""
        timer = self._timers.get(key)
        return None if timer is None else max(0.0, timer[0] - self._clock())

    def backoff(self, key: K) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return float(min(BACKOFF_MAX, BACKOFF_START * 2.0 ** (failures - 1)))

    def forget(self, key: K) -> None:
        """The key succeeded: its backoff starts again from the beginning."""
        self._failures.pop(key, None)

    def drop(self, key: K) -> None:
        """The object is gone: forget its backoff and its pending timer (a queued add still runs, and finds it gone)."""
        self.forget(key)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    def __len__(self) -> int:
        return self._queue.qsize()

    @property
    def timers(self) -> int:
        return len(self._timers)

    def close(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    async def run_worker(
        self, handle: Callable[[K], Awaitable[float | None]], on_error: Callable[[K, Exception], float | None]
    ) -> None:
        """Process keys forever.

        ``handle`` returns seconds until the key should be looked at again, or None. ``on_error`` returns the delay
        before a retry, or None for the key's exponential backoff.
        """
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            self.adds += 1
            try:
                again = await handle(key)
                self.forget(key)
                if again is not None:
                    self.add_after(key, again)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad object must never stop the others
                delay = on_error(key, exc)
                self.add_after(key, self.backoff(key) if delay is None else delay)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)

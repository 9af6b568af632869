"""The work queue: de-duplication, one pending timer per key, per-key backoff, dirty keys run again."""

from __future__ import annotations

import asyncio

import pytest

from fulcrum.controller.queue import BACKOFF_MAX, WorkQueue


def _pending_timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timers the event loop holds (CPython keeps them in ``_scheduled``): what the queue has armed."""
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]  # CPython's, not typed
    return sum(1 for handle in scheduled if not handle.cancelled())


def test_a_key_added_twice_is_processed_once() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        seen: list[str] = []

        async def handle(key: str) -> float | None:
            seen.append(key)
            return None

        for key in ("a", "a", "b", "a"):
            queue.add(key)
        worker = asyncio.create_task(queue.run_worker(handle, lambda _k, _e: None))
        await asyncio.sleep(0.05)
        worker.cancel()
        return seen

    assert sorted(asyncio.run(scenario())) == ["a", "b"]


def test_delayed_adds_keep_one_timer_per_key_the_earliest() -> None:
    async def scenario() -> tuple[int, int, float | None, float | None]:
        loop = asyncio.get_running_loop()
        queue: WorkQueue[str] = WorkQueue()
        before = _pending_timers(loop)
        for _ in range(100):  # 100 events, each asking for the next tick
            queue.add_after("md", 15.0)
        many = _pending_timers(loop) - before
        queue.add_after("md", 5.0)  # sooner: moves the one timer up
        sooner = queue.pending("md")
        queue.add_after("md", 60.0)  # later: changes nothing
        later = queue.pending("md")
        queue.add_after("other", 1.0)
        total = _pending_timers(loop) - before
        queue.close()
        return many, total, sooner, later

    many, total, sooner, later = asyncio.run(scenario())
    assert many == 1
    assert total == 2
    assert sooner is not None and sooner <= 5.0
    assert later is not None and later <= 5.0


def test_the_rate_of_reconciles_does_not_grow_with_events() -> None:
    """Each reconcile asks to be looked at again after a tick; events in between must not multiply the ticks.

    Before the fix every reconcile left its own timer, so after 40 events 40 timers re-armed themselves forever.
    """
    tick = 0.05

    async def scenario() -> int:
        queue: WorkQueue[str] = WorkQueue()
        runs = 0

        async def handle(_key: str) -> float:
            nonlocal runs
            runs += 1
            return tick

        worker = asyncio.create_task(queue.run_worker(handle, lambda _k, _e: None))
        for _ in range(40):  # 40 events, a little apart, so each runs its own reconcile
            queue.add("md")
            await asyncio.sleep(0.005)
        await asyncio.sleep(2 * tick)
        runs = 0
        await asyncio.sleep(10 * tick)  # ten ticks without events
        after_events = runs
        worker.cancel()
        queue.close()
        return after_events

    # at most one reconcile per tick (a slow machine only makes fewer); before the fix it was about 40 per tick
    assert asyncio.run(scenario()) <= 12


def test_a_key_added_while_processed_runs_again_afterwards() -> None:
    async def scenario() -> int:
        queue: WorkQueue[str] = WorkQueue()
        runs = 0
        release = asyncio.Event()

        async def handle(_key: str) -> float | None:
            nonlocal runs
            runs += 1
            if runs == 1:
                await release.wait()
            return None

        worker = asyncio.create_task(queue.run_worker(handle, lambda _k, _e: None))
        queue.add("md")
        await asyncio.sleep(0.01)
        queue.add("md")  # while the first run waits: dirty
        queue.add("md")
        release.set()
        await asyncio.sleep(0.05)
        worker.cancel()
        return runs

    assert asyncio.run(scenario()) == 2


def test_failures_back_off_per_key_and_success_resets() -> None:
    queue: WorkQueue[str] = WorkQueue()
    assert [queue.backoff("bad") for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert queue.backoff("good") == 1.0
    for _ in range(20):
        queue.backoff("bad")
    assert queue.backoff("bad") == BACKOFF_MAX
    queue.forget("bad")
    assert queue.backoff("bad") == 1.0


def test_a_failing_key_is_retried_with_the_delay_the_error_handler_asks_for() -> None:
    async def scenario() -> tuple[list[str], float | None]:
        queue: WorkQueue[str] = WorkQueue()
        errors: list[str] = []

        async def handle(_key: str) -> float | None:
            raise RuntimeError("boom")

        def on_error(key: str, exc: Exception) -> float | None:
            errors.append(f"{key}: {exc}")
            return 30.0

        worker = asyncio.create_task(queue.run_worker(handle, on_error))
        queue.add("md")
        await asyncio.sleep(0.02)
        worker.cancel()
        pending = queue.pending("md")
        queue.close()
        return errors, pending

    errors, pending = asyncio.run(scenario())
    assert errors == ["md: boom"]
    assert pending == pytest.approx(30.0, abs=1.0)


def test_dropping_a_key_cancels_its_timer() -> None:
    async def scenario() -> float | None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add_after("md", 10.0)
        queue.drop("md")
        return queue.pending("md")

    assert asyncio.run(scenario()) is None

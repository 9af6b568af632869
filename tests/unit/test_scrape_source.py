"""ScrapeSource over real HTTP: a pod's counters are kept under the pod, never under its address.

Pod IPs are reused: a new pod that gets the address of a deleted one must start its own counter history. Keyed
by address, the new pod's small counter read as a reset of the old pod's large one and the fleet's 20 rps came
out as about 8 rps (what the observe branch measured on the dev cluster).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from fulcrum.metrics.sources import Reading, ScrapeSource, Target

RPS = 20.0


def triton_text(success: float) -> str:
    """The ``echo`` model's series as tritonserver 2.51 writes them (tests/data/triton-2.51-metrics.txt)."""
    return (
        f'nv_inference_request_success{{model="echo",version="1"}} {success:.0f}\n'
        'nv_inference_request_failure{model="echo",reason="OTHER",version="1"} 0\n'
        f'nv_inference_request_duration_us{{model="echo",version="1"}} {success * 4000:.0f}\n'
        f'nv_inference_queue_duration_us{{model="echo",version="1"}} {success * 300:.0f}\n'
        'nv_inference_request_summary_us{model="echo",version="1",quantile="0.99"} 5778\n'
    )


async def serve(counter: dict[str, float]) -> tuple[web.AppRunner, str]:
    """One address whose /metrics answers with ``counter["success"]`` (the pod behind it can change)."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=triton_text(counter["success"]))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/metrics"


def run(scenario: Callable[[str, dict[str, float]], Awaitable[list[Reading]]]) -> list[Reading]:
    async def main() -> list[Reading]:
        counter = {"success": 0.0}
        runner, url = await serve(counter)
        try:
            return await scenario(url, counter)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_a_new_pod_on_a_deleted_pods_address_starts_its_own_counters() -> None:
    """ranker-a served 20 rps for a long time (a large counter) and went; ranker-b got its IP and serves the same
    20 rps from a zero counter. The window holds both pods' increases: the rate stays 20 rps."""
    now = [1000.0]

    async def scenario(url: str, counter: dict[str, float]) -> list[Reading]:
        source = ScrapeSource(window_seconds=60, min_span_seconds=10, clock=lambda: now[0], wall=lambda: now[0])
        key = ("shop", "ranker")
        readings = []
        a, b = Target("ranker-a", url, uid="uid-a"), Target("ranker-b", url, uid="uid-b")
        counter["success"] = 50_000.0  # a has served for hours
        for _ in range(3):  # t = 1000, 1015, 1030
            readings.append(await source.observe(key, [a], "echo", 99))
            now[0] += 15
            counter["success"] += RPS * 15
        # a is deleted; b is created with a's address and counts from zero
        counter["success"] = RPS * 5
        now[0] += 5 - 15
        for _ in range(4):  # t = 1035, 1050, 1065, 1080
            readings.append(await source.observe(key, [b], "echo", 99))
            now[0] += 15
            counter["success"] += RPS * 15
        return readings

    readings = run(scenario)
    last = readings[-1]
    assert last.metrics is not None, last.message
    # over 1015..1080: a's 300 requests up to its last scrape and b's 900 since its first, over one span (b's
    # first 5 s are its baseline). Keyed by address, b's 1000 read as a reset of a's 50600: 1000 / 65 = 15.4 rps
    assert last.metrics.requests_per_second == pytest.approx((300 + 900) / 65), last
    assert last.metrics.requests_per_second == pytest.approx(RPS, rel=0.1)


def test_the_same_pod_name_with_a_new_uid_is_a_new_pod() -> None:
    """A pod recreated under the same name (a StatefulSet-like name, or a test) is another process: its counters
    start from zero and must not be read against the old process's."""
    now = [0.0]

    async def scenario(url: str, counter: dict[str, float]) -> list[Reading]:
        source = ScrapeSource(window_seconds=60, min_span_seconds=10, clock=lambda: now[0], wall=lambda: now[0])
        key = ("shop", "ranker")
        old, new = Target("ranker-0", url, uid="old"), Target("ranker-0", url, uid="new")
        counter["success"] = 500.0
        readings = [await source.observe(key, [old], "echo", 99)]
        now[0] += 15
        counter["success"] += RPS * 15
        readings.append(await source.observe(key, [old], "echo", 99))
        counter["success"] = 0.0  # recreated
        for _ in range(3):
            now[0] += 15
            counter["success"] += RPS * 15
            readings.append(await source.observe(key, [new], "echo", 99))
        return readings

    last = run(scenario)[-1]
    assert last.metrics is not None, last.message
    # the old process's 300 and the new one's 600 since its first scrape, over 60 s. Read as one history, the new
    # counter (900) continued the old one (500): 400 requests, 6.7 rps
    assert last.metrics.requests_per_second == pytest.approx((300 + 600) / 60), last


def test_a_pod_keeps_its_history_when_its_address_changes_in_the_slice() -> None:
    """The key is the pod: the same pod (same uid) read at a new URL continues its own history."""
    now = [0.0]

    async def scenario(url: str, counter: dict[str, float]) -> list[Reading]:
        source = ScrapeSource(window_seconds=60, min_span_seconds=10, clock=lambda: now[0], wall=lambda: now[0])
        key = ("shop", "ranker")
        readings = []
        for target_url in (url, url, url.replace("127.0.0.1", "localhost")):
            now[0] += 15
            counter["success"] += RPS * 15
            readings.append(await source.observe(key, [Target("ranker-a", target_url, uid="a")], "echo", 99))
        return readings

    last = run(scenario)[-1]
    # keyed by address, the pod would be new at the second address: its rate left out, the reading incomplete
    assert last.metrics is not None and last.complete, last.message
    assert last.metrics.requests_per_second == pytest.approx(RPS)
    assert last.metrics.window_seconds == 30.0


@pytest.mark.parametrize(("window", "seen"), [(None, 100.0), (60.0, (3 * 10 + 100) / 4)])
def test_a_step_in_the_load_shows_in_full_at_the_next_tick(window: float | None, seen: float) -> None:
    """10 rps for a minute, then 100 rps for one 15 s tick. The default window (15 s, what the simulated policy
    sees) reads the step whole at the next tick; a minute's window reads a quarter of it, and three more ticks
    pass before the policy sees the whole burst."""
    now = [0.0]

    async def scenario(url: str, counter: dict[str, float]) -> list[Reading]:
        source = ScrapeSource(clock=lambda: now[0], wall=lambda: now[0])
        if window is not None:
            source.window_seconds = window
        key, pod = ("shop", "ranker"), Target("ranker-0", url, uid="a")
        readings = [await source.observe(key, [pod], "echo", 99)]
        for rps in (10.0, 10.0, 10.0, 10.0, 100.0):
            now[0] += 15
            counter["success"] += rps * 15
            readings.append(await source.observe(key, [pod], "echo", 99))
        return readings

    readings = run(scenario)
    before, after = readings[-2].metrics, readings[-1].metrics
    assert before is not None and after is not None, readings[-1].message
    assert before.requests_per_second == pytest.approx(10.0)
    assert after.requests_per_second == pytest.approx(seen)
    assert after.window_seconds == (window or 15.0)


def test_a_tick_longer_than_the_window_reads_over_the_whole_tick() -> None:
    """Ticks every 40 s with the default 15 s window: the baseline is the previous scrape, nothing is lost."""
    now = [0.0]

    async def scenario(url: str, counter: dict[str, float]) -> list[Reading]:
        source = ScrapeSource(clock=lambda: now[0], wall=lambda: now[0])
        key, pod = ("shop", "ranker"), Target("ranker-0", url, uid="a")
        readings = [await source.observe(key, [pod], "echo", 99)]
        for _ in range(3):
            now[0] += 40
            counter["success"] += RPS * 40
            readings.append(await source.observe(key, [pod], "echo", 99))
        return readings

    last = run(scenario)[-1]
    assert last.metrics is not None and last.complete, last.message
    assert last.metrics.window_seconds == 40.0
    assert last.metrics.requests_per_second == pytest.approx(RPS)

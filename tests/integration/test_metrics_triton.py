"""The metrics pipeline against the real bundled tritonserver under real open-loop load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fulcrum import local_triton
from fulcrum.loadgen.generator import Schedule, run_load
from fulcrum.metrics.sources import Reading, ScrapeSource, Target
from tests.support.echo_model import write_echo_repository

pytestmark = pytest.mark.integration


def test_scraped_rate_and_latency_agree_with_the_load_generator(tmp_path: Path) -> None:
    repo = write_echo_repository(tmp_path / "repo", delay_ms=2)
    with local_triton.start(repo) as server:
        server.wait_ready(90)
        base = f"http://127.0.0.1:{server.http_port}"
        source = ScrapeSource(window_seconds=60, min_span_seconds=2)  # the load runs 6 s
        key = ("ns", "echo")

        log: list[tuple[float, float | None, str]] = []

        triton = Target("echo-0", server.metrics_url)
        dead = Target("echo-1", "http://127.0.0.1:9/metrics")  # a ready pod whose metrics cannot be reached

        async def scenario() -> tuple[list[float], list[Reading]]:
            readings = [await source.observe(key, [triton], "echo", 99)]  # only a baseline: unknown

            async def endpoints() -> list[str]:
                return [base]

            _, intervals = await run_load(
                Schedule([0], [40], 6), endpoints, model="echo", interval_seconds=6, request_log=log
            )
            readings.append(await source.observe(key, [triton], "echo", 99))
            readings.append(await source.observe(key, [triton, dead], "echo", 99))  # one miss: a lower bound
            readings.append(await source.observe(key, [triton, dead], "echo", 99))  # two in a row: a failure
            readings.append(await source.observe(key, [dead], "echo", 99))  # nothing answers: unknown
            await source.close()
            return intervals[0].latencies_ms, readings

        began = time.time()
        latencies, (baseline, whole, missed, failing, silent) = asyncio.run(scenario())
    assert baseline.metrics is None and baseline.reason == "Collecting" and baseline.healthy is None
    metrics = whole.metrics
    assert metrics is not None and whole.complete and whole.healthy is True and whole.reason == "MetricsAvailable"
    served = len(latencies)
    assert served > 100
    # the server counted every request the generator completed
    assert metrics.requests_per_second * metrics.window_seconds == pytest.approx(served, abs=2)
    # the server's own p99 (no network, no client) cannot exceed what the client saw end to end
    client_p99 = sorted(latencies)[int(0.99 * (served - 1))]
    assert metrics.latency_ms is not None and 0 < metrics.latency_ms <= client_p99 * 1.05
    # a ready pod that does not answer: the rate is a lower bound (complete=False), and named
    assert missed.metrics is not None and missed.metrics.pods_reporting == 1 and not missed.complete
    assert missed.healthy is True and "echo-1" in missed.message
    assert failing.metrics is not None and not failing.complete and failing.healthy is False
    assert failing.reason == "ScrapeFailed" and "pod echo-1 (http://127.0.0.1:9/metrics)" in failing.message
    # no pod answers: no figures at all (unknown, never zero load)
    assert silent.metrics is None and silent.reason == "ScrapeFailed" and silent.healthy is False
    # the request log has every request, sent within the run, with the same latencies
    assert sorted(ms for _, ms, _ in log if ms is not None) == sorted(latencies)
    assert all(began <= sent <= began + 30 and endpoint == base for sent, _, endpoint in log)

"""The metrics pipeline against the real bundled tritonserver under real open-loop load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fulcrum import local_triton
from fulcrum.loadgen.generator import Schedule, run_load
from fulcrum.metrics.sources import ScrapeSource
from tests.support.echo_model import write_echo_repository

pytestmark = pytest.mark.integration


def test_scraped_rate_and_latency_agree_with_the_load_generator(tmp_path: Path) -> None:
    repo = write_echo_repository(tmp_path / "repo", delay_ms=2)
    with local_triton.start(repo) as server:
        server.wait_ready(90)
        base = f"http://127.0.0.1:{server.http_port}"
        source = ScrapeSource(window_seconds=60)
        key = ("ns", "echo")

        log: list[tuple[float, float | None, str]] = []

        async def scenario() -> tuple[list[float], object, object]:
            await source.observe(key, [server.metrics_url], "echo", 99)  # baseline sample

            async def endpoints() -> list[str]:
                return [base]

            _, intervals = await run_load(
                Schedule([0], [40], 6), endpoints, model="echo", interval_seconds=6, request_log=log
            )
            metrics = await source.observe(key, [server.metrics_url], "echo", 99)
            missing = await source.observe(key, [server.metrics_url, "http://127.0.0.1:9/metrics"], "echo", 99)
            await source.close()
            return intervals[0].latencies_ms, metrics, missing

        began = time.time()
        latencies, metrics, missing = asyncio.run(scenario())
    assert metrics is not None and missing is not None
    served = len(latencies)
    assert served > 100
    # the server counted every request the generator completed
    assert metrics.requests_per_second * metrics.window_seconds == pytest.approx(served, abs=2)  # type: ignore[attr-defined]
    # the server's own p99 (no network, no client) cannot exceed what the client saw end to end
    client_p99 = sorted(latencies)[int(0.99 * (served - 1))]
    assert 0 < metrics.latency_ms <= client_p99 * 1.05  # type: ignore[attr-defined]
    assert missing.pods_reporting == 1  # type: ignore[attr-defined]
    # the request log has every request, sent within the run, with the same latencies
    assert sorted(ms for _, ms, _ in log if ms is not None) == sorted(latencies)
    assert all(began <= sent <= began + 30 and endpoint == base for sent, _, endpoint in log)

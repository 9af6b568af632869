"""Triton's queue timeout (``serving.dynamicBatching.queueTimeoutMicroseconds``) on the real tritonserver.

The simulator assumes that, with the timeout, an overloaded server rejects what it cannot serve in time and the
requests it serves stay fast, where a server without it makes every request wait behind a growing queue. Both
servers get the same overload here, side by side; only ratios are compared.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from fulcrum import local_triton
from fulcrum.loadgen.generator import Schedule, run_load
from fulcrum.loadgen.stats import Interval
from tests.support.echo_model import write_echo_repository

pytestmark = pytest.mark.integration

DELAY_MS = 20.0  # one request at a time: about 50 rps
OVERLOAD = Schedule([0], [120.0], 5)


def overload(repo: Path) -> Interval:
    with local_triton.start(repo) as server:
        server.wait_ready(90)

        async def endpoints() -> list[str]:
            return [f"http://127.0.0.1:{server.http_port}"]

        _, intervals = asyncio.run(run_load(OVERLOAD, endpoints, model="echo", interval_seconds=5))
    return intervals[0]


def test_the_queue_timeout_sheds_the_excess_and_keeps_served_requests_fast(tmp_path: Path) -> None:
    fifo = overload(write_echo_repository(tmp_path / "fifo", delay_ms=DELAY_MS, max_batch_size=1))
    shed = overload(
        write_echo_repository(tmp_path / "shed", delay_ms=DELAY_MS, max_batch_size=1, queue_timeout_microseconds=40_000)
    )
    fifo_p90 = float(np.percentile(fifo.latencies_ms, 90))
    shed_p90 = float(np.percentile(shed.latencies_ms, 90))
    print(
        f"fifo: {fifo.sent} sent, {fifo.errors} rejected, p90 {fifo_p90:.0f} ms; shed: {shed.sent} sent, "
        f"{shed.errors} rejected, p90 {shed_p90:.0f} ms"
    )
    assert fifo.errors == 0  # without the timeout every request is served, however late
    assert shed.errors > 0.2 * shed.sent  # with it, the excess is rejected
    assert shed_p90 < 0.5 * fifo_p90, (shed_p90, fifo_p90)

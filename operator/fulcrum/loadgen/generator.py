"""The open-loop engine: requests start on schedule, whether or not earlier ones have finished.

Arrivals within each trace interval are a seeded Poisson process at that interval's rate. Requests go to the
endpoints round-robin (KServe v2 JSON over HTTP, inputs generated once from the model's metadata); the set of
endpoints is refreshed while the run goes on, so new replicas get traffic as they become ready.

With a model name every endpoint gets requests for that name, as a client of a Service would send them (an
endpoint that does not serve it answers with an error, and that counts). ``per_pod=True`` instead asks each
endpoint once which model it serves and calls that one: for servers that each serve something else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from fulcrum.loadgen.stats import Interval

DTYPES = {
    "FP32": np.float32,
    "FP16": np.float16,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}


@dataclass(frozen=True)
class Schedule:
    """Piecewise-constant rates: ``rates[i]`` from ``times[i]`` (seconds from the start) to the next time."""

    times: list[float]
    rates: list[float]
    end: float

    def arrivals(self, seed: int = 0) -> list[tuple[float, int]]:
        """(time, interval index) of every request, seeded Poisson arrivals per interval."""
        rng = np.random.default_rng(seed)
        out: list[tuple[float, int]] = []
        bounds = [*self.times[1:], self.end]
        for index, (start, stop, rate) in enumerate(zip(self.times, bounds, self.rates, strict=True)):
            if rate <= 0:
                continue
            t = start + float(rng.exponential(1.0 / rate))
            while t < stop:
                out.append((t, index))
                t += float(rng.exponential(1.0 / rate))
        return out


def request_body(metadata: dict[str, Any], batch: int = 1, seed: int = 0) -> dict[str, Any]:
    """A valid inference request for the model, from its metadata (random data, fixed seed)."""
    rng = np.random.default_rng(seed)
    inputs = []
    for tensor in metadata["inputs"]:
        shape = [batch if i == 0 and d == -1 else (d if d > 0 else 1) for i, d in enumerate(tensor["shape"])]
        dtype = DTYPES.get(tensor["datatype"], np.float32)
        if np.issubdtype(dtype, np.integer):
            data = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            data = rng.standard_normal(size=shape).astype(dtype)
        inputs.append(
            {"name": tensor["name"], "shape": shape, "datatype": tensor["datatype"], "data": data.flatten().tolist()}
        )
    return {"inputs": inputs}


def error_kind(status: int, body: bytes) -> str:
    """What a failed answer was, for the report: ``unknown-model`` when the server did not know the name."""
    text = body[:500].decode(errors="replace").lower()
    if "unknown model" in text or ("model" in text and "not found" in text):
        return "unknown-model"
    return f"http-{status}"


async def model_metadata(
    session: aiohttp.ClientSession, endpoint: str, model: str | None
) -> tuple[str, dict[str, Any]]:
    """The model's name (the first ready one when not given) and its KServe v2 metadata."""
    if model is None:
        async with session.post(f"{endpoint}/v2/repository/index", json={"ready": True}) as response:
            index = await response.json()
        ready = [m["name"] for m in index if m.get("state") == "READY"]
        if not ready:
            raise RuntimeError(f"{endpoint}: no model is ready")
        model = ready[0]
    async with session.get(f"{endpoint}/v2/models/{model}") as response:
        if response.status != 200:
            raise RuntimeError(f"{endpoint}: model {model!r} not found ({response.status})")
        return model, await response.json()


async def run_load(
    schedule: Schedule,
    endpoints: Callable[[], Awaitable[list[str]]],
    *,
    model: str | None,
    interval_seconds: float,
    max_in_flight: int = 512,
    seed: int = 0,
    on_progress: Callable[[float, int, int, Interval], None] | None = None,
    refresh_seconds: float = 5.0,
    request_log: list[tuple[float, float | None, str]] | None = None,
    per_pod: bool = False,
    stop: asyncio.Event | None = None,
) -> tuple[str, list[Interval]]:
    """Drive the schedule; returns the model name and per-interval statistics (``interval_seconds`` wide).

    ``model`` None: the first ready model of the first endpoint, and (``per_pod``) of each endpoint. ``stop``, once
    set, ends the run early: requests in flight finish, and the intervals up to then are returned.

    ``request_log``, when given, receives (Unix time the request was sent, latency in ms or None on error,
    endpoint) for every request, to line the client's view up with other measurements in time.
    """
    count = max(1, int(np.ceil(schedule.end / interval_seconds)))
    bounds = [*schedule.times[1:], schedule.end]

    def offered(start: float) -> float:
        stop = start + interval_seconds
        total = sum(
            r * max(0.0, min(stop, b) - max(start, a))
            for a, b, r in zip(schedule.times, bounds, schedule.rates, strict=True)
        )
        return total / interval_seconds

    intervals = [Interval(i * interval_seconds, offered(i * interval_seconds)) for i in range(count)]
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        targets = await endpoints()
        if not targets:
            raise RuntimeError("no ready endpoints to send load to")
        model_name, metadata = await model_metadata(session, targets[0], model)
        body = request_body(metadata)
        # per pod: each endpoint serves whatever model it has ready (the inputs are the same for every tier);
        # otherwise every endpoint is called with one name, as a Service's clients do
        served: dict[str, str] = {targets[0]: model_name}

        async def urls(endpoints_now: list[str]) -> list[str]:
            if not per_pod:
                return [f"{endpoint}/v2/models/{model_name}/infer" for endpoint in endpoints_now]
            out = []
            for endpoint in endpoints_now:
                if endpoint not in served:  # a pod serves one model for life; a reused address is re-asked below
                    try:
                        served[endpoint] = (await model_metadata(session, endpoint, model))[0]
                    except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError):
                        continue
                out.append(f"{endpoint}/v2/models/{served[endpoint]}/infer")
            return out

        ring = itertools.cycle(await urls(targets) or [f"{targets[0]}/v2/models/{model_name}/infer"])
        in_flight = 0
        tasks: set[asyncio.Task[None]] = set()

        async def one(url: str, interval: Interval) -> None:
            nonlocal in_flight
            started = time.perf_counter()
            latency: float | None = None
            try:
                async with session.post(url, json=body) as response:
                    answer = await response.read()
                    if response.status == 200:
                        latency = (time.perf_counter() - started) * 1000.0
                        interval.latencies_ms.append(latency)
                    else:
                        interval.error(error_kind(response.status, answer))
                        if response.status in (400, 404):  # not the model we thought: ask again next refresh
                            served.pop(url.split("/v2/", 1)[0], None)
            except (aiohttp.ClientError, TimeoutError) as exc:
                interval.error(type(exc).__name__)
            finally:
                in_flight -= 1
                if request_log is not None:
                    request_log.append((unix_begin + (started - begin), latency, url.split("/v2/", 1)[0]))

        async def refresh() -> None:
            nonlocal ring
            while True:
                await asyncio.sleep(refresh_seconds)
                fresh = await urls(await endpoints())
                if fresh:
                    ring = itertools.cycle(fresh)

        refresher = asyncio.create_task(refresh())
        begin = time.perf_counter()
        unix_begin = time.time()
        last_report = 0.0
        stopped_at: float | None = None
        try:
            for t, _ in schedule.arrivals(seed):
                delay = begin + t - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if stop is not None and stop.is_set():
                    stopped_at = t
                    break
                interval = intervals[min(count - 1, int(t // interval_seconds))]
                if in_flight >= max_in_flight:
                    interval.dropped += 1
                    continue
                in_flight += 1
                task = asyncio.create_task(one(next(ring), interval))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if on_progress is not None and t - last_report >= 1.0:
                    last_report = t
                    on_progress(t, in_flight, sum(i.sent for i in intervals), interval)
            remaining = schedule.end - (time.perf_counter() - begin)
            if remaining > 0 and stopped_at is None:
                if stop is None:
                    await asyncio.sleep(remaining)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), remaining)
                    if stop.is_set():
                        stopped_at = time.perf_counter() - begin
            if tasks:
                await asyncio.wait(tasks, timeout=30)
        finally:
            refresher.cancel()
    if stopped_at is not None:
        intervals = intervals[: int(stopped_at // interval_seconds) + 1]
    return model_name, intervals

"""Latency profiles: open-loop load at increasing request rates against onnxruntime, with the tier's batching.

A profile point is measured like this: requests of one sample each arrive as a Poisson process at the
offered rate (open loop: arrivals never wait for answers) for ``duration`` seconds. A dynamic batcher like
Triton's forms batches: an idle model instance takes the queued requests (up to ``max_batch_size``), waiting
at most ``max_queue_delay`` after the oldest one for more, or until a preferred batch size is reached; it runs
them as one onnxruntime call. Latency is from arrival to the end of that call. ``instances`` model instances
run side by side, each with ``cpu_count // instances`` onnxruntime threads.

Rates: first the capacity is estimated from a closed-loop run at the largest batch, then rates at
``fractions`` of it are offered in increasing order. A rate saturates the server when the completed
throughput falls below 90 % of the offered rate or requests are still queued at the end; the profile keeps
the points below saturation and stops at the first saturated one (it is kept as the last point when
``keep_saturated``, so the curve reaches saturation).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_repo_builder.dtypes import Array

DEFAULT_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0, 1.2)


@dataclass(frozen=True)
class Batching:
    max_batch_size: int
    max_queue_delay_s: float = 0.0005
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1


@dataclass(frozen=True)
class PointResult:
    offered_rps: float
    completed_rps: float
    p50: float
    p90: float
    p95: float
    p99: float
    saturated: bool
    tail_ms: float = 0.0
    """Latency at the percentile asked for (the SLO's), in ms."""


def quantiles_ms(latencies_s: Sequence[float]) -> tuple[float, float, float, float]:
    if not latencies_s:
        return (0.0, 0.0, 0.0, 0.0)
    q = np.quantile(np.asarray(latencies_s) * 1000.0, [0.5, 0.9, 0.95, 0.99])
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))


def poisson_arrivals(rate: float, duration: float, seed: int) -> Array:
    """Arrival offsets in seconds of a Poisson process at ``rate`` over ``duration`` (at least one)."""
    rng = np.random.default_rng(seed)
    n = max(1, int(rate * duration * 1.5) + 16)
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    times = times[times < duration]
    return times if len(times) else np.array([0.0])


RunBatch = Callable[[int], None]
"""Runs one batch of the given size (the model call)."""


class _Batcher:
    def __init__(self, run: RunBatch, batching: Batching) -> None:
        self.run = run
        self.batching = batching
        self.queue: deque[float] = deque()
        self.cond = threading.Condition()
        self.latencies: list[float] = []
        self.ends: list[float] = []
        self.done = False

    def submit(self, arrival: float) -> None:
        with self.cond:
            self.queue.append(arrival)
            self.cond.notify()

    def _take(self) -> list[float] | None:
        b = self.batching
        full = b.max_batch_size
        preferred = max(b.preferred_batch_sizes) if b.preferred_batch_sizes else full
        with self.cond:
            while not self.queue and not self.done:
                self.cond.wait(0.05)
            if not self.queue:
                return None
            deadline = self.queue[0] + b.max_queue_delay_s
            while len(self.queue) < min(full, preferred) and not self.done:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            n = min(full, len(self.queue))
            return [self.queue.popleft() for _ in range(n)]

    def worker(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self.run(len(batch))
            end = time.perf_counter()
            with self.cond:
                self.latencies.extend(end - a for a in batch)
                self.ends.extend(end for _ in batch)


def measure_point(
    run: RunBatch, batching: Batching, rate: float, duration: float, seed: int = 0, *, percentile: float = 99.0
) -> PointResult:
    batcher = _Batcher(run, batching)
    workers = [threading.Thread(target=batcher.worker, daemon=True) for _ in range(batching.instances)]
    for w in workers:
        w.start()
    offsets = poisson_arrivals(rate, duration, seed)
    start = time.perf_counter()
    for offset in offsets:
        target = start + float(offset)
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        batcher.submit(max(target, start))  # arrival time is the scheduled one (open loop)
    end_of_arrivals = time.perf_counter()
    # Drain for at most max(1 s, duration/2): a saturated queue is not worth emptying.
    drain_deadline = end_of_arrivals + max(1.0, duration / 2)
    while time.perf_counter() < drain_deadline:
        with batcher.cond:
            if not batcher.queue and len(batcher.latencies) == len(offsets):
                break
        time.sleep(0.005)
    with batcher.cond:
        backlog = len(batcher.queue)
        batcher.done = True
        batcher.cond.notify_all()
        latencies = list(batcher.latencies)
        in_window = sum(1 for end in batcher.ends if end <= end_of_arrivals)
    for w in workers:
        w.join(timeout=30)
    window = max(end_of_arrivals - start, duration, 1e-9)
    p50, p90, p95, p99 = quantiles_ms(latencies)
    # Saturated: requests left over after the drain, or the server completed clearly fewer requests than
    # arrived while they were arriving (a couple in flight at the end are normal).
    saturated = backlog > 0 or len(latencies) < len(offsets) or in_window < 0.9 * len(offsets) - 2
    tail = tail_ms(latencies, percentile)
    return PointResult(len(offsets) / window, in_window / window, p50, p90, p95, p99, saturated, tail)


def estimate_capacity(run: RunBatch, batching: Batching, seconds: float = 1.0) -> float:
    """Closed-loop requests per second at the largest batch, all instances busy (an upper bound)."""
    batch = batching.max_batch_size
    run(batch)  # warm
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or count == 0:
        run(batch)
        count += 1
    per_instance = count * batch / (time.perf_counter() - start)
    return per_instance * min(batching.instances, os.cpu_count() or 1)


def pick_rates(capacity: float, fractions: Sequence[float], max_points: int | None) -> list[float]:
    """Rates to offer, increasing; with ``max_points``, that many spread over the whole range."""
    ordered = sorted(fractions)
    if max_points is not None and max_points < len(ordered):
        if max_points == 1:
            ordered = [ordered[len(ordered) // 2]]
        else:
            step = (len(ordered) - 1) / (max_points - 1)
            ordered = [ordered[round(i * step)] for i in range(max_points)]
    return [max(capacity * f, 1.0) for f in ordered]


Measure = Callable[[float, int], PointResult]
"""Measures one point: (offered rate, seed) -> result."""


def profile_curve(
    measure: Measure,
    capacity: float,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    max_points: int | None = None,
    keep_saturated: bool = True,
) -> list[PointResult]:
    """Offer increasing rates until one saturates (kept as the last point when ``keep_saturated``)."""
    points: list[PointResult] = []
    for i, rate in enumerate(pick_rates(capacity, fractions, max_points)):
        point = measure(rate, i)
        if point.saturated:
            if keep_saturated or not points:
                points.append(point)
            break
        points.append(point)
    return points


def profile(
    run: RunBatch,
    batching: Batching,
    *,
    duration: float = 3.0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    max_points: int | None = None,
    keep_saturated: bool = True,
    capacity: float | None = None,
) -> list[PointResult]:
    """The profile of a model behind the in-process dynamic batcher."""
    capacity = capacity or estimate_capacity(run, batching)
    return profile_curve(
        lambda rate, seed: measure_point(run, batching, rate, duration, seed),
        capacity,
        fractions=fractions,
        max_points=max_points,
        keep_saturated=keep_saturated,
    )


def tail_ms(latencies_s: Sequence[float], percentile: float) -> float:
    if not latencies_s:
        return 0.0
    return float(np.quantile(np.asarray(latencies_s) * 1000.0, percentile / 100.0))


def open_loop(
    send: Callable[[], None],
    rate: float,
    duration: float,
    seed: int = 0,
    *,
    workers: int = 32,
    percentile: float = 99.0,
) -> PointResult:
    """Open-loop load through a pool of ``workers`` client threads calling ``send`` (one request each).

    Latency is from the scheduled arrival to the answer, so time spent waiting for a free client thread
    counts (as it would for a real client population). Same saturation rule as :func:`measure_point`.
    """
    from concurrent.futures import ThreadPoolExecutor

    lock = threading.Lock()
    latencies: list[float] = []
    ends: list[float] = []

    def task(arrival: float) -> None:
        send()
        end = time.perf_counter()
        with lock:
            latencies.append(end - arrival)
            ends.append(end)

    offsets = poisson_arrivals(rate, duration, seed)
    pool = ThreadPoolExecutor(max_workers=workers)
    futures = []
    start = time.perf_counter()
    for offset in offsets:
        target = start + float(offset)
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(task, target))
    end_of_arrivals = time.perf_counter()
    drain_deadline = end_of_arrivals + max(1.0, duration / 2)
    while time.perf_counter() < drain_deadline and not all(f.done() for f in futures):
        time.sleep(0.01)
    backlog = sum(1 for f in futures if not f.done())
    for f in futures:
        f.cancel()
    pool.shutdown(wait=True, cancel_futures=True)
    with lock:
        done = list(latencies)
        in_window = sum(1 for e in ends if e <= end_of_arrivals)
    errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
    if errors and not done:
        raise RuntimeError(f"requests failed during profiling: {errors[0]}")
    # some failed (e.g. Triton rejected requests that outwaited serving.dynamicBatching.queueTimeoutMicroseconds):
    # they were not served, so the point counts as saturated below
    window = max(end_of_arrivals - start, duration, 1e-9)
    p50, p90, p95, p99 = quantiles_ms(done)
    saturated = backlog > 0 or len(done) < len(offsets) or in_window < 0.9 * len(offsets) - 2
    tail = tail_ms(done, percentile)
    return PointResult(len(offsets) / window, in_window / window, p50, p90, p95, p99, saturated, tail)


def closed_loop_capacity(send: Callable[[], None], clients: int = 8, seconds: float = 1.0) -> float:
    """Requests per second with ``clients`` threads sending back to back (an estimate of the server's capacity)."""
    count = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        while time.perf_counter() < stop:
            try:
                send()
            except Exception:  # noqa: S112 - a rejected request (queue timeout) is not served; not fatal
                continue
            with lock:
                count[0] += 1

    send()  # warm
    start = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count[0] / max(time.perf_counter() - start, 1e-9)


def onnxruntime_runner(model_path: Path, inputs: Mapping[str, Array], instances: int) -> RunBatch:
    """A RunBatch that feeds the first n validation samples to onnxruntime (one session per instance)."""
    from model_repo_builder.runtime import session

    threads = max(1, (os.cpu_count() or 1) // max(1, instances))
    sessions = [session(model_path, threads) for _ in range(max(1, instances))]
    local = threading.local()
    counter = iter(range(1 << 30))
    lock = threading.Lock()
    n_samples = len(next(iter(inputs.values())))

    def feed(n: int) -> dict[str, Array]:
        if n <= n_samples:
            return {k: v[:n] for k, v in inputs.items()}
        reps = -(-n // n_samples)
        return {k: np.concatenate([v] * reps)[:n] for k, v in inputs.items()}

    def run(n: int) -> None:
        sess = getattr(local, "session", None)
        if sess is None:
            with lock:
                sess = sessions[next(counter) % len(sessions)]
            local.session = sess
        sess.run(None, feed(n))

    return run

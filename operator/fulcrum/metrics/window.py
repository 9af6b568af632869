"""Turn successive scrapes of a fleet of Triton pods into rates over a sliding window.

Per pod, the window keeps timestamped samples; a rate is the counter increase between the oldest sample in
the window and the newest, divided by the time between them. A counter that went down means the server
restarted: the increase is then counted from zero. A pod that did not answer simply contributes nothing
for that scrape; a pod gone for longer than the window is forgotten.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from fulcrum.metrics.triton import TritonSample, quantile_at


@dataclass(frozen=True)
class FleetMetrics:
    """What the fleet served over the window."""

    requests_per_second: float
    latency_ms: float | None  # at the SLO percentile, request-weighted across pods
    queue_ms: float | None  # mean queue time per request
    failures_per_second: float
    pods_reporting: int
    window_seconds: float


def _increase(old: float, new: float) -> float:
    return new if new < old else new - old


class SlidingWindow:
    def __init__(self, window_seconds: float = 60.0) -> None:
        self.window_seconds = window_seconds
        self._samples: dict[str, deque[tuple[float, TritonSample]]] = {}

    def add(self, now: float, samples: dict[str, TritonSample | None]) -> None:
        for pod, sample in samples.items():
            if sample is None:
                continue
            history = self._samples.get(pod)
            if history and not sample.reported:
                # the pod counted before and its counters are gone: a server shutting down unloads its model.
                # Read as zeros that would look like a restart and drop what it served; a new pod whose counters
                # do not show yet is a zero baseline.
                continue
            self._samples.setdefault(pod, deque()).append((now, sample))
        for pod in list(self._samples):
            history = self._samples[pod]
            # keep one sample at or before the window start as the baseline
            while len(history) > 1 and history[1][0] <= now - self.window_seconds:
                history.popleft()
            if history and history[-1][0] < now - 2 * self.window_seconds:
                del self._samples[pod]

    def pods(self) -> list[str]:
        return sorted(self._samples)

    def samples(self, pod: str) -> int:
        """Samples of ``pod`` in the window (its baseline included): two or more count toward the rate."""
        return len(self._samples.get(pod, ()))

    def newest(self) -> float | None:
        """Time of the newest sample of any pod, or None when the window is empty."""
        return max((h[-1][0] for h in self._samples.values() if h), default=None)

    def metrics(self, percentile: float) -> FleetMetrics | None:
        """Rates over the window; None until some pod has two samples.

        The fleet's rate is every pod's counter increase divided by one span, from the oldest baseline to the
        newest sample. Dividing each pod's increase by its own span instead would count load twice while it
        moves between pods: a pod that served the first half of the window and a new one that serves the
        second half would each report the whole rate.
        """
        histories = [h for h in self._samples.values() if len(h) >= 2 and h[-1][0] > h[0][0]]
        if not histories:
            return None
        start = min(h[0][0] for h in histories)
        span = max(h[-1][0] for h in histories) - start
        requests = failures = queue_us = 0.0
        weighted_latency = latency_weight = 0.0
        for history in histories:
            (_, first), (_, last) = history[0], history[-1]
            served = _increase(first.requests, last.requests)
            requests += served
            failures += _increase(first.failure, last.failure)
            queue_us += _increase(first.queue_us, last.queue_us)
            latency_us = quantile_at(last.quantiles_us, percentile)
            if latency_us is None and served > 0:
                latency_us = _increase(first.request_us, last.request_us) / served  # mean, when no summary
            if latency_us is not None and served > 0:
                weighted_latency += latency_us * served
                latency_weight += served
        return FleetMetrics(
            requests_per_second=requests / span,
            latency_ms=(weighted_latency / latency_weight / 1000.0) if latency_weight else None,
            queue_ms=(queue_us / requests / 1000.0) if requests else None,
            failures_per_second=failures / span,
            pods_reporting=len(histories),
            window_seconds=span,
        )

"""Parse one Triton server's Prometheus metrics into the counters and quantiles Fulcrum uses.

Counters are cumulative since the server started (``nv_inference_request_success``, ``..._failure``,
``nv_inference_request_duration_us``, ``nv_inference_queue_duration_us``); with
``--metrics-config summary_latencies=true`` Triton adds ``nv_inference_request_summary_us`` with
``quantile`` labels over its own recent window. Values are summed over model versions (and failure reasons).

With a model named (the served name, a routing ``ensemble``), requests and latencies are that model's: each
request counts once, end to end. Its queue time is every model's: the routing model queues nothing, the tier
it routes to does the batching and the waiting.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

COUNTERS = {
    "nv_inference_request_success": "success",
    "nv_inference_request_failure": "failure",
    "nv_inference_request_duration_us": "request_us",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_exec_count": "executions",
    "nv_inference_count": "inferences",
}
SUMMARY = "nv_inference_request_summary_us"
QUEUE_COUNTER = "nv_inference_queue_duration_us"


@dataclass
class TritonSample:
    """One scrape of one server, for one model (or every model when none is named)."""

    success: float = 0.0
    failure: float = 0.0
    request_us: float = 0.0
    queue_us: float = 0.0
    executions: float = 0.0
    inferences: float = 0.0
    quantiles_us: dict[float, float] = field(default_factory=dict)
    summary_count: float = 0.0
    reported: bool = True  # False: no inference counter at all (the model is not loaded, e.g. shutting down)

    @property
    def requests(self) -> float:
        return self.success + self.failure


def parse_triton_metrics(text: str, model: str | None = None) -> TritonSample:
    sample = TritonSample(reported=False)
    quantile_sums: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            labels = metric.labels
            name = metric.name
            if name.endswith("_total") and name.removesuffix("_total") in COUNTERS:
                name = name.removesuffix("_total")  # newer client libraries add the suffix to counters
            if model is not None and labels.get("model") not in (None, model):
                if name == QUEUE_COUNTER:
                    sample.queue_us += float(metric.value)
                continue
            if name in COUNTERS:
                attr = COUNTERS[name]
                sample.reported = True
                setattr(sample, attr, getattr(sample, attr) + float(metric.value))
            elif name == SUMMARY and "quantile" in labels:
                q = float(labels["quantile"])
                if not math.isnan(metric.value):  # NaN when the window is empty
                    quantile_sums[q] = max(quantile_sums.get(q, 0.0), float(metric.value))
            elif name == f"{SUMMARY}_count":
                sample.summary_count += float(metric.value)
    sample.quantiles_us = dict(sorted(quantile_sums.items()))
    return sample


def quantile_at(quantiles: dict[float, float], percentile: float) -> float | None:
    """The value at ``percentile`` (e.g. 99.0) by linear interpolation between the reported quantiles."""
    if not quantiles:
        return None
    q = percentile / 100.0
    points = sorted(quantiles.items())
    if q <= points[0][0]:
        return points[0][1]
    for (q0, v0), (q1, v1) in itertools.pairwise(points):
        if q0 <= q <= q1:
            return v0 + (v1 - v0) * (q - q0) / (q1 - q0) if q1 > q0 else v1
    return points[-1][1]

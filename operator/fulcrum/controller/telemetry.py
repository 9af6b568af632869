"""The operator's own Prometheus metrics (``fulcrum run --metrics-port``)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter("fulcrum_decisions_total", "Policy decisions applied, by action.", ["action"])
RECONCILE_SECONDS = Histogram(
    "fulcrum_reconcile_duration_seconds",
    "Time to reconcile one ModelDeployment.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter("fulcrum_reconcile_errors_total", "Reconciliations that raised (and were retried).")
API_REQUESTS = Counter("fulcrum_api_requests_total", "Requests sent to the Kubernetes API, by verb.", ["verb"])
COST = Gauge("fulcrum_cost_per_hour", "Cost per hour of what runs now.", ["namespace", "name"])
LATENCY = Gauge("fulcrum_observed_latency_ms", "Observed latency at the SLO percentile.", ["namespace", "name"])
RATE = Gauge("fulcrum_observed_requests_per_second", "Observed request rate.", ["namespace", "name"])
REPLICAS = Gauge("fulcrum_replicas", "Replicas asked for, by tier and pool.", ["namespace", "name", "tier", "pool"])


def forget(namespace: str, name: str) -> None:
    for gauge in (COST, LATENCY, RATE):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)

"""The operator's own Prometheus metrics (``fulcrum run --metrics-port``): what a platform team asks of it.

Every series about one ModelDeployment carries ``namespace`` and ``model_deployment``. Gauges are published
as a whole set per ModelDeployment (:func:`export_model`), so a placement that went, a budget that was removed
or a percentile that changed leaves no stale series behind; a deleted ModelDeployment takes all its series,
counters and histograms too, with it (:func:`forget`).

- load and latency against the SLO: ``fulcrum_observed_requests_per_second``, ``fulcrum_served_model`` (join
  Triton's series with it to count each request once),
  ``fulcrum_observed_latency_seconds`` / ``fulcrum_slo_latency_seconds`` (label ``percentile``),
  ``fulcrum_observed_queue_seconds``, ``fulcrum_metrics_available``, ``fulcrum_metrics_pods_reporting``;
- SLO attainment over any window: ``fulcrum_slo_met_seconds_total`` / ``fulcrum_slo_evaluated_seconds_total``
  (seconds of serving in which the latency at the SLO percentile was within the SLO, of those measured);
- capacity and money: ``fulcrum_replicas`` / ``fulcrum_ready_replicas`` (by ``tier`` and ``node_pool``, both
  placements during a switch), ``fulcrum_cost_per_hour``, ``fulcrum_budget_per_hour``, ``fulcrum_budget_exhausted``;
- decisions: ``fulcrum_decisions_total`` (by ``action`` and ``reason``, the policy's one-word code);
  hot switches: ``fulcrum_hot_switches_total``, ``fulcrum_hot_switch_duration_seconds`` (:func:`record_hot_switch`);
- builds: ``fulcrum_builds_total`` and ``fulcrum_build_duration_seconds`` (by ``node_pool`` and ``outcome``),
  ``fulcrum_build_phase`` (1 for each pool build's current phase); ``fulcrum_time_to_ready_seconds``;
- the process: ``fulcrum_reconcile_duration_seconds``, ``fulcrum_reconcile_errors_total``,
  ``fulcrum_api_requests_total``, ``fulcrum_workqueue_depth``, ``fulcrum_leader``, ``fulcrum_operator_info``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

from fulcrum import __version__
from fulcrum.api import ModelDeploymentSpec, ModelDeploymentStatus
from fulcrum.metrics.window import FleetMetrics
from fulcrum.policy.types import Decision
from fulcrum.reconcile.plan import LiveServer, PoolBuild

# no `*_created` series beside each counter and histogram: half the series, nothing lost
disable_created_metrics()  # type: ignore[no-untyped-call]

Key = tuple[str, str]  # (namespace, name)
MD = ["namespace", "model_deployment"]

# --- one ModelDeployment ------------------------------------------------------------------------------------------

REPLICAS = Gauge(
    "fulcrum_replicas", "Replicas asked of each Triton Deployment, by tier and node pool.", [*MD, "tier", "node_pool"]
)
READY_REPLICAS = Gauge(
    "fulcrum_ready_replicas",
    "Ready replicas of each Triton Deployment, by tier and node pool.",
    [*MD, "tier", "node_pool"],
)
COST = Gauge("fulcrum_cost_per_hour", "Cost per hour of every replica that runs now (switches included).", MD)
BUDGET = Gauge("fulcrum_budget_per_hour", "spec.budget.maxCostPerHour; absent when the spec sets no budget.", MD)
BUDGET_EXHAUSTED = Gauge(
    "fulcrum_budget_exhausted", "1 when the budget keeps the policy from the configuration the SLO needs.", MD
)
RATE = Gauge("fulcrum_observed_requests_per_second", "Request rate over the metrics window.", MD)
LATENCY = Gauge(
    "fulcrum_observed_latency_seconds",
    "Server-side latency at the SLO percentile over the metrics window (Triton's own quantile).",
    [*MD, "percentile"],
)
QUEUE = Gauge("fulcrum_observed_queue_seconds", "Mean time a request waited in Triton's queue over the window.", MD)
SLO_LATENCY = Gauge("fulcrum_slo_latency_seconds", "spec.slo.latencyMs at spec.slo.percentile.", [*MD, "percentile"])
SERVED_MODEL = Gauge(
    "fulcrum_served_model",
    "1 for the model name clients call; joined on (namespace, model_deployment, model) with Triton's series it counts "
    "each request once (the routed tier counts it again).",
    [*MD, "model"],
)
METRICS_AVAILABLE = Gauge(
    "fulcrum_metrics_available",
    "1 when the last control tick had a usable metrics window; 0 when the loop held for lack of data.",
    MD,
)
PODS_REPORTING = Gauge("fulcrum_metrics_pods_reporting", "Pods whose metrics the last window covered.", MD)
SLO_EVALUATED = Counter(
    "fulcrum_slo_evaluated_seconds",
    "Seconds of serving in which the latency at the SLO percentile was measured (control ticks with traffic).",
    MD,
)
SLO_MET = Counter(
    "fulcrum_slo_met_seconds", "Of fulcrum_slo_evaluated_seconds_total, the seconds within the SLO latency.", MD
)
DECISIONS = Counter(
    "fulcrum_decisions",
    "Policy decisions applied (every action but Hold), by action and reason (the policy's one-word code).",
    [*MD, "action", "reason"],
)
HOT_SWITCHES = Counter(
    "fulcrum_hot_switches",
    "Tier switches served by the running replicas (no new pods), by outcome.",
    [*MD, "from_tier", "to_tier", "outcome"],
)
HOT_SWITCH_SECONDS = Histogram(
    "fulcrum_hot_switch_duration_seconds",
    "From a hot switch's decision until every ready replica serves the new tier.",
    MD,
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
BUILDS = Counter(
    "fulcrum_builds", "Builds finished, by node pool and outcome (Succeeded, Failed).", [*MD, "node_pool", "outcome"]
)
BUILD_SECONDS = Histogram(
    "fulcrum_build_duration_seconds",
    "Wall time of a build Job, from its start to its end, by node pool and outcome.",
    [*MD, "node_pool", "outcome"],
    buckets=(30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200),
)
BUILD_PHASE = Gauge(
    "fulcrum_build_phase",
    "1 for the phase (Pending, Running, Succeeded, Failed) of the current build of each node pool.",
    [*MD, "node_pool", "phase"],
)
TIME_TO_READY = Histogram(
    "fulcrum_time_to_ready_seconds",
    "From a ModelDeployment's creation, or from when it stopped being Ready, until it is Ready.",
    MD,
    buckets=(10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200),
)

# --- the process --------------------------------------------------------------------------------------------------

RECONCILE_SECONDS = Histogram(
    "fulcrum_reconcile_duration_seconds",
    "Time to reconcile one ModelDeployment.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter("fulcrum_reconcile_errors", "Reconciliations that raised (and were retried).")
API_REQUESTS = Counter("fulcrum_api_requests", "Requests sent to the Kubernetes API, by verb.", ["verb"])
QUEUE_DEPTH = Gauge("fulcrum_workqueue_depth", "ModelDeployments waiting to be reconciled.")
LEADER = Gauge("fulcrum_leader", "1 while this operator replica leads (reconciles); 0 on a standby.")
INFO = Info("fulcrum_operator", "The operator's version.")
INFO.info({"version": __version__})

STATES = ("Pending", "Running", "Succeeded", "Failed")


@dataclass
class _Published:
    """The label values (after namespace and model_deployment) each family holds for one ModelDeployment."""

    labels: dict[MetricWrapperBase, set[tuple[str, ...]]] = field(default_factory=dict)
    last_tick: float | None = None  # when the SLO counters were last advanced


_lock = threading.Lock()
_published: dict[Key, _Published] = {}


def _entry(key: Key) -> _Published:
    return _published.setdefault(key, _Published())


def _touch(key: Key, family: MetricWrapperBase, labels: tuple[str, ...] = ()) -> Any:
    """The child of ``family`` for this ModelDeployment and ``labels``, remembered so :func:`forget` removes it."""
    _entry(key).labels.setdefault(family, set()).add(labels)
    return family.labels(*key, *labels)


def publish(key: Key, family: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
    """Set the gauge's series of this ModelDeployment to exactly ``values``; any other series of it goes."""
    with _lock:
        entry = _entry(key)
        old = entry.labels.get(family, set())
        for labels, value in values.items():
            family.labels(*key, *labels).set(value)
        for labels in old - set(values):
            family.remove(*key, *labels)
        entry.labels[family] = set(values)


def forget(namespace: str, name: str) -> None:
    """Remove every series of a ModelDeployment that is gone."""
    with _lock:
        entry = _published.pop((namespace, name), None)
        if entry is None:
            return
        for family, label_sets in entry.labels.items():
            for labels in label_sets:
                family.remove(namespace, name, *labels)


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _ready(status: ModelDeploymentStatus) -> tuple[bool, str | None]:
    condition = next((c for c in status.conditions if c.type == "Ready"), None)
    if condition is None:
        return False, None
    return condition.status == "True", condition.last_transition_time


def export_model(
    key: Key,
    *,
    spec: ModelDeploymentSpec,
    previous: ModelDeploymentStatus,
    status: ModelDeploymentStatus,
    servers: Sequence[LiveServer],
    builds: Sequence[PoolBuild],
    observed: FleetMetrics | None,
    decision: Decision | None,
    ticked: bool,
    created: str | None,
    now: float,
) -> None:
    """Publish one reconcile's figures. ``ticked``: the control loop ran (``observed``/``decision`` are its)."""
    percentile = format(spec.slo.percentile, "f")
    publish(key, REPLICAS, {(s.tier, s.pool): s.replicas for s in servers})
    publish(key, READY_REPLICAS, {(s.tier, s.pool): s.ready_replicas for s in servers})
    publish(key, COST, {(): float(status.cost_per_hour or 0)})
    ceiling = spec.budget.max_cost_per_hour
    publish(key, BUDGET, {} if ceiling is None else {(): float(ceiling)})
    publish(key, SLO_LATENCY, {(percentile,): spec.slo.latency_ms / 1000.0})
    served = status.serving.model_name if status.serving is not None else None
    publish(key, SERVED_MODEL, {} if not served else {(served,): 1.0})
    phases: dict[tuple[str, ...], float] = {}
    for build in builds:
        phase = build.result.phase if build.result is not None else (build.job_phase or "Pending")
        phases.update({(build.pool.name, state): float(state == phase) for state in STATES})
    publish(key, BUILD_PHASE, phases)
    was_ready, since = _ready(previous)
    is_ready, _ = _ready(status)
    if is_ready and not was_ready:
        start = _timestamp(since) or _timestamp(created)
        if start is not None and now >= start:
            with _lock:
                _touch(key, TIME_TO_READY).observe(now - start)
    if not ticked:
        return
    publish(key, METRICS_AVAILABLE, {(): float(observed is not None)})
    publish(key, PODS_REPORTING, {(): float(observed.pods_reporting if observed else 0)})
    if decision is not None:
        publish(key, BUDGET_EXHAUSTED, {(): float(decision.budget_exhausted)})
    if observed is not None:
        publish(key, RATE, {(): observed.requests_per_second})
        latency = _seconds(observed.latency_ms)
        publish(key, LATENCY, {} if latency is None else {(percentile,): latency})
        queue = _seconds(observed.queue_ms)
        publish(key, QUEUE, {} if queue is None else {(): queue})
    else:  # unknown is not zero: no figure rather than an old one
        for family in (RATE, LATENCY, QUEUE):
            publish(key, family, {})
    with _lock:
        entry = _entry(key)
        elapsed = None if entry.last_tick is None else now - entry.last_tick
        entry.last_tick = now
        if decision is not None and decision.action != "Hold":
            _touch(key, DECISIONS, (decision.action, decision.code)).inc()
        latency_ms = observed.latency_ms if observed is not None else None
        if elapsed is None or latency_ms is None or observed is None or observed.requests_per_second <= 0:
            return
        # a tick stands for the time since the previous one, up to a whole metrics window (a stalled loop
        # does not count as hours of measured serving)
        covered = min(elapsed, observed.window_seconds or elapsed)
        _touch(key, SLO_EVALUATED).inc(covered)
        met = _touch(key, SLO_MET)
        if latency_ms <= spec.slo.latency_ms:
            met.inc(covered)


def record_build(key: Key, pool: str, outcome: str, job: Mapping[str, Any]) -> None:
    """A finished build Job harvested while reconciling ``key``: its outcome and how long it ran."""
    status = job.get("status") or {}
    started = _timestamp(status.get("startTime"))
    ended = _timestamp(status.get("completionTime"))
    if ended is None:  # a failed Job has no completionTime: the Failed condition says when
        ended = max(
            (_timestamp(c.get("lastTransitionTime")) or 0.0 for c in status.get("conditions") or []), default=None
        )
    with _lock:
        _touch(key, BUILDS, (pool, outcome)).inc()
        if started is not None and ended and ended >= started:
            _touch(key, BUILD_SECONDS, (pool, outcome)).observe(ended - started)


def record_hot_switch(
    key: Key, from_tier: str, to_tier: str, seconds: float | None, outcome: str = "Succeeded"
) -> None:
    """For the hot-switch path: a tier switch done by the running replicas. ``seconds``: decision to served."""
    with _lock:
        _touch(key, HOT_SWITCHES, (from_tier, to_tier, outcome)).inc()
        if seconds is not None and outcome == "Succeeded":
            _touch(key, HOT_SWITCH_SECONDS).observe(seconds)


def track_queue(depth: Callable[[], int]) -> None:
    QUEUE_DEPTH.set_function(lambda: float(depth()))

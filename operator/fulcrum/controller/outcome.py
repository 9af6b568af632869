"""Fold a control tick into status (pure): observed figures, the last decision, what the policy must remember,
and the MetricsAvailable, SLOMet and WithinBudget conditions."""

from __future__ import annotations

from decimal import Decimal

from fulcrum.api import (
    Condition,
    LastDecision,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Observed,
    PolicyMemory,
)
from fulcrum.controller.control import Tick, format_time, significant
from fulcrum.metrics.sources import Reading
from fulcrum.policy import Decision
from fulcrum.reconcile.conditions import ordered, set_condition
from fulcrum.reconcile.plan import Event
from fulcrum.report.history import decision_message

TICK_CONDITIONS = ("MetricsAvailable", "SLOMet", "WithinBudget")
STABLE_WHEN_TRUE = TICK_CONDITIONS  # their messages carry live figures: a True condition is not rewritten for them


def fold_tick(
    *,
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    previous: ModelDeploymentStatus,
    tick: Tick,
    generation: int,
) -> tuple[ModelDeploymentStatus, list[Event]]:
    decision = tick.decision
    reading = tick.reading
    events: list[Event] = []
    stamp = format_time(tick.at)
    status.observed = observed_figures(reading, previous.observed)
    if decision.action != "Hold" or status.last_decision is None:
        status.last_decision = LastDecision(
            time=stamp,
            action=decision.action,
            from_=None if decision.previous is None else str(decision.previous),
            to=str(decision.config),
            reason=decision.reason,
        )
        if decision.action != "Hold":
            message = decision_message(decision.previous, decision.config, decision.code, decision.reason)
            events.append(Event("Normal", decision.action, message))
    status.policy = policy_memory(decision)

    old = previous.conditions
    conditions = [c for c in status.conditions if c.type not in TICK_CONDITIONS]
    # a window being collected again (after a restart or a failover, or after an outage) says nothing new: the
    # metrics conditions stay as last known until there is a window, so a failover writes nothing
    collecting = reading is not None and reading.reason == "Collecting"
    for type_, (ok, reason, message) in (
        ("MetricsAvailable", metrics_condition(reading)),
        ("SLOMet", slo_condition(spec, reading, decision)),
        ("WithinBudget", budget_condition(spec, status)),
    ):
        kept = next((c for c in old if c.type == type_), None) if collecting and type_ != "WithinBudget" else None
        if kept is not None:
            conditions.append(kept.model_copy(update={"observed_generation": generation}))
            continue
        new = set_condition(old, type_, status=ok, reason=reason, message=message, generation=generation, now=stamp)
        conditions.append(_stable(new, old))
    status.conditions = ordered(conditions)
    events += metrics_events(old, status.conditions)
    return status, events


def observed_figures(reading: Reading | None, previous: Observed | None) -> Observed | None:
    """The window's figures, rounded; the previous ones (with their time) while they read the same or are unknown."""
    metrics = None if reading is None else reading.metrics
    if metrics is None:
        return previous
    figures = Observed(
        requests_per_second=significant(metrics.requests_per_second, 3),
        latency_ms=None if metrics.latency_ms is None else significant(metrics.latency_ms, 2),
        queue_ms=None if metrics.queue_ms is None else significant(metrics.queue_ms, 2),
    )
    if previous is not None and previous.model_copy(update={"time": None}) == figures:
        return previous
    end = reading.window_end if reading is not None else None
    return figures.model_copy(update={"time": None if end is None else format_time(end)})


def policy_memory(decision: Decision) -> PolicyMemory | None:
    """What the next operator process needs from this one's policy state (see ``fulcrum.controller.control``)."""
    state = decision.state
    corrections = {k: significant(v, 2) for k, v in sorted(state.corrections.items())}
    switched = None if state.last_switch_at is None else format_time(state.last_switch_at)
    if switched is None and not corrections:
        return None
    return PolicyMemory(last_switch_time=switched, speed_corrections=corrections)


def metrics_condition(reading: Reading | None) -> tuple[bool | None, str, str]:
    if reading is None:
        return None, "NoMetricsSource", "the operator runs without a metrics source"
    return reading.healthy, reading.reason, reading.message


def slo_condition(
    spec: ModelDeploymentSpec, reading: Reading | None, decision: Decision
) -> tuple[bool | None, str, str]:
    metrics = None if reading is None else reading.metrics
    slo = spec.slo.latency_ms
    if metrics is None:
        why = "no metrics source" if reading is None else reading.message
        return None, "NoMetrics", f"unknown without a metrics window ({why})"
    if metrics.requests_per_second <= 0:
        return None, "NoTraffic", "no requests measured in the last window"
    if metrics.latency_ms is None:
        why = reading.message if reading is not None and reading.reason == "PercentileNotReported" else "none reported"
        return None, "NoLatency", f"no latency at p{spec.slo.percentile} in the last window: {why}"
    if metrics.latency_ms <= slo:
        return True, "SLOMet", f"p{spec.slo.percentile} {metrics.latency_ms:.1f} ms <= {slo} ms"
    why = "BudgetExhausted" if decision.budget_exhausted else "SLOMissed"
    return False, why, f"p{spec.slo.percentile} {metrics.latency_ms:.1f} ms > {slo} ms; {decision.reason}"


def budget_condition(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> tuple[bool | None, str, str]:
    ceiling = spec.budget.max_cost_per_hour
    cost = Decimal(status.cost_per_hour or "0")
    if ceiling is None:
        return True, "NoBudget", "spec.budget.maxCostPerHour is not set"
    if cost <= ceiling:
        return True, "WithinBudget", f"{cost}/h <= {ceiling}/h"
    return False, "OverBudget", f"{cost}/h > {ceiling}/h (a switch in progress pays for both fleets)"


def metrics_events(previous: list[Condition], new: list[Condition]) -> list[Event]:
    """A Warning when metrics become unavailable (naming what failed), a Normal event when they are back."""
    before = next((c for c in previous if c.type == "MetricsAvailable"), None)
    after = next((c for c in new if c.type == "MetricsAvailable"), None)
    if after is None or (before is not None and (before.status, before.reason) == (after.status, after.reason)):
        return []
    if after.status == "False":
        return [Event("Warning", after.reason, f"MetricsAvailable=False: {after.message}")]
    if after.status == "True" and before is not None and before.status == "False":
        return [Event("Normal", "MetricsAvailable", f"MetricsAvailable=True: {after.message}")]
    return []


def _stable(condition: Condition, previous: list[Condition]) -> Condition:
    """Keep a True condition as it was while only the figures in its message moved (no status churn)."""
    if condition.type not in STABLE_WHEN_TRUE:
        return condition
    for old in previous:
        same = (old.type, old.status, old.reason) == (condition.type, condition.status, condition.reason)
        if same and (condition.status == "True" or condition.type != "MetricsAvailable"):
            return old.model_copy(update={"observed_generation": condition.observed_generation})
    return condition

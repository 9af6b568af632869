"""Fold a control tick into status: observed figures, the last decision, SLOMet and WithinBudget (pure)."""

from __future__ import annotations

from decimal import Decimal

from fulcrum.api import Condition, LastDecision, ModelDeploymentSpec, ModelDeploymentStatus, Observed
from fulcrum.controller.control import Tick, format_time, significant
from fulcrum.reconcile.conditions import ordered, set_condition
from fulcrum.reconcile.plan import Event
from fulcrum.report.history import decision_message


def fold_tick(
    *,
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    previous: ModelDeploymentStatus,
    tick: Tick,
    now: float,
    generation: int,
) -> tuple[ModelDeploymentStatus, list[Event]]:
    decision = tick.decision
    observed = tick.observed
    events: list[Event] = []
    stamp = format_time(now)
    if observed is not None:
        status.observed = Observed(
            requests_per_second=significant(observed.requests_per_second, 3),
            latency_ms=None if observed.latency_ms is None else significant(observed.latency_ms, 2),
            queue_ms=None if observed.queue_ms is None else significant(observed.queue_ms, 2),
        )
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

    conditions = [c for c in status.conditions if c.type not in ("SLOMet", "WithinBudget")]
    old = previous.conditions
    slo = spec.slo.latency_ms
    slo_condition: tuple[bool | None, str, str]
    if observed is None or observed.latency_ms is None or observed.requests_per_second <= 0:
        slo_condition = (None, "NoTraffic", "no requests measured in the last window")
    elif observed.latency_ms <= slo:
        slo_condition = (True, "SLOMet", f"p{spec.slo.percentile} {observed.latency_ms:.1f} ms <= {slo} ms")
    else:
        why = "BudgetExhausted" if decision.budget_exhausted else "SLOMissed"
        slo_condition = (
            False,
            why,
            f"p{spec.slo.percentile} {observed.latency_ms:.1f} ms > {slo} ms; {decision.reason}",
        )
    conditions.append(
        set_condition(
            old,
            "SLOMet",
            status=slo_condition[0],
            reason=slo_condition[1],
            message=slo_condition[2],
            generation=generation,
            now=stamp,
        )
    )
    ceiling = spec.budget.max_cost_per_hour
    cost = Decimal(status.cost_per_hour or "0")
    budget: tuple[bool | None, str, str]
    if ceiling is None:
        budget = (True, "NoBudget", "spec.budget.maxCostPerHour is not set")
    elif cost <= ceiling:
        budget = (True, "WithinBudget", f"{cost}/h <= {ceiling}/h")
    else:
        budget = (False, "OverBudget", f"{cost}/h > {ceiling}/h (a switch in progress pays for both fleets)")
    conditions.append(
        set_condition(
            old, "WithinBudget", status=budget[0], reason=budget[1], message=budget[2], generation=generation, now=stamp
        )
    )
    # SLOMet/WithinBudget messages carry live figures: keep the previous condition when only numbers moved
    conditions = [_stable(c, old) for c in conditions]
    status.conditions = ordered(conditions)
    return status, events


def _stable(condition: Condition, previous: list[Condition]) -> Condition:
    if condition.type not in ("SLOMet", "WithinBudget"):
        return condition
    for old in previous:
        if (old.type, old.status, old.reason) == (condition.type, condition.status, condition.reason):
            return old.model_copy(update={"observed_generation": condition.observed_generation})
    return condition

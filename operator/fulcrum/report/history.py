"""The decision history of one ModelDeployment (pure): from its Events, its status and, when there is one, a
Prometheus that scraped the operator. ``fulcrum report`` prints it as a table and draws it (``report.plot``).

Decision Events carry ``<from> -> <to> (<code>): <reason>`` (:func:`decision_message`), so the configuration
history can be read back without Prometheus: replicas by tier and pool and their cost are then the operator's
desired configuration after each decision; with Prometheus they are what really ran, with the load and the
latency it measured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DECISION_ACTIONS = ("ScaleUp", "ScaleDown", "SwitchTier", "SwitchPool", "HotSwitch")  # HotSwitch: a switch done
_MESSAGE = re.compile(r"^(?P<from>\S+) -> (?P<to>\S+) \((?P<code>\w+)\): (?P<reason>.*)$", re.DOTALL)
_CONFIG = re.compile(r"^(?P<tier>[^@\s]+)@(?P<pool>\S+)x(?P<replicas>\d+)$")  # pool names may hold an x


def decision_message(previous: object | None, target: object, code: str, reason: str) -> str:
    """The Event message of a decision: ``fp32@l4x2 -> fp16@l4x3 (BudgetAhead): <sentence>``."""
    return f"{previous if previous is not None else 'none'} -> {target} ({code}): {reason}"


@dataclass(frozen=True)
class Placement:
    tier: str
    pool: str
    replicas: int

    @property
    def label(self) -> str:
        return f"{self.tier}@{self.pool}"


def parse_config(text: str) -> Placement | None:
    """``fp16@l4x3`` (the form of status.lastDecision and decision Events) -> Placement; None for ``none``."""
    match = _CONFIG.match(text)
    if match is None:
        return None
    return Placement(match["tier"], match["pool"], int(match["replicas"]))


@dataclass(frozen=True)
class Decision:
    time: float
    action: str
    code: str
    reason: str
    before: Placement | None
    after: Placement | None


@dataclass(frozen=True)
class EventRow:
    time: float
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Series:
    times: tuple[float, ...]
    values: tuple[float, ...]

    def __bool__(self) -> bool:
        return bool(self.times)


@dataclass
class History:
    namespace: str
    name: str
    start: float
    end: float
    slo_ms: float
    percentile: str
    budget: float | None
    pool_costs: dict[str, float]
    decisions: list[Decision] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    load: dict[str, Series] = field(default_factory=dict)  # source -> requests per second
    replicas: dict[str, Series] = field(default_factory=dict)  # tier@pool -> replicas
    latency_ms: Series | None = None
    cost: Series | None = None
    slo_attainment: float | None = None
    source: str = "events"  # "events" or "prometheus"
    hold_seconds: float | None = None  # Prometheus series: a point stands for this long (two query steps)
    status: dict[str, Any] = field(default_factory=dict)


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def event_time(event: Mapping[str, Any]) -> float | None:
    series = event.get("series") or {}
    return (
        parse_time(series.get("lastObservedTime"))
        or parse_time(event.get("lastTimestamp"))
        or parse_time(event.get("eventTime"))
        or parse_time(event.get("firstTimestamp"))
        or parse_time((event.get("metadata") or {}).get("creationTimestamp"))
    )


def events_of(events: Iterable[Mapping[str, Any]]) -> list[EventRow]:
    rows = []
    for event in events:
        at = event_time(event)
        if at is not None:
            rows.append(EventRow(at, event.get("type", ""), event.get("reason", ""), event.get("message", "")))
    return sorted(rows, key=lambda r: r.time)


def decisions_of(rows: Iterable[EventRow]) -> list[Decision]:
    """Decision Events, oldest first; an Event from before messages carried the configurations keeps its text."""
    decisions = []
    for row in rows:
        if row.reason not in DECISION_ACTIONS:
            continue
        match = _MESSAGE.match(row.message)
        if match is None:
            decisions.append(Decision(row.time, row.reason, "", row.message, None, None))
            continue
        decisions.append(
            Decision(
                row.time,
                row.reason,
                match["code"],
                match["reason"],
                parse_config(match["from"]),
                parse_config(match["to"]),
            )
        )
    return decisions


def desired_replicas(
    decisions: Sequence[Decision], start: float, end: float, initial: Placement | None = None
) -> dict[str, Series]:
    """Replicas by tier@pool as the decisions set them (a step function), from ``start`` to ``end``."""
    current = initial
    if current is None:
        first = next((d for d in decisions if d.before is not None or d.after is not None), None)
        current = None if first is None else first.before
    points: list[tuple[float, Placement | None]] = [(start, current)]
    for decision in decisions:
        if decision.after is not None:
            points.append((max(start, decision.time), decision.after))
    points.append((end, points[-1][1]))
    labels = sorted({p.label for _, p in points if p is not None})
    out: dict[str, Series] = {}
    for label in labels:
        times = tuple(t for t, _ in points)
        values = tuple(float(p.replicas) if p is not None and p.label == label else 0.0 for _, p in points)
        out[label] = Series(times, values)
    return out


def desired_cost(replicas: Mapping[str, Series], pool_costs: Mapping[str, float]) -> Series | None:
    if not replicas:
        return None
    times = next(iter(replicas.values())).times
    totals = [0.0] * len(times)
    for label, series in replicas.items():
        price = pool_costs.get(label.split("@", 1)[1], 0.0)
        for i, value in enumerate(series.values):
            totals[i] += value * price
    return Series(times, tuple(totals))


def on_one_grid(
    series: Mapping[str, Series], hold: float | None = None
) -> tuple[tuple[float, ...], dict[str, tuple[float, ...]]]:
    """Several step series on the union of their times (to stack them): each value holds until its next point,
    or for at most ``hold`` seconds (a placement whose series stopped is gone: 0)."""
    times = tuple(sorted({t for s in series.values() for t in s.times}))
    out: dict[str, tuple[float, ...]] = {}
    for label, s in series.items():
        values, i = [], -1
        for t in times:
            while i + 1 < len(s.times) and s.times[i + 1] <= t:
                i += 1
            fresh = i >= 0 and (hold is None or t - s.times[i] <= hold)
            values.append(s.values[i] if fresh else 0.0)
        out[label] = tuple(values)
    return times, out


def summary_rows(history: History) -> list[tuple[str, str, str, str, str]]:
    """The decision table: (time, action, from -> to, reason code, reason)."""
    rows = []
    for d in history.decisions:
        moved = f"{_label(d.before)} -> {_label(d.after)}" if d.before or d.after else ""
        stamp = datetime.fromtimestamp(d.time, UTC).strftime("%H:%M:%S")
        rows.append((stamp, d.action, moved, d.code, d.reason))
    return rows


def _label(p: Placement | None) -> str:
    return "none" if p is None else f"{p.label} x{p.replicas}"


def to_json(history: History) -> dict[str, Any]:
    def series(s: Series | None) -> dict[str, list[float]] | None:
        return None if s is None else {"t": list(s.times), "v": list(s.values)}

    return {
        "namespace": history.namespace,
        "name": history.name,
        "start": history.start,
        "end": history.end,
        "source": history.source,
        "slo": {"latencyMs": history.slo_ms, "percentile": history.percentile},
        "budgetPerHour": history.budget,
        "sloAttainment": history.slo_attainment,
        "decisions": [
            {
                "time": d.time,
                "action": d.action,
                "code": d.code,
                "reason": d.reason,
                "from": None if d.before is None else _label(d.before),
                "to": None if d.after is None else _label(d.after),
            }
            for d in history.decisions
        ],
        "load": {k: series(v) for k, v in history.load.items()},
        "replicas": {k: series(v) for k, v in history.replicas.items()},
        "latencyMs": series(history.latency_ms),
        "costPerHour": series(history.cost),
    }

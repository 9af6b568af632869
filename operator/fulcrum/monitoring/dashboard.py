"""Fulcrum's Grafana dashboard, generated (pure): ``python -m fulcrum.monitoring.dashboard > FILE``.

The chart ships the output as ``charts/fulcrum/files/dashboards/fulcrum.json`` (a unit test keeps the two equal
and checks that every query names series the operator exports). Rows answer a platform team's questions in
order: does each model meet its SLO, at what cost, what did Fulcrum decide and why, are builds healthy, is the
operator healthy. Decisions are also annotations on every time series panel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

UID = "fulcrum-overview"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = 'namespace=~"$namespace",model_deployment=~"$model_deployment"'
MD = "namespace, model_deployment"
LEGEND = "{{namespace}}/{{model_deployment}}"
WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = LEGEND


def _sel(metric: str, extra: str = "") -> str:
    return f"{metric}{{{SELECTOR}{',' + extra if extra else ''}}}"


def attainment(window: str) -> str:
    met = f"sum by ({MD}) (increase({_sel('fulcrum_slo_met_seconds_total')}[{window}]))"
    evaluated = f"sum by ({MD}) (increase({_sel('fulcrum_slo_evaluated_seconds_total')}[{window}]))"
    return f"{met} / {evaluated}"


def _panel(kind: str, title: str, queries: list[Query], unit: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
            for i, q in enumerate(queries)
        ],
        "fieldConfig": {
            "defaults": {"unit": unit, **extra.pop("defaults", {})},
            "overrides": extra.pop("overrides", []),
        },
        **extra,
    }


def timeseries(title: str, queries: list[Query], unit: str, description: str, **extra: Any) -> dict[str, Any]:
    stack = extra.pop("stack", False)
    custom: dict[str, Any] = {"lineWidth": 1, "fillOpacity": 30 if stack else 0, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    if extra.pop("steps", False):
        custom["lineInterpolation"] = "stepAfter"
    return _panel(
        "timeseries",
        title,
        queries,
        unit,
        description,
        defaults={"custom": custom, **extra.pop("defaults", {})},
        options={"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        **extra,
    )


def stat(title: str, query: Query, unit: str, description: str, **extra: Any) -> dict[str, Any]:
    return _panel(
        "stat",
        title,
        [query],
        unit,
        description,
        options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "none"},
        **extra,
    )


def dashed(name_regex: str) -> dict[str, Any]:
    """An override: series whose name matches are dashed red lines (targets, ceilings)."""
    return {
        "matcher": {"id": "byRegexp", "options": name_regex},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
        ],
    }


def rows() -> list[tuple[str, list[tuple[int, dict[str, Any]]]]]:
    """(row title, [(width, panel)]); panels fill rows of 24 columns left to right."""
    rate = "$__rate_interval"
    return [
        (
            "Service level",
            [
                (
                    6,
                    stat(
                        "SLO attainment over the range",
                        Query(attainment("$__range")),
                        "percentunit",
                        "Share of serving time whose latency at the SLO percentile was within the SLO.",
                        defaults={
                            "min": 0,
                            "max": 1,
                            "thresholds": {
                                "mode": "absolute",
                                "steps": [
                                    {"color": "red", "value": None},
                                    {"color": "orange", "value": 0.95},
                                    {"color": "green", "value": 0.99},
                                ],
                            },
                        },
                    ),
                ),
                (
                    6,
                    stat(
                        "Cost per hour",
                        Query(f"sum by ({MD}) ({_sel('fulcrum_cost_per_hour')})"),
                        "currencyUSD",
                        "What every running replica costs per hour, at the prices in spec.nodePools.",
                    ),
                ),
                (
                    6,
                    stat(
                        "Ready replicas",
                        Query(f"sum by ({MD}) ({_sel('fulcrum_ready_replicas')})"),
                        "none",
                        "Ready Triton replicas, every tier and pool.",
                    ),
                ),
                (
                    6,
                    stat(
                        "Decisions over the range",
                        Query(f"sum by ({MD}) (increase({_sel('fulcrum_decisions_total')}[$__range]))"),
                        "none",
                        "Scale-ups, scale-downs and switches the operator applied.",
                    ),
                ),
                (
                    12,
                    timeseries(
                        "Load",
                        [
                            Query(_sel("fulcrum_observed_requests_per_second"), f"{LEGEND} (operator)"),
                            Query(
                                f"sum by ({MD}) (rate({_sel('nv_inference_request_success')}[{rate}])"
                                f" * on ({MD}, model) group_left {_sel('fulcrum_served_model')})",
                                f"{LEGEND} (Triton, via Prometheus)",
                            ),
                        ],
                        "reqps",
                        "The request rate the operator observed over its metrics window, and the success rate of "
                        "the served model name that Prometheus scraped from the Triton pods (when it scrapes them).",
                    ),
                ),
                (
                    12,
                    timeseries(
                        "Latency at the SLO percentile vs the SLO",
                        [
                            Query(_sel("fulcrum_observed_latency_seconds"), f"{LEGEND} p{{{{percentile}}}}"),
                            Query(_sel("fulcrum_slo_latency_seconds"), f"{LEGEND} SLO p{{{{percentile}}}}"),
                        ],
                        "s",
                        "Triton's own latency quantile at the SLO percentile (server side), against spec.slo.",
                        overrides=[dashed(".*SLO.*")],
                    ),
                ),
                (
                    12,
                    timeseries(
                        "SLO attainment, rolling hour",
                        [Query(attainment("1h"))],
                        "percentunit",
                        "Share of the last hour's serving time within the SLO.",
                        defaults={"min": 0, "max": 1},
                    ),
                ),
                (
                    12,
                    timeseries(
                        "Queue time",
                        [Query(_sel("fulcrum_observed_queue_seconds"))],
                        "s",
                        "Mean time a request waited in Triton's queue (dynamic batching and overload).",
                    ),
                ),
            ],
        ),
        (
            "Capacity and cost",
            [
                (
                    12,
                    timeseries(
                        "Replicas by tier and pool",
                        [
                            Query(
                                f"sum by ({MD}, tier, node_pool) ({_sel('fulcrum_ready_replicas')})",
                                f"{LEGEND} {{{{tier}}}}@{{{{node_pool}}}} ready",
                            ),
                            Query(
                                f"sum by ({MD}, tier, node_pool) ({_sel('fulcrum_replicas')})"
                                f" - sum by ({MD}, tier, node_pool) ({_sel('fulcrum_ready_replicas')})",
                                f"{LEGEND} {{{{tier}}}}@{{{{node_pool}}}} starting",
                            ),
                        ],
                        "none",
                        "Ready and starting replicas of each placement; during a switch both placements serve.",
                        stack=True,
                        steps=True,
                    ),
                ),
                (
                    12,
                    timeseries(
                        "Cost vs budget",
                        [
                            Query(_sel("fulcrum_cost_per_hour"), f"{LEGEND} cost/h"),
                            Query(_sel("fulcrum_budget_per_hour"), f"{LEGEND} budget/h"),
                        ],
                        "currencyUSD",
                        "Cost per hour of what runs, against spec.budget.maxCostPerHour.",
                        overrides=[dashed(".*budget.*")],
                        steps=True,
                    ),
                ),
                (
                    12,
                    timeseries(
                        "Budget keeps the SLO out of reach",
                        [Query(_sel("fulcrum_budget_exhausted"))],
                        "bool_yes_no",
                        "1 while the budget keeps the policy from the configuration the SLO needs.",
                        steps=True,
                    ),
                ),
                (
                    12,
                    timeseries(
                        "Metrics the control loop sees",
                        [
                            Query(_sel("fulcrum_metrics_available"), f"{LEGEND} available"),
                            Query(_sel("fulcrum_metrics_pods_reporting"), f"{LEGEND} pods reporting"),
                        ],
                        "none",
                        "Whether the last tick had a usable metrics window (0: the loop holds), and how many pods "
                        "it covered.",
                        steps=True,
                    ),
                ),
            ],
        ),
        (
            "Decisions",
            [
                (
                    12,
                    timeseries(
                        "Decisions by action and reason",
                        [
                            Query(
                                f"sum by ({MD}, action, reason) (increase({_sel('fulcrum_decisions_total')}[{rate}]))",
                                f"{LEGEND} {{{{action}}}} ({{{{reason}}}})",
                            )
                        ],
                        "none",
                        "Every applied decision, by action (ScaleUp, ScaleDown, SwitchTier, SwitchPool) and the "
                        "policy's reason code (LoadRising, BudgetExhausted, LoadAllows, ...).",
                        defaults={"custom": {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}}},
                    ),
                ),
                (
                    12,
                    timeseries(
                        "Hot switches",
                        [
                            Query(
                                f"sum by ({MD}, from_tier, to_tier, outcome) "
                                f"(increase({_sel('fulcrum_hot_switches_total')}[{rate}]))",
                                f"{LEGEND} {{{{from_tier}}}} -> {{{{to_tier}}}} {{{{outcome}}}}",
                            ),
                            Query(
                                f"histogram_quantile(0.95, sum by ({MD}, le) "
                                f"(rate({_sel('fulcrum_hot_switch_duration_seconds_bucket')}[$__range])))",
                                f"{LEGEND} p95 seconds",
                            ),
                        ],
                        "none",
                        "Tier switches served by the running replicas (no new pods), and how long they took.",
                    ),
                ),
            ],
        ),
        (
            "Builds",
            [
                (
                    8,
                    timeseries(
                        "Build phase by pool",
                        [
                            Query(
                                f"max by ({MD}, node_pool, phase) ({_sel('fulcrum_build_phase')}) == 1",
                                f"{LEGEND} {{{{node_pool}}}}: {{{{phase}}}}",
                            )
                        ],
                        "none",
                        "The phase of each pool's current build (Pending, Running, Succeeded, Failed).",
                        steps=True,
                    ),
                ),
                (
                    8,
                    timeseries(
                        "Build duration (p50, p95)",
                        [
                            Query(
                                f"histogram_quantile({q}, sum by (node_pool, outcome, le) "
                                f"(increase({_sel('fulcrum_build_duration_seconds_bucket')}[$__range])))",
                                f"p{int(q * 100)} {{{{node_pool}}}} {{{{outcome}}}}",
                            )
                            for q in (0.5, 0.95)
                        ]
                        + [
                            Query(
                                f"sum by (node_pool, outcome) (increase({_sel('fulcrum_builds_total')}[$__range]))",
                                "builds {{node_pool}} {{outcome}}",
                            )
                        ],
                        "s",
                        "Export, quantisation, accuracy checks and profiling of a build Job, start to end.",
                    ),
                ),
                (
                    8,
                    timeseries(
                        "Time to Ready (p50, p95)",
                        [
                            Query(
                                f"histogram_quantile({q}, sum by (le) "
                                f"(increase({_sel('fulcrum_time_to_ready_seconds_bucket')}[$__range])))",
                                f"p{int(q * 100)}",
                            )
                            for q in (0.5, 0.95)
                        ],
                        "s",
                        "From a ModelDeployment's creation (or from when it stopped being Ready) until Ready.",
                    ),
                ),
            ],
        ),
        (
            "Operator",
            [
                (
                    6,
                    timeseries(
                        "Leader",
                        [Query("sum(fulcrum_leader)", "replicas leading"), Query("count(fulcrum_leader)", "replicas")],
                        "none",
                        "Operator replicas that lead (exactly one should) and replicas running.",
                        steps=True,
                    ),
                ),
                (
                    6,
                    timeseries(
                        "Reconcile duration (p50, p99)",
                        [
                            Query(
                                f"histogram_quantile({q}, sum by (le) "
                                f"(rate(fulcrum_reconcile_duration_seconds_bucket[{rate}])))",
                                f"p{int(q * 100)}",
                            )
                            for q in (0.5, 0.99)
                        ],
                        "s",
                        "Time to reconcile one ModelDeployment.",
                    ),
                ),
                (
                    6,
                    timeseries(
                        "Kubernetes API requests and errors",
                        [
                            Query(f"sum by (verb) (rate(fulcrum_api_requests_total[{rate}]))", "{{verb}}"),
                            Query(f"sum(rate(fulcrum_reconcile_errors_total[{rate}]))", "reconcile errors"),
                        ],
                        "reqps",
                        "Requests the operator sends to the API server, by verb, and reconciliations that failed "
                        "(retried with backoff).",
                    ),
                ),
                (
                    6,
                    timeseries(
                        "Work queue depth",
                        [Query("sum(fulcrum_workqueue_depth)", "waiting")],
                        "none",
                        "ModelDeployments waiting to be reconciled.",
                    ),
                ),
            ],
        ),
    ]


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, row in rows():
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": next_id,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
            }
        )
        next_id += 1
        y += 1
        x = 0
        for width, panel in row:
            if x + width > WIDTH:
                x, y = 0, y + 8
            panels.append({**panel, "id": next_id, "gridPos": {"h": 8, "w": width, "x": x, "y": y}})
            next_id += 1
            x += width
        y += 8
    return {
        "uid": UID,
        "title": "Fulcrum",
        "description": "Latency against the SLO, cost against the budget, and every decision Fulcrum made.",
        "tags": ["fulcrum", "triton", "autoscaling"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "",
        "graphTooltip": 1,
        "links": [],
        "annotations": {
            "list": [
                {
                    "name": "Decisions",
                    "enable": True,
                    "iconColor": "purple",
                    "datasource": DATASOURCE,
                    "expr": f"sum by ({MD}, action, reason) (changes({_sel('fulcrum_decisions_total')}[1m])) > 0",
                    "step": "30s",
                    "titleFormat": "{{action}}",
                    "textFormat": "{{namespace}}/{{model_deployment}}: {{reason}}",
                    "tagKeys": "namespace,model_deployment,action",
                    "useValueForTime": False,
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                _variable("namespace", "Namespace", "label_values(fulcrum_cost_per_hour, namespace)"),
                _variable(
                    "model_deployment",
                    "ModelDeployment",
                    'label_values(fulcrum_cost_per_hour{namespace=~"$namespace"}, model_deployment)',
                ),
            ]
        },
        "panels": panels,
    }


def queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets, annotations (variables excluded)."""
    found = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    found += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    return found


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")

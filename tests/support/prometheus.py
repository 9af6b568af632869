"""The dev cluster's Prometheus in e2e tests: an operator (the chart's) that reads it, instant queries."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from fulcrum.dev import prometheus as dev_prometheus
from fulcrum.dev.chart_values import merged
from fulcrum.dev.objectstore import ObjectStoreConfig
from tests.support.polling import wait_for
from tests.support.release import Release, dev_values


def url(cluster: Any) -> str:
    return dev_prometheus.url(cluster.config)


def api(cluster: Any, path: str, **params: str) -> dict[str, Any]:
    """GET /api/v1/<path>: the whole JSON answer (also for errors, which Prometheus sends with status 4xx)."""
    full = f"{url(cluster)}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(full, timeout=10) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))


def query(cluster: Any, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query, now or at the Unix time ``at``."""
    answer = api(cluster, "query", query=promql, **({"time": f"{at:.3f}"} if at is not None else {}))
    assert answer["status"] == "success", (promql, answer)
    return list(answer["data"]["result"])


def value(cluster: Any, promql: str) -> float | None:
    result = query(cluster, promql)
    return float(result[0]["value"][1]) if result else None


def prometheus_operator(cluster: Any, build_namespace: str, store: ObjectStoreConfig) -> Release:
    """The chart's operator reading Triton metrics from the dev Prometheus (``metrics.source=prometheus`` at the
    address pods reach), which scrapes the operator's own /metrics through the chart's metrics Service."""
    values = merged(
        dev_values(cluster.images, store),
        {
            "metrics": {
                "source": "prometheus",
                "prometheusUrl": dev_prometheus.in_cluster_url(cluster.config),
                "podMonitor": {"enabled": False},  # the dev Prometheus has its own scrape config, no CRDs
            }
        },
    )
    release = Release(cluster, build_namespace, store, values).install()
    wait_for(
        "Prometheus to scrape the operator",
        lambda: value(cluster, f'up{{job="{dev_prometheus.OPERATOR_JOB}",namespace="{build_namespace}"}}') == 1.0,
        timeout=60,
        every=1,
        on_timeout=release.describe,
    )
    return release


def dashboard_results(
    cluster: Any, namespace: str, name: str, range_: str = "10m", at: float | None = None
) -> dict[str, list[list[Any]]]:
    """Every query of the chart's dashboard, for one ModelDeployment, against the dev Prometheus: panel title ->
    the results of its queries (each query must be valid PromQL)."""
    from fulcrum.monitoring import dashboard

    out: dict[str, list[list[Any]]] = {}
    for panel in dashboard.dashboard()["panels"]:
        for target in panel.get("targets", []):
            promql = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$__range", range_)
                .replace("$namespace", namespace)
                .replace("$model_deployment", name)
            )
            out.setdefault(panel["title"], []).append(query(cluster, promql, at))
    return out

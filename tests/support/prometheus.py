"""The dev cluster's Prometheus in e2e tests: an operator that reads it, instant queries, the scrape targets."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from fulcrum.dev import objectstore
from fulcrum.dev import prometheus as dev_prometheus
from fulcrum.dev.paths import DevHome
from tests.support.operator_process import OperatorProcess, free_port
from tests.support.polling import wait_for


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


def query(cluster: Any, promql: str) -> list[dict[str, Any]]:
    answer = api(cluster, "query", query=promql)
    assert answer["status"] == "success", (promql, answer)
    return list(answer["data"]["result"])


def value(cluster: Any, promql: str) -> float | None:
    result = query(cluster, promql)
    return float(result[0]["value"][1]) if result else None


def prometheus_operator(cluster: Any, build_namespace: str, repository: Path, workdir: Path) -> OperatorProcess:
    """`fulcrum run` reading Triton metrics from the dev Prometheus, which scrapes the operator's own /metrics."""
    port = free_port()
    process = OperatorProcess(
        kubeconfig=Path(cluster.kubeconfig),
        build_namespace=build_namespace,
        repository=repository,
        log_path=workdir / "operator.log",
        store=objectstore.load(cluster.home),
        extra_args=[
            "--metrics-source",
            f"prometheus={url(cluster)}",
            "--metrics-port",
            str(port),
            "--metrics-address",
            "127.0.0.1",
        ],
    ).start()
    name = f"operator-{port}"
    dev_prometheus.register_host_target(DevHome(cluster.home.root), name, f"127.0.0.1:{port}")
    wait_for(
        "Prometheus to scrape the operator",
        lambda: value(cluster, f'up{{job="{dev_prometheus.HOST_OPERATOR_JOB}",instance="{name}"}}') == 1.0,
        timeout=60,
        every=1,
        on_timeout=process.log,
    )
    return process


def unregister(cluster: Any, process: OperatorProcess) -> None:
    for arg, following in zip(process.extra_args, process.extra_args[1:], strict=False):
        if arg == "--metrics-port":
            dev_prometheus.unregister_host_target(DevHome(cluster.home.root), f"operator-{following}")


def dashboard_results(cluster: Any, namespace: str, name: str, range_: str = "10m") -> dict[str, list[list[Any]]]:
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
            out.setdefault(panel["title"], []).append(query(cluster, promql))
    return out

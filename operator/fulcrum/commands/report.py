"""``fulcrum report NAMESPACE/NAME``: what Fulcrum decided for one ModelDeployment and why, as a table and a PNG."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import click

MAX_SPAN_SECONDS = 6 * 3600.0
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r}: expected a number and a unit, e.g. 90s, 30m, 2h, 1d", param_hint="--since")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def _read_cluster(kubeconfig: str | None, namespace: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from kubernetes import client, config  # noqa: PLC0415 - keep `fulcrum --help` light

    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    try:
        md: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(  # type: ignore[assignment]
            "fulcrum.dev", "v1alpha1", namespace, "modeldeployments", name
        )
    except client.ApiException as exc:
        if exc.status == 404:
            raise click.ClickException(f"ModelDeployment {namespace}/{name} not found") from exc
        raise click.ClickException(f"reading ModelDeployment {namespace}/{name}: {exc.status} {exc.reason}") from exc
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=ModelDeployment,involvedObject.name={name}"
    )
    return md, [api.sanitize_for_serialization(e) for e in events.items]


def build_history(
    md: dict[str, Any], events: list[dict[str, Any]], *, now: float, since: float | None, prometheus_url: str | None
) -> tuple[Any, list[str]]:
    """The History of ``md`` and warnings for the user."""
    from fulcrum.api import parse_model_deployment  # noqa: PLC0415
    from fulcrum.report import history as hist  # noqa: PLC0415

    warnings: list[str] = []
    spec = parse_model_deployment({k: md[k] for k in ("apiVersion", "kind", "metadata", "spec")}).spec
    created = hist.parse_time(md["metadata"].get("creationTimestamp")) or now - 3600.0
    start = max(created, now - (since if since is not None else MAX_SPAN_SECONDS))
    rows = [r for r in hist.events_of(events) if r.time >= start - 1.0]
    status = md.get("status") or {}
    history = hist.History(
        namespace=md["metadata"]["namespace"],
        name=md["metadata"]["name"],
        start=start,
        end=now,
        slo_ms=float(spec.slo.latency_ms),
        percentile=format(spec.slo.percentile, "f"),
        budget=None if spec.budget.max_cost_per_hour is None else float(spec.budget.max_cost_per_hour),
        pool_costs={p.name: float(p.cost_per_hour) for p in spec.node_pools},
        decisions=hist.decisions_of(rows),
        events=rows,
        status=status,
    )
    if prometheus_url:
        from fulcrum.report.prometheus import PrometheusQueryError, RangeQuery, series_of  # noqa: PLC0415

        step = max(5.0, (now - start) / 600.0)
        try:
            served = (status.get("serving") or {}).get("modelName")
            figures = series_of(RangeQuery(prometheus_url, start, now, step), history.namespace, history.name, served)
        except PrometheusQueryError as exc:
            raise click.ClickException(str(exc)) from exc
        if figures["replicas"]:
            history.source = "prometheus"
            history.hold_seconds = 2 * step
            history.load = figures["load"]
            history.replicas = figures["replicas"]
            history.latency_ms = figures["latency_ms"]
            history.cost = figures["cost"]
            history.slo_attainment = figures["slo_attainment"]
        else:
            warnings.append(
                f"Prometheus at {prometheus_url} has no fulcrum_ready_replicas for {history.namespace}/{history.name} "
                "(does it scrape the operator?); drawing the configuration the decisions set instead"
            )
    if history.source == "events":
        current = None
        if status.get("activeTier") and status.get("activeNodePool") and status.get("replicas") is not None:
            current = hist.Placement(status["activeTier"], status["activeNodePool"], int(status["replicas"]))
        initial = None if history.decisions else current
        history.replicas = hist.desired_replicas(history.decisions, start, now, initial)
        history.cost = hist.desired_cost(history.replicas, history.pool_costs)
    return history, warnings


@click.command(help="The decision history of one ModelDeployment (events, status, Prometheus) as a table and a PNG.")
@click.argument("target", metavar="NAMESPACE/NAME")
@click.option(
    "--prometheus",
    "prometheus_url",
    envvar="FULCRUM_PROMETHEUS_URL",
    default=None,
    help="A Prometheus that scrapes the operator (and Triton): load, replicas, latency and cost as they ran. "
    "Without it the picture shows the configuration each decision set. [env FULCRUM_PROMETHEUS_URL]",
)
@click.option("--since", default=None, help="How far back, e.g. 30m or 2h (default: since creation, at most 6h).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="PNG to write (default NAME.png)."
)
@click.option("--no-plot", is_flag=True, help="Only the table.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON instead of the table.")
@click.option("--kubeconfig", default=None, help="Kubeconfig (default: $KUBECONFIG).")
def report(
    *,
    target: str,
    prometheus_url: str | None,
    since: str | None,
    out: Path | None,
    no_plot: bool,
    as_json: bool,
    kubeconfig: str | None,
) -> None:
    namespace, _, name = target.partition("/")
    if not namespace or not name:
        raise click.BadParameter(f"{target!r}: expected NAMESPACE/NAME", param_hint="NAMESPACE/NAME")
    md, events = _read_cluster(kubeconfig, namespace, name)
    history, warnings = build_history(
        md,
        events,
        now=time.time(),
        since=None if since is None else parse_duration(since),
        prometheus_url=prometheus_url,
    )
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    path = None
    if not no_plot:
        from fulcrum.report.plot import plot_history  # noqa: PLC0415 - matplotlib only for the picture

        path = plot_history(history, out or Path(f"{name}.png"))
    if as_json:
        from fulcrum.report.history import to_json  # noqa: PLC0415

        click.echo(json.dumps({**to_json(history), "png": None if path is None else str(path)}, indent=1))
        return
    _print(history)
    if path is not None:
        click.echo(f"wrote {path}")


def _print(history: Any) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from fulcrum.report.history import summary_rows  # noqa: PLC0415

    console = Console()
    if not console.is_terminal:  # piped or captured: do not fold the reasons into an 80-column box
        console = Console(width=180)
    status = history.status
    observed = status.get("observed") or {}
    budget = "none" if history.budget is None else f"{history.budget:g}/h"
    console.print(
        f"[bold]{history.namespace}/{history.name}[/]: {status.get('activeTier')}@{status.get('activeNodePool')} "
        f"x{status.get('replicas')} ({status.get('readyReplicas')} ready), cost {status.get('costPerHour')}/h "
        f"(budget {budget}), p{history.percentile} {observed.get('latencyMs')} ms (SLO {history.slo_ms:g} ms) at "
        f"{observed.get('requestsPerSecond')} rps"
        + ("" if history.slo_attainment is None else f"; SLO attainment {history.slo_attainment:.1%}")
    )
    table = Table(title=f"decisions ({len(history.decisions)}; times UTC; source: {history.source})")
    for column in ("time", "action", "from -> to", "why", "reason"):
        table.add_column(column, overflow="fold")
    for row in summary_rows(history):
        table.add_row(*row)
    console.print(table)

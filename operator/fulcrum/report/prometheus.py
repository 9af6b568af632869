"""What ``fulcrum report`` asks Prometheus about one ModelDeployment: the operator's own series over a range."""

from __future__ import annotations

import contextlib
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from fulcrum.report.history import Series


class PrometheusQueryError(RuntimeError):
    pass


@dataclass(frozen=True)
class RangeQuery:
    url: str
    start: float
    end: float
    step: float

    def __call__(self, promql: str) -> list[tuple[dict[str, str], Series]]:
        params = {"query": promql, "start": f"{self.start:.3f}", "end": f"{self.end:.3f}", "step": f"{self.step:g}"}
        data = _get(self.url, "/api/v1/query_range", params, promql)
        out = []
        for item in data.get("result", []):
            points = [(float(t), float(v)) for t, v in item.get("values", []) if not math.isnan(float(v))]
            out.append((dict(item.get("metric", {})), Series(tuple(t for t, _ in points), tuple(v for _, v in points))))
        return out

    def instant(self, promql: str) -> float | None:
        data = _get(self.url, "/api/v1/query", {"query": promql, "time": f"{self.end:.3f}"}, promql)
        result = data.get("result", [])
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value


def _get(base: str, path: str, params: dict[str, str], promql: str) -> dict[str, Any]:
    url = f"{base.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the URL the user gave
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError):
            detail = json.loads(detail).get("error", detail)
        raise PrometheusQueryError(f"Prometheus at {base} rejected {promql!r}: {exc.code} {detail}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PrometheusQueryError(f"Prometheus at {base} did not answer {promql!r}: {exc}") from exc
    if body.get("status") != "success":
        raise PrometheusQueryError(f"Prometheus at {base} rejected {promql!r}: {body.get('error')}")
    data: dict[str, Any] = body.get("data", {})
    return data


def series_of(query: RangeQuery, namespace: str, name: str, served: str | None = None) -> dict[str, Any]:
    """The figures ``fulcrum report`` draws, from the operator's series (and Triton's, when scraped).

    ``served``: the model name clients call; Triton counts a request under it and again under the routed tier.
    """
    sel = f'namespace="{namespace}",model_deployment="{name}"'
    window = f"{max(60, round(query.end - query.start))}s"
    load = {}
    for _, series in query(f"fulcrum_observed_requests_per_second{{{sel}}}"):
        load["operator"] = series
    triton = sel if served is None else f'{sel},model="{served}"'
    for _, series in query(f"sum(rate(nv_inference_request_success{{{triton}}}[1m]))"):
        load["Triton (Prometheus)"] = series
    replicas = {
        f"{labels.get('tier', '?')}@{labels.get('node_pool', '?')}": series
        for labels, series in query(f"sum by (tier, node_pool) (fulcrum_ready_replicas{{{sel}}})")
    }
    latency = next((s for _, s in query(f"max(fulcrum_observed_latency_seconds{{{sel}}}) * 1000")), None)
    cost = next((s for _, s in query(f"max(fulcrum_cost_per_hour{{{sel}}})")), None)
    attainment = query.instant(
        f"sum(increase(fulcrum_slo_met_seconds_total{{{sel}}}[{window}])) "
        f"/ sum(increase(fulcrum_slo_evaluated_seconds_total{{{sel}}}[{window}]))"
    )
    return {"load": load, "replicas": replicas, "latency_ms": latency, "cost": cost, "slo_attainment": attainment}

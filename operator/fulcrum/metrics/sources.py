"""Where fleet metrics come from: scraping each ready Triton pod directly, or a Prometheus server.

Both give a :class:`FleetMetrics` for one ModelDeployment. Scraping keeps a sliding window per
ModelDeployment; Prometheus computes rates itself (PromQL over ``nv_inference_*``).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from fulcrum.metrics.triton import TritonSample, parse_triton_metrics
from fulcrum.metrics.window import FleetMetrics, SlidingWindow

SCRAPE_TIMEOUT_SECONDS = 3.0


class MetricsSource(Protocol):
    async def observe(
        self, key: tuple[str, str], targets: list[str], model: str | None, percentile: float
    ) -> FleetMetrics | None: ...

    def forget(self, key: tuple[str, str]) -> None: ...

    async def close(self) -> None: ...


async def scrape(session: aiohttp.ClientSession, url: str, model: str | None) -> TritonSample | None:
    """One pod's metrics, or None when it does not answer in time (a pod that is starting or dying)."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS)) as response:
            if response.status != 200:
                return None
            return parse_triton_metrics(await response.text(), model)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


@dataclass
class ScrapeSource:
    """Scrape ``http://<pod-ip>:<metrics port>/metrics`` of every ready pod; a window per ModelDeployment."""

    window_seconds: float = 60.0
    windows: dict[tuple[str, str], SlidingWindow] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None

    async def observe(
        self, key: tuple[str, str], targets: list[str], model: str | None, percentile: float
    ) -> FleetMetrics | None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        samples = await asyncio.gather(*(scrape(self._session, url, model) for url in targets))
        window = self.windows.setdefault(key, SlidingWindow(self.window_seconds))
        window.add(time.monotonic(), dict(zip(targets, samples, strict=True)))
        return window.metrics(percentile)

    def forget(self, key: tuple[str, str]) -> None:
        self.windows.pop(key, None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass
class PrometheusSource:
    """PromQL over the ``nv_inference_*`` series Prometheus scraped from the Triton pods."""

    url: str
    window: str = "1m"
    _session: aiohttp.ClientSession | None = None

    def queries(self, namespace: str, name: str, percentile: float, model: str | None = None) -> dict[str, str]:
        """PromQL per figure; with ``model`` (the served name) requests count once, queue time over all models."""
        every = f'namespace="{namespace}",model_deployment="{name}"'
        sel = every if model is None else f'{every},model="{model}"'
        q = f"{percentile / 100:.3f}".rstrip("0")
        w = self.window
        success = f"sum(rate(nv_inference_request_success{{{sel}}}[{w}]))"
        requests = f"({success} + sum(rate(nv_inference_request_failure{{{sel}}}[{w}])))"
        return {
            "rate": requests,
            "failures": f"sum(rate(nv_inference_request_failure{{{sel}}}[{w}]))",
            "latency_us": (
                f'sum(nv_inference_request_summary_us{{{sel},quantile="{q}"}} '
                f"* on(pod) group_left sum by (pod) (rate(nv_inference_request_success{{{sel}}}[{w}]))) "
                f"/ sum(rate(nv_inference_request_success{{{sel}}}[{w}]))"
            ),
            "queue_us": f"sum(rate(nv_inference_queue_duration_us{{{every}}}[{w}])) / {requests}",
            "pods": f"count(nv_inference_request_success{{{sel}}})",
        }

    async def _query(self, session: aiohttp.ClientSession, promql: str) -> float | None:
        try:
            async with session.get(
                f"{self.url.rstrip('/')}/api/v1/query",
                params={"query": promql},
                timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS),
            ) as response:
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        result = body.get("data", {}).get("result", [])
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    async def observe(
        self, key: tuple[str, str], targets: list[str], model: str | None, percentile: float
    ) -> FleetMetrics | None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        queries = self.queries(key[0], key[1], percentile, model)
        values = dict(
            zip(queries, await asyncio.gather(*(self._query(self._session, q) for q in queries.values())), strict=True)
        )
        if values["rate"] is None:
            return None
        return FleetMetrics(
            requests_per_second=values["rate"],
            latency_ms=None if values["latency_us"] is None else values["latency_us"] / 1000.0,
            queue_ms=None if values["queue_us"] is None else values["queue_us"] / 1000.0,
            failures_per_second=values["failures"] or 0.0,
            pods_reporting=int(values["pods"] or 0),
            window_seconds=60.0,
        )

    def forget(self, key: tuple[str, str]) -> None:
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def source_from_spec(text: str) -> ScrapeSource | PrometheusSource:
    """``scrape`` (default) or ``prometheus=<url>``, as given to ``fulcrum run --metrics-source``."""
    if text in ("", "scrape"):
        return ScrapeSource()
    if text.startswith("prometheus="):
        return PrometheusSource(text.removeprefix("prometheus="))
    raise ValueError(f"--metrics-source {text!r}: expected 'scrape' or 'prometheus=<url>'")

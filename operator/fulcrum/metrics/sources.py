"""Where fleet metrics come from: scraping each ready Triton pod directly, or a Prometheus server.

Both give a :class:`Reading` per ModelDeployment and control tick: the figures (or None: *unknown*, never zero),
whether every ready pod counted over the window (``complete``; otherwise the rate is a lower bound), and why not,
in words that name the pod, the URL or the PromQL that failed. Scraping keeps a sliding window per
ModelDeployment; Prometheus computes rates itself (PromQL over ``nv_inference_*``).

The rate window is short (:data:`SCRAPE_WINDOW_SECONDS`, :data:`PROMETHEUS_WINDOW_SECONDS`): the policy keeps its own
history of the rates it observed and holds the highest of it before scaling in, so a long window here would only
delay what it sees. With a minute's window a step in the load reached the policy over four ticks, and the policy
simulated that way met its SLO in 95.35 % of the time at the 5th percentile of the held-out scenarios instead of
97.65 % with the last tick's rate (docs/policy.md).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from fulcrum.metrics.triton import TritonSample, parse_triton_metrics
from fulcrum.metrics.window import FleetMetrics, SlidingWindow

SCRAPE_TIMEOUT_SECONDS = 3.0
SCRAPE_WINDOW_SECONDS = 15.0
"""The scrape source's rate window: the last 15 s, or the last tick when ticks are further apart (the window always
keeps the newest sample at or before its start as the baseline). The simulator gives the policy each 15 s step's
rate, the same thing."""
PROMETHEUS_WINDOW_SECONDS = 30.0
"""The Prometheus source's ``rate()`` range: two samples at Prometheus's common 15 s scrape interval (a range
holding fewer than two gives no series at all)."""
TRITON_QUANTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
"""The percentiles Triton's latency summary reports (its default ``summary_quantiles``)."""


@dataclass(frozen=True)
class Target:
    """One ready Triton pod: its name, its metrics URL and its uid (from the EndpointSlice's targetRef)."""

    pod: str
    url: str
    uid: str = ""

    @property
    def series(self) -> str:
        """What the pod's counters are kept under: the pod itself (name and uid), never its address. A new pod can
        get a deleted pod's IP, and a pod recreated under the same name is another process: either would otherwise
        continue the old counters' history (its small counter read as a reset of the old one's large count)."""
        if not self.pod:
            return self.url
        return f"{self.pod}#{self.uid}" if self.uid else self.pod

    def __str__(self) -> str:
        return f"pod {self.pod} ({self.url})" if self.pod else self.url


@dataclass(frozen=True)
class Reading:
    """What one control tick knows of a fleet's metrics."""

    metrics: FleetMetrics | None
    """The window's figures; None when there is no usable window (unknown, never zero load)."""
    complete: bool = False
    """Every ready pod counted over the whole window. False: the rate is a lower bound."""
    reason: str = "MetricsAvailable"
    """CamelCase, for the MetricsAvailable condition: MetricsAvailable, Collecting, NoReadyPods, ScrapeFailed,
    PrometheusUnavailable, QueryFailed, NoSeries, PercentileNotReported."""
    message: str = ""
    window_end: float | None = None
    """Wall-clock time (Unix seconds) of the newest sample in the window."""
    healthy: bool | None = True
    """The MetricsAvailable condition's status: True, False (something failed: a Warning), None (not yet)."""


class MetricsSource(Protocol):
    async def observe(
        self, key: tuple[str, str], targets: list[Target], model: str | None, percentile: float
    ) -> Reading: ...

    def forget(self, key: tuple[str, str]) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ScrapeResult:
    sample: TritonSample | None
    error: str = ""


async def scrape(session: aiohttp.ClientSession, url: str, model: str | None) -> ScrapeResult:
    """One pod's metrics, or why there are none (a pod that is starting, dying, or unreachable)."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS)) as response:
            if response.status != 200:
                return ScrapeResult(None, f"HTTP {response.status}")
            return ScrapeResult(parse_triton_metrics(await response.text(), model))
    except TimeoutError:
        return ScrapeResult(None, f"no answer within {SCRAPE_TIMEOUT_SECONDS:g} s")
    except (aiohttp.ClientError, ValueError) as exc:
        return ScrapeResult(None, str(exc) or type(exc).__name__)


def _listing(items: list[str], limit: int = 3) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class ScrapeSource:
    """Scrape ``http://<pod-ip>:<metrics port>/metrics`` of every ready pod; a window per ModelDeployment, each pod's
    counters kept under the pod (:attr:`Target.series`), not its address.

    A reading is unknown (``metrics`` None) when no pod answered this tick, or when the window spans less than
    ``min_span_seconds`` (after a restart: the first scrape is only a baseline). It is incomplete when a ready pod
    did not answer this tick or has only its baseline yet. A pod that fails two scrapes in a row (or every pod at
    once) turns the condition False; a single miss of one pod only makes the reading incomplete.
    """

    window_seconds: float = SCRAPE_WINDOW_SECONDS
    min_span_seconds: float = 10.0
    windows: dict[tuple[str, str], SlidingWindow] = field(default_factory=dict)
    misses: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _session: aiohttp.ClientSession | None = None

    async def observe(
        self, key: tuple[str, str], targets: list[Target], model: str | None, percentile: float
    ) -> Reading:
        if not targets:
            return Reading(None, False, "NoReadyPods", "no ready Triton pod to scrape", healthy=None)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        results = await asyncio.gather(*(scrape(self._session, t.url, model) for t in targets))
        now, wall = self.clock(), self.wall()
        window = self.windows.setdefault(key, SlidingWindow(self.window_seconds))
        window.add(now, {t.series: r.sample for t, r in zip(targets, results, strict=True)})
        misses = self.misses.setdefault(key, {})
        failed = []
        for target, result in zip(targets, results, strict=True):
            misses[target.series] = misses.get(target.series, 0) + 1 if result.sample is None else 0
            if result.sample is None:
                failed.append(f"{target}: {result.error}")
        for series in [s for s in misses if s not in {t.series for t in targets}]:
            del misses[series]
        if len(failed) == len(targets):
            return Reading(
                None,
                False,
                "ScrapeFailed",
                f"no Triton pod answered: {_listing(failed)}",
                window_end=None,
                healthy=False,
            )
        metrics = window.metrics(percentile)
        if metrics is None or metrics.window_seconds < self.min_span_seconds:
            return Reading(
                None,
                False,
                "Collecting",
                f"collecting a metrics window ({0 if metrics is None else metrics.window_seconds:.0f} s of at least "
                f"{self.min_span_seconds:.0f} s)",
                healthy=None,
            )
        starting = [str(t) for t in targets if window.samples(t.series) < 2]
        complete = not failed and not starting
        persistent = [f"{t}: {r.error}" for t, r in zip(targets, results, strict=True) if misses.get(t.series, 0) >= 2]
        end = wall - (now - (window.newest() or now))
        counted = len(targets) - len(failed)
        if persistent:
            return Reading(
                metrics,
                False,
                "ScrapeFailed",
                f"{len(failed)} of {len(targets)} Triton pods did not answer (the rate is a lower bound): "
                f"{_listing(persistent)}",
                end,
                healthy=False,
            )
        message = f"{counted} of {len(targets)} ready pods scraped over {metrics.window_seconds:.0f} s"
        if failed:
            message += f"; missed this tick: {_listing(failed)}"
        if starting:
            message += f"; new, counted from the next tick: {_listing(starting)}"
        return Reading(metrics, complete, "MetricsAvailable", message, end)

    def forget(self, key: tuple[str, str]) -> None:
        self.windows.pop(key, None)
        self.misses.pop(key, None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class QueryError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_vector(body: Any) -> list[tuple[dict[str, str], float]]:
    """The samples of a Prometheus instant-query response (``resultType`` vector or scalar), NaN dropped."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", "no status") if isinstance(body, dict) else "not a JSON object"
        raise QueryError("QueryFailed", str(error))
    data = body.get("data") or {}
    result = data.get("result") or []
    if data.get("resultType") == "scalar":
        result = [{"metric": {}, "value": result}] if result else []
    out = []
    for item in result:
        value = float(item["value"][1])
        if not math.isnan(value):
            out.append(({str(k): str(v) for k, v in (item.get("metric") or {}).items()}, value))
    return out


def quantile_label(percentile: float) -> str | None:
    """Triton's ``quantile`` label value for an SLO percentile, or None when Triton does not report it."""
    if not any(abs(percentile - q) < 1e-9 for q in TRITON_QUANTILES):
        return None
    return f"{percentile / 100:.4f}".rstrip("0").rstrip(".")


@dataclass
class PrometheusSource:
    """PromQL over the ``nv_inference_*`` series Prometheus scraped from the Triton pods.

    Series are selected by the labels the scrape configuration copies from each pod:
    ``{namespace="<ns>", model_deployment="<name>"}`` (a pod-name pattern would also match other models whose
    names share the prefix). A reading is incomplete when a ready pod has no series in the window, and unknown
    when Prometheus cannot be reached, a query fails, or the newest sample is older than ``stale_seconds``.
    """

    url: str
    window_seconds: float = PROMETHEUS_WINDOW_SECONDS
    """The ``rate()`` range; it must hold two of Prometheus's scrapes of the Triton pods."""
    stale_seconds: float = 120.0
    wall: Callable[[], float] = time.time
    _session: aiohttp.ClientSession | None = None

    @property
    def window(self) -> str:
        """The range as PromQL writes it (``30s``; milliseconds when the seconds are not whole)."""
        if float(self.window_seconds).is_integer():
            return f"{int(self.window_seconds)}s"
        return f"{round(self.window_seconds * 1000)}ms"

    @staticmethod
    def selector(namespace: str, name: str) -> str:
        return f'namespace="{namespace}",model_deployment="{name}"'

    def queries(self, namespace: str, name: str, percentile: float, model: str | None = None) -> dict[str, str]:
        """The PromQL of one reading; no ``latency_us`` when Triton does not report ``percentile``.

        With ``model`` (the served name) requests count once (its tier counts them again); queue time is over
        every model of the pods."""
        every = self.selector(namespace, name)
        sel = every if model is None else f'{every},model="{model}"'
        w = self.window
        success = f"sum(rate(nv_inference_request_success{{{sel}}}[{w}]))"
        failures = f"sum(rate(nv_inference_request_failure{{{sel}}}[{w}]))"
        requests = f"({success} + {failures})"
        out = {
            "rate": requests,
            "failures": failures,
            "queue_us": f"sum(rate(nv_inference_queue_duration_us{{{every}}}[{w}])) / {requests}",
            "pods": f"sum by (pod) (rate(nv_inference_request_success{{{sel}}}[{w}]))",
            "newest": f"max(timestamp(nv_inference_request_success{{{sel}}}))",
        }
        q = quantile_label(percentile)
        if q is not None:
            out["latency_us"] = (
                f'sum(nv_inference_request_summary_us{{{sel},quantile="{q}"}} '
                f"* on(pod) group_left sum by (pod) (rate(nv_inference_request_success{{{sel}}}[{w}]))) "
                f"/ sum(rate(nv_inference_request_success{{{sel}}}[{w}]))"
            )
        return out

    async def _query(self, session: aiohttp.ClientSession, promql: str) -> list[tuple[dict[str, str], float]]:
        endpoint = f"{self.url.rstrip('/')}/api/v1/query"
        try:
            async with session.get(
                endpoint, params={"query": promql}, timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS)
            ) as response:
                text = await response.text()
                status = response.status
        except TimeoutError:
            raise QueryError(
                "PrometheusUnavailable", f"{endpoint}: no answer within {SCRAPE_TIMEOUT_SECONDS:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise QueryError("PrometheusUnavailable", f"{endpoint}: {exc}") from None
        try:
            body = json.loads(text)
        except ValueError:
            raise QueryError("PrometheusUnavailable", f"{endpoint}: HTTP {status}, not a Prometheus answer") from None
        try:
            return parse_vector(body)
        except QueryError as exc:
            raise QueryError("QueryFailed", f"PromQL {promql!r} failed: {exc.message}") from None

    async def observe(
        self, key: tuple[str, str], targets: list[Target], model: str | None, percentile: float
    ) -> Reading:
        if not targets:
            return Reading(None, False, "NoReadyPods", "no ready Triton pod to measure", healthy=None)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        queries = self.queries(key[0], key[1], percentile, model)
        answers = await asyncio.gather(
            *(self._query(self._session, q) for q in queries.values()), return_exceptions=True
        )
        values: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, answer in zip(queries, answers, strict=True):
            if isinstance(answer, QueryError):
                return Reading(None, False, answer.reason, answer.message, healthy=False)
            if isinstance(answer, BaseException):
                raise answer
            values[name] = answer
        newest = values["newest"][0][1] if values["newest"] else None
        if not values["rate"] or newest is None:
            return Reading(
                None,
                False,
                "NoSeries",
                f"Prometheus at {self.url} has no series for {queries['rate']!r} (are the Triton pods scraped, "
                f"with namespace and model_deployment labels, at least twice in {self.window}? "
                "--metrics-window-seconds sets the range)",
                healthy=False,
            )
        age = self.wall() - newest
        if age > self.stale_seconds:
            return Reading(
                None,
                False,
                "NoSeries",
                f"the newest sample of {queries['newest']!r} is {age:.0f} s old (Prometheus stopped scraping?)",
                newest,
                healthy=False,
            )
        reporting = {labels.get("pod", "") for labels, _ in values["pods"]}
        missing = [str(t) for t in targets if t.pod and t.pod not in reporting]
        rate = values["rate"][0][1]
        latency = values.get("latency_us")
        metrics = FleetMetrics(
            requests_per_second=rate,
            latency_ms=latency[0][1] / 1000.0 if latency else None,
            queue_ms=values["queue_us"][0][1] / 1000.0 if values["queue_us"] else None,
            failures_per_second=values["failures"][0][1] if values["failures"] else 0.0,
            pods_reporting=len(reporting),
            window_seconds=self.window_seconds,
        )
        if "latency_us" not in queries:
            quantiles = ", ".join(f"{q:g}" for q in TRITON_QUANTILES)
            return Reading(
                metrics,
                not missing,
                "PercentileNotReported",
                f"spec.slo.percentile {percentile:g} is not one of the percentiles Triton's latency summary reports "
                f"({quantiles}): the latency cannot be read from Prometheus",
                newest,
                healthy=False,
            )
        if missing:
            return Reading(
                metrics,
                False,
                "ScrapeFailed",
                f"{len(missing)} of {len(targets)} ready pods have no series in Prometheus over {self.window} "
                f"(the rate is a lower bound): {_listing(missing)}",
                newest,
                healthy=False,
            )
        return Reading(metrics, True, "MetricsAvailable", f"{len(reporting)} pods reporting to Prometheus", newest)

    def forget(self, key: tuple[str, str]) -> None:
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def source_from_spec(text: str, window_seconds: float | None = None) -> ScrapeSource | PrometheusSource:
    """``scrape`` (default) or ``prometheus=<url>``, as given to ``fulcrum run --metrics-source``; the rate window
    ``window_seconds`` (``--metrics-window-seconds``), or the source's own default."""
    if window_seconds is not None and window_seconds <= 0:
        raise ValueError(f"--metrics-window-seconds {window_seconds:g}: expected a positive number of seconds")
    if text in ("", "scrape"):
        return ScrapeSource(window_seconds or SCRAPE_WINDOW_SECONDS)
    if text.startswith("prometheus="):
        url = text.removeprefix("prometheus=")
        if not url:
            raise ValueError("--metrics-source 'prometheus=': expected a URL after 'prometheus='")
        return PrometheusSource(url, window_seconds or PROMETHEUS_WINDOW_SECONDS)
    raise ValueError(f"--metrics-source {text!r}: expected 'scrape' or 'prometheus=<url>'")

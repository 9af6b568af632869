"""PrometheusSource against answers recorded from the dev cluster's real Prometheus (tests/data/prometheus/).

``tests/e2e/test_prometheus.py`` records them (``FULCRUM_RECORD_PROMETHEUS=1``): two ModelDeployments whose names
share a prefix, ``ranker`` idle and ``ranker-canary`` under load, every query PrometheusSource sends for each, and
one query Prometheus rejects. Here a local HTTP server answers exactly those queries with exactly those bodies, so
a change of the PromQL fails until it is re-recorded against a real Prometheus.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from fulcrum.metrics.sources import PrometheusSource, Reading, Target

RECORDING = Path(__file__).resolve().parents[1] / "data" / "prometheus" / "prefix-isolation.json"
RERECORD = "the queries changed: re-record with FULCRUM_RECORD_PROMETHEUS=1 pytest tests/e2e/test_prometheus.py"


def recording() -> dict[str, Any]:
    return dict(json.loads(RECORDING.read_text()))


async def replay(answers: dict[str, Any], asked: list[str]) -> tuple[web.AppRunner, str]:
    async def query(request: web.Request) -> web.Response:
        promql = request.query.get("query", "")
        asked.append(promql)
        answer = answers.get(promql, {"status": "error", "errorType": "bad_data", "error": f"not recorded: {promql}"})
        return web.json_response(answer, status=200 if answer["status"] == "success" else 400)

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def scalar(answer: dict[str, Any]) -> float | None:
    result = answer["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: no requests in the window


def test_recorded_answers_give_each_model_deployment_only_its_own_pods() -> None:
    data = recording()
    asked: list[str] = []

    async def run() -> dict[str, Any]:
        runner, url = await replay(data["answers"], asked)
        source = PrometheusSource(url, wall=lambda: float(data["at"]))  # the instant the answers were recorded
        try:
            return {
                f"{ns}/{name}": await source.observe(
                    (ns, name), [Target(pod, "") for pod in data["pods"][f"{ns}/{name}"]], name, data["percentile"]
                )
                for ns, name in data["keys"]
            }
        finally:
            await source.close()
            await runner.cleanup()

    observed = asyncio.run(run())
    assert set(asked) <= set(data["answers"]), RERECORD
    ns = data["keys"][0][0]
    ranker_reading, canary_reading = observed[f"{ns}/ranker"], observed[f"{ns}/ranker-canary"]
    ranker, canary = ranker_reading.metrics, canary_reading.metrics
    assert ranker is not None and canary is not None, (ranker_reading.message, canary_reading.message)
    queries = PrometheusSource("x").queries(ns, "ranker-canary", data["percentile"], "ranker-canary")
    answers = {name: scalar(data["answers"][promql]) for name, promql in queries.items()}
    assert canary.requests_per_second == answers["rate"] and canary.requests_per_second > 5
    assert canary.latency_ms == answers["latency_us"] / 1000.0  # type: ignore[operator]
    assert canary.queue_ms == answers["queue_us"] / 1000.0  # type: ignore[operator]
    assert canary.pods_reporting == len(data["answers"][queries["pods"]]["data"]["result"]) >= 1
    # the idle one shares the prefix, not the load
    assert ranker.requests_per_second == 0.0 and ranker.latency_ms is None
    assert ranker.pods_reporting >= 1
    # every ready pod had series over the window: the rates are whole, not lower bounds
    assert canary_reading.complete and ranker_reading.complete


def test_a_query_prometheus_rejects_gives_no_figure() -> None:
    data = recording()
    bad = data["bad"]
    assert data["answers"][bad]["status"] == "error" and data["answers"][bad]["errorType"] == "bad_data"

    async def run() -> list[tuple[dict[str, str], float]] | None:
        runner, url = await replay(data["answers"], [])
        source = PrometheusSource(url)
        try:
            async with aiohttp.ClientSession() as session:
                return await source._query(session, bad)
        except Exception as exc:  # a source that reports the failing PromQL is fine too
            assert bad in str(exc)
            return None
        finally:
            await source.close()
            await runner.cleanup()

    assert asyncio.run(run()) is None


def test_a_model_deployment_without_series_is_unknown_and_the_message_names_the_window_flag() -> None:
    """A name Prometheus has never scraped (or scraped less than twice in the range): the recorded answer's shape
    with an empty vector, as Prometheus answers such a query. No figure, never zero load."""
    data = recording()
    ns = data["keys"][0][0]
    some_answer = next(iter(data["answers"].values()))
    empty = {**some_answer, "data": {**some_answer["data"], "result": []}}
    queries = PrometheusSource("x", window_seconds=15).queries(ns, "never-scraped", data["percentile"], "never-scraped")
    answers = {promql: empty for promql in queries.values()}

    async def run() -> Reading:
        runner, url = await replay(answers, [])
        source = PrometheusSource(url, window_seconds=15, wall=lambda: float(data["at"]))
        try:
            pods = [Target("pod-0", "")]
            return await source.observe((ns, "never-scraped"), pods, "never-scraped", data["percentile"])
        finally:
            await source.close()
            await runner.cleanup()

    reading = asyncio.run(run())
    assert reading.metrics is None and not reading.complete and reading.healthy is False
    assert reading.reason == "NoSeries", reading.message
    assert "at least twice in 15s" in reading.message and "--metrics-window-seconds" in reading.message
    assert 'model_deployment="never-scraped"' in reading.message

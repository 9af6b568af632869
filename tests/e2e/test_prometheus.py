"""The operator on the Prometheus metrics source: the dev cluster's real Prometheus scrapes the Triton pods
(kubernetes_sd, relabelled to namespace/pod/model_deployment) and the operator, and the operator's PromQL selects
exactly one ModelDeployment's pods even when another one's name starts with its name.

``ranker`` and ``ranker-canary`` serve the same model side by side; only the canary gets load. A ``pod=~"ranker-.*"``
selector would count the canary's requests as ranker's; ``model_deployment="ranker"`` must not.

With ``FULCRUM_RECORD_PROMETHEUS=1`` the test also rewrites ``tests/data/prometheus/prefix-isolation.json``: every
query ``PrometheusSource`` sends, with Prometheus's real answer, replayed by ``tests/unit/test_prometheus_source.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from fulcrum.dev.objectstore import ObjectStoreConfig
from fulcrum.metrics.sources import PrometheusSource, Target
from tests.support import prometheus as prom
from tests.support.kube import Kube, debug, example_manifest, wait_ready
from tests.support.kube_api import name_of
from tests.support.release import Release

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RECORDING = ROOT / "tests" / "data" / "prometheus" / "prefix-isolation.json"
LOAD_RPS = 20.0
LOAD_SECONDS = 40  # enough for two scrapes and a control tick under load; the rate's accuracy is the closed loop's


@pytest.fixture(scope="module")
def operator(cluster: Any, crd_installed: None, model_storage: ObjectStoreConfig) -> Iterator[Release]:
    """This module's operator reads Prometheus (the chart with ``metrics.source=prometheus``)."""
    release = prom.prometheus_operator(cluster, "fulcrum-e2e-builds", model_storage)
    try:
        yield release
    finally:
        release.uninstall()


def constant_load(cluster: Any, namespace: str, service: str, workdir: Path) -> subprocess.Popen[str]:
    trace = workdir / "constant.csv"
    rows = "".join(f"{t},{LOAD_RPS}\n" for t in range(0, LOAD_SECONDS, 10))  # the last row holds 10 s too
    trace.write_text(f"t_seconds,requests_per_second\n{rows}")
    argv = [sys.executable, "-m", "fulcrum", "load", "--service", f"{namespace}/{service}", "--trace", str(trace)]
    argv += ["--kubeconfig", str(cluster.kubeconfig), "--interval", "20", "--json"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def record(
    source: PrometheusSource,
    cluster: Any,
    keys: list[tuple[str, str]],
    pods: dict[str, list[str]],
    observed: dict[str, Any],
) -> None:
    """Prometheus's answers to every query of ``source``, all evaluated at one instant (kept, with the ready pods,
    so the replay reads the samples' age and each pod's series as the operator did)."""
    now = time.time()
    at = f"{now:.3f}"
    answers = {}
    for namespace, name in keys:
        for promql in source.queries(namespace, name, 99.0, name).values():
            answers[promql] = prom.api(cluster, "query", query=promql, time=at)
    bad = "sum(rate(nv_inference_request_success[1m]"  # unbalanced: Prometheus's own parse error
    answers[bad] = prom.api(cluster, "query", query=bad, time=at)
    RECORDING.parent.mkdir(parents=True, exist_ok=True)
    RECORDING.write_text(
        json.dumps(
            {
                "keys": [list(k) for k in keys],
                "percentile": 99.0,
                "at": now,
                "pods": pods,
                "observed": observed,
                "answers": answers,
                "bad": bad,
            },
            indent=1,
        )
        + "\n"
    )


def test_queries_of_one_model_deployment_never_include_another_ones_pods(
    cluster: Any, kube: Kube, operator: Release, namespace: str, tmp_path: Path
) -> None:
    for name in ("ranker", "ranker-canary"):
        kube.create(namespace, example_manifest(name))
    for name in ("ranker", "ranker-canary"):
        wait_ready(kube, operator, namespace, name)
    load = constant_load(cluster, namespace, "ranker-canary", tmp_path)
    started = time.monotonic()
    source = PrometheusSource(prom.url(cluster))
    keys = [(namespace, "ranker"), (namespace, "ranker-canary")]
    try:
        time.sleep(max(0.0, LOAD_SECONDS - 5 - (time.monotonic() - started)))
        pods = {f"{ns}/{name}": ready_pods(kube, ns, name) for ns, name in keys}
        observed = asyncio.run(_observe(source, keys, pods))
        if os.environ.get("FULCRUM_RECORD_PROMETHEUS") == "1":
            record(source, cluster, keys, pods, observed)
        # the operator reads the same: ranker idle, the canary loaded
        canary_status = kube.get(namespace, "ranker-canary")["status"]
        ranker_status = kube.get(namespace, "ranker")["status"]
    finally:
        stdout, stderr = load.communicate(timeout=120)
    assert load.returncode == 0, stderr[-2000:]

    # the shared prefix is real: a pod-name regex would take the canary's pods for ranker's
    by_regex = prom.query(cluster, f'nv_inference_request_success{{namespace="{namespace}",pod=~"ranker-.*"}}')
    by_label = prom.query(cluster, f'nv_inference_request_success{{namespace="{namespace}",model_deployment="ranker"}}')
    assert {s["metric"]["pod"] for s in by_regex} > {s["metric"]["pod"] for s in by_label}
    assert all(not s["metric"]["pod"].startswith("ranker-canary") for s in by_label), by_label
    assert {s["metric"]["model_deployment"] for s in by_regex} == {"ranker", "ranker-canary"}

    ranker, canary = observed[f"{namespace}/ranker"], observed[f"{namespace}/ranker-canary"]
    assert ranker is not None and canary is not None, observed
    # the window is still filling: the canary's rate is part of the load, the idle one's none of it
    assert ranker["requests_per_second"] == 0.0, observed
    assert canary["requests_per_second"] > LOAD_RPS / 4, observed
    assert canary["latency_ms"] is not None and ranker["latency_ms"] is None, observed
    assert canary["pods_reporting"] >= 1 and ranker["pods_reporting"] >= 1
    assert float(canary_status["observed"]["requestsPerSecond"]) > 0, debug(kube, operator, namespace, "ranker-canary")
    assert float(ranker_status["observed"]["requestsPerSecond"]) == 0.0, ranker_status
    print(json.dumps({"observed": observed, "served": json.loads(stdout)["summary"]}, indent=1))


def ready_pods(kube: Kube, namespace: str, name: str) -> list[str]:
    return sorted(name_of(p) for p in kube.ready_pods(namespace, name))


async def _observe(source: PrometheusSource, keys: list[tuple[str, str]], pods: dict[str, list[str]]) -> dict[str, Any]:
    try:
        out = {}
        for ns, name in keys:
            targets = [Target(pod, "") for pod in pods[f"{ns}/{name}"]]
            reading = await source.observe((ns, name), targets, name, 99.0)  # the served name: metadata.name
            out[f"{ns}/{name}"] = None if reading.metrics is None else asdict(reading.metrics)
        return out
    finally:
        await source.close()

"""The closed loop on a real control plane with real Triton pods on ``local-0`` under real open-loop load.

The served model and its repository are the real ctr-ranker build. Through Triton's HTTP front end on this
2-core machine the tiers are about equally fast, so this test gives the policy a pool (``edge``, the same node)
whose build record carries profiles in which the faster tiers really are faster: fp32 serves 30 rps per replica
in the SLO, fp16 70, int8 150. Everything else is real: the metrics the operator scrapes, the decisions, the
Deployments, the pods, the load (``fulcrum load`` in its own process). Under a step from 15 to 110 rps with a
budget that affords 3 fp32 replicas, fp32 would need 4: the operator must switch to a faster tier, and switch
back once the load falls. The latency the operator reports (Triton's own p99, server side) must agree with the
p99 the load generator measured over the same window: not above it by more than 30 %, not below 40 % of it.

The operator reads its metrics from the dev cluster's Prometheus (``--metrics-source prometheus=...``), which
scrapes the Triton pods and the operator. At every sample the test also observes the same pods the way
``--metrics-source scrape`` does (``ScrapeSource``, the operator's own code) and the way this operator does
(``PrometheusSource``): the two must agree on the rate and the latency. Afterwards ``fulcrum report`` draws the
run from Prometheus and every query of the chart's Grafana dashboard is asked of the same Prometheus.
``FULCRUM_E2E_METRICS_SOURCE=scrape`` runs the loop on the direct scrape instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fulcrum.api import parse_model_deployment
from fulcrum.dev.objectstore import ObjectStoreConfig
from fulcrum.metrics.sources import PROMETHEUS_WINDOW_SECONDS, PrometheusSource, ScrapeSource, Target
from fulcrum.metrics.window import FleetMetrics
from fulcrum.reconcile.builds import BuildResult
from fulcrum.reconcile.plan import pool_builds
from fulcrum.resources.build import build_record
from fulcrum.resources.endpoints import ready_endpoints
from fulcrum.resources.settings import OperatorSettings
from tests.support import prometheus as prom
from tests.support.closed_loop import decision_events, profile
from tests.support.kube import Kube, debug, example_manifest, wait_ready
from tests.support.polling import wait_for
from tests.support.release import Release, dev_values, repository_storage

pytestmark = [pytest.mark.e2e, pytest.mark.lane("held")]

CAPACITY = {"fp32": 30.0, "fp16": 70.0, "int8": 150.0}  # rps per replica within the SLO, by tier
SLO_MS = 25.0
STEP = [(0, 15.0), (45, 110.0), (165, 15.0)]  # (from second, rps)
RUN_SECONDS = 300  # at most: the load stops once the operator is back on fp32 (usually 60-80 s earlier)
LOAD_INTERVAL = 15  # seconds per row of the trace and per interval of `fulcrum load`'s report
AGREEMENT_SAMPLES = 25  # samples taken with a whole window of load behind before the load may stop (20 are held)
WINDOW_SECONDS = PROMETHEUS_WINDOW_SECONDS  # the operator's rate window; both sources and the client's p99 use it
SOURCE = os.environ.get("FULCRUM_E2E_METRICS_SOURCE", "prometheus")
RATE_AGREEMENT = 0.10  # median |Prometheus / served - 1| over the run (measured 0.03)
LATENCY_AGREEMENT = 0.30  # median |Prometheus / direct scrape - 1| (measured 0.16 and 0.18)


@pytest.fixture(scope="module")
def operator(cluster: Any, crd_installed: None, model_storage: ObjectStoreConfig) -> Iterator[Release]:
    """The chart's operator on the Prometheus source (scraped by that Prometheus too), or on the direct scrape."""
    if SOURCE == "scrape":
        release = Release(cluster, "fulcrum-e2e-builds", model_storage, dev_values(cluster.images, model_storage))
        release.install()
    else:
        release = prom.prometheus_operator(cluster, "fulcrum-e2e-builds", model_storage)
    try:
        yield release
    finally:
        release.uninstall()


class SideBySide:
    """The fleet seen by both metrics sources at the same instants: ScrapeSource (each ready pod's /metrics, a
    sliding window) and PrometheusSource (PromQL over what Prometheus scraped)."""

    def __init__(self, cluster: Any, namespace: str, name: str) -> None:
        self.key = (namespace, name)
        self.api = cluster.api_client
        self.discovery = client.DiscoveryV1Api(self.api)
        self.scrape = ScrapeSource(window_seconds=WINDOW_SECONDS)  # the same window as the Prometheus source
        self.prometheus = PrometheusSource(prom.url(cluster))
        self.loop = asyncio.new_event_loop()

    def sample(self, served: str | None) -> tuple[FleetMetrics | None, FleetMetrics | None]:
        """``served``: the model name clients call, as the operator passes it (each request counts once)."""
        selector = f"kubernetes.io/service-name={self.key[1]}"
        slices = self.discovery.list_namespaced_endpoint_slice(self.key[0], label_selector=selector).items
        targets = [
            Target(e.pod, f"http://{e.host_port}/metrics", e.pod_uid)
            for e in ready_endpoints([self.api.sanitize_for_serialization(s) for s in slices], "metrics")
        ]

        async def both() -> tuple[FleetMetrics | None, FleetMetrics | None]:
            direct, queried = await asyncio.gather(
                self.scrape.observe(self.key, targets, served, 99.0),
                self.prometheus.observe(self.key, targets, served, 99.0),
            )
            return direct.metrics, queried.metrics

        return self.loop.run_until_complete(both())

    def close(self) -> None:
        self.loop.run_until_complete(self.scrape.close())
        self.loop.run_until_complete(self.prometheus.close())
        self.loop.close()


def relative(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b - 1, 3)


def agreement(
    pairs: list[tuple[float, FleetMetrics | None, FleetMetrics | None]],
    requests: list[tuple[float, float | None]],
    began: float,
) -> dict[str, Any]:
    """Each source's rate against what the load generator got served in the same window, and Prometheus's
    latency against the direct scrape's, over the samples whose window lies in the load."""
    rate_errors: dict[str, list[float]] = {"prometheus": [], "direct": []}
    latencies = []
    for at, direct, queried in pairs:
        if at - began < WINDOW_SECONDS + 5:
            continue
        served = sum(1 for sent, ms in requests if at - WINDOW_SECONDS <= sent < at and ms is not None)
        for name, seen in (("prometheus", queried), ("direct", direct)):
            error = relative(seen.requests_per_second if seen else None, served / WINDOW_SECONDS)
            if error is not None:
                rate_errors[name].append(abs(error))
        latency = relative(queried.latency_ms if queried else None, direct.latency_ms if direct else None)
        if latency is not None:
            latencies.append(abs(latency))

    def figures(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "samples": len(ordered),
            "median": round(statistics.median(ordered), 3) if ordered else float("nan"),
            "p90": ordered[int(0.9 * (len(ordered) - 1))] if ordered else float("nan"),
        }

    return {
        "rate vs served (prometheus)": figures(rate_errors["prometheus"]),
        "rate vs served (direct scrape)": figures(rate_errors["direct"]),
        "latency: prometheus vs direct scrape": figures(latencies),
    }


def loop_manifest() -> dict[str, Any]:
    manifest = example_manifest("loop")
    spec = manifest["spec"]
    # No CPU limit here: this test is about the loop and the latency Triton reports. Under a 1-CPU limit the
    # client's p99 ran about 35 % above Triton's own (its HTTP front end, throttled too, is outside the request
    # summary), beyond the 30 % this test holds; the limited replicas are exercised by test_chart_install.py.
    spec["serving"].pop("resources", None)
    spec["nodePools"] = [
        {
            "name": "edge",
            "nodeSelector": {"fulcrum.dev/pool": "local"},
            "gpusPerReplica": 0,
            "costPerHour": "1.00",
            "replicaStartupSeconds": 10,
        }
    ]
    spec["budget"] = {"maxCostPerHour": "3.00"}
    spec["scaling"] = {
        "minReplicas": 1,
        "maxReplicas": 4,
        "scaleDownStabilizationSeconds": 20,
        "tierSwitchCooldownSeconds": 30,
    }
    return manifest


def seed_edge_record(kube: Kube, operator: Release, base: dict[str, Any], manifest: dict[str, Any]) -> None:
    """The edge pool's build record: the real build's manifest and repository, with the profiles above."""
    settings = OperatorSettings(
        build_namespace=operator.build_namespace,
        storage=repository_storage(operator.store),
        build_target="local",
        triton_image=operator.triton_image,
    )
    result = BuildResult.from_record(kube.build_record(operator.build_namespace, base["status"]["build"]["key"]))
    assert result.manifest is not None
    tiers = []
    for tier in result.manifest.tiers:
        data = tier.model_dump(mode="json", by_alias=True)
        data["profiles"] = [profile("edge", CAPACITY[tier.name])] if tier.name in CAPACITY else []
        tiers.append(data)
    manifest_data = {**result.manifest.model_dump(mode="json", by_alias=True), "tiers": tiers}
    spec = parse_model_deployment(manifest).spec
    [edge] = pool_builds(spec, settings, {}, {}, base["metadata"]["namespace"])
    key = edge.key
    seeded = BuildResult.from_record({**result.to_record(), "manifest": manifest_data})
    record = build_record(key, spec.node_pools[0], seeded.to_record(), settings)
    kube.create_build_record(operator.build_namespace, record)


def start_load(cluster: Any, namespace: str, workdir: Path) -> subprocess.Popen[str]:
    """``fulcrum load`` in its own process, as a user would run it, one step per 15 s row of the trace."""
    trace = workdir / "step.csv"
    rows = [(t, next(r for start, r in reversed(STEP) if t >= start)) for t in range(0, RUN_SECONDS, LOAD_INTERVAL)]
    trace.write_text("t_seconds,requests_per_second\n" + "".join(f"{t},{r}\n" for t, r in rows))

    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fulcrum",
            "load",
            "--service",
            f"{namespace}/loop",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--trace",
            str(trace),
            "--interval",
            str(LOAD_INTERVAL),
            "--slo-ms",
            str(SLO_MS),
            "--json",
            "--request-log",
            str(workdir / "requests.csv"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def back_on_fp32(samples: list[tuple[float, str | None, float | None]], began: float) -> bool:
    """After the step down, the operator is back on fp32 from a faster tier, and the run holds enough samples
    with a whole metrics window of load behind them for the agreement checks: the rest of the trace would only
    hold the low load longer."""
    tiers = [tier for _, tier, _ in samples]
    windows = sum(1 for at, _, _ in samples if at - began >= WINDOW_SECONDS + 5)
    return (
        samples[-1][0] - began >= STEP[-1][0]
        and tiers[-1] == "fp32"
        and any(tier in ("fp16", "int8") for tier in tiers)
        and windows >= AGREEMENT_SAMPLES
    )


def stop_mid_interval(load: subprocess.Popen[str], began: float) -> None:
    """SIGINT (`fulcrum load` then reports what it measured) halfway through one of its intervals, so the last
    interval it reports is never one cut right at its start (no request sent in it yet)."""
    into = (time.time() - began) % LOAD_INTERVAL
    time.sleep((LOAD_INTERVAL / 2 - into) % LOAD_INTERVAL)
    load.send_signal(signal.SIGINT)


def read_request_log(path: Path) -> list[tuple[float, float | None]]:
    out = []
    for line in path.read_text().splitlines()[1:]:
        sent, latency, _ = line.split(",", 2)
        out.append((float(sent), float(latency) if latency else None))
    return out


def client_p99(requests: list[tuple[float, float | None]], end: float) -> tuple[float | None, int]:
    """The load generator's p99 over the requests sent in the operator's window before ``end``."""
    window = sorted(ms for sent, ms in requests if end - WINDOW_SECONDS <= sent < end and ms is not None)
    if not window:
        return None, 0
    return window[min(len(window) - 1, int(0.99 * len(window)))], len(window)


def decisions(kube: Kube, namespace: str) -> list[tuple[str | None, str | None]]:
    reasons = ("ScaleUp", "ScaleDown", "SwitchTier", "SwitchPool", "HotSwitch")
    return [(e.reason, e.message) for e in decision_events(kube, namespace, "loop", reasons)]


def test_step_load_scales_up_switches_tier_under_budget_and_back(
    cluster: Any, kube: Kube, operator: Release, namespace: str, tmp_path: Path
) -> None:
    kube.create(namespace, example_manifest())  # the real build (reused when an earlier test built it)
    wait_ready(kube, operator, namespace, "ctr-ranker")
    manifest = loop_manifest()
    seed_edge_record(kube, operator, kube.get(namespace, "ctr-ranker"), manifest)
    kube.delete(namespace, "ctr-ranker")
    kube.create(namespace, manifest)
    wait_ready(kube, operator, namespace, "loop", timeout=180)
    assert kube.get(namespace, "loop")["status"]["activeTier"] == "fp32"

    samples: list[tuple[float, str | None, float | None]] = []  # (time, activeTier, observed latency)
    side_by_side = SideBySide(cluster, namespace, "loop")
    pairs: list[tuple[float, FleetMetrics | None, FleetMetrics | None]] = []  # (time, direct, Prometheus)
    load = start_load(cluster, namespace, tmp_path)
    began = time.time()
    stopping = False
    try:
        while load.poll() is None:
            status = kube.get(namespace, "loop").get("status") or {}
            latency = (status.get("observed") or {}).get("latencyMs")
            samples.append((time.time(), status.get("activeTier"), float(latency) if latency else None))
            pairs.append((time.time(), *side_by_side.sample((status.get("serving") or {}).get("modelName"))))
            if not stopping and back_on_fp32(samples, began):
                stop_mid_interval(load, began)
                stopping = True
            time.sleep(5)
    finally:
        side_by_side.close()
    stdout, stderr = load.communicate()
    load_ended = time.time()
    assert load.returncode == 0, stderr[-3000:]
    report_of_load = json.loads(stdout)
    intervals = report_of_load["intervals"]
    requests = read_request_log(tmp_path / "requests.csv")
    history = decisions(kube, namespace)
    # the operator's view against the client's, over the same window, once a whole window of load is behind
    client_agreement = []
    for at, _, observed in samples:
        client, count = client_p99(requests, at)
        if observed is not None and client is not None and at - began >= WINDOW_SECONDS and count >= 200:
            client_agreement.append((round(at - began), observed, round(client, 2), round(observed / client - 1, 3)))
    sources = agreement(pairs, requests, began)
    report = {
        "source": SOURCE,
        "decisions": history,
        "tiers_seen": [t for _, t, _ in samples],
        "intervals": intervals,
        "summary": report_of_load["summary"],
        "latency_agreement (t, operator ms, client p99 ms, relative)": client_agreement,
        "prometheus vs direct scrape (|relative difference|)": sources,
        "side by side (t, direct rps, prometheus rps, direct ms, prometheus ms)": [
            (
                round(at - began),
                d and round(d.requests_per_second, 1),
                q and round(q.requests_per_second, 1),
                d and d.latency_ms and round(d.latency_ms, 2),
                q and q.latency_ms and round(q.latency_ms, 2),
            )
            for at, d, q in pairs
        ],
    }
    (tmp_path / "closed-loop.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))

    # no gap: every interval of the run served requests, through the switches too, and none failed: the client
    # calls the served name, which every pod answers in every tier
    assert all(i["achievedRps"] > 0 for i in intervals), intervals
    assert report_of_load["summary"]["errors"] == 0, report_of_load["summary"]
    tiers_seen = [t for _, t, _ in samples]
    assert any(t in ("fp16", "int8") for t in tiers_seen), (history, debug(kube, operator, namespace, "loop"))
    reasons = [r for r, _ in history]
    assert "SwitchTier" in reasons
    wait_for(
        "the switch back to fp32 once the load fell",
        lambda: kube.get(namespace, "loop")["status"].get("activeTier") == "fp32",
        timeout=180,
        every=3,
        on_timeout=lambda: debug(kube, operator, namespace, "loop"),
    )
    md = kube.get(namespace, "loop")
    assert float(md["status"]["costPerHour"]) <= 3.0
    # Prometheus reads the rate the client got served, and the latency the direct scrape reads (the median sample;
    # every window is as long). The direct scrape's rate is reported, not held: it reads low for a while
    # after pods come and go.
    rate, latency = sources["rate vs served (prometheus)"], sources["latency: prometheus vs direct scrape"]
    assert rate["samples"] >= 20 and rate["median"] <= RATE_AGREEMENT, sources
    assert latency["samples"] >= 20 and latency["median"] <= LATENCY_AGREEMENT, sources
    if SOURCE == "prometheus":
        check_report_and_dashboard(cluster, kube, namespace, tmp_path, load_ended)
    # status.observed.latencyMs is Triton's own p99 (server side, request-weighted across pods); the client's p99 is
    # end to end: it adds the network, HTTP and the load generator's own scheduling, which on two shared cores
    # grows with whatever else runs (measured: a few ms on a quiet machine, +30-60 % with other suites running).
    # So the check is one-sided where physics is: over the same window (the median window; windows 5 s apart
    # overlap, so a transient such as a pod starting beside the others spans several) the server's p99 is not
    # above the client's by more than 30 %, and not below 40 % of it (a wrong quantile, unit or stale window).
    assert len(client_agreement) >= 20, client_agreement
    relative = sorted(a[3] for a in client_agreement)
    median = relative[len(relative) // 2]
    print(
        f"windows within 30 %: {sum(abs(r) <= 0.30 for r in relative)} of {len(relative)}; "
        f"median operator/client - 1: {median}"
    )
    assert -0.60 <= median <= 0.30, client_agreement


def check_report_and_dashboard(cluster: Any, kube: Kube, namespace: str, workdir: Path, load_ended: float) -> None:
    """`fulcrum report` draws the run from Prometheus; every dashboard query answers, the main panels with data."""
    png = workdir / "loop-report.png"
    before = [reason for reason, _ in decisions(kube, namespace)]  # the loop still runs: more may come meanwhile
    argv = [sys.executable, "-m", "fulcrum", "report", f"{namespace}/loop", "--prometheus", prom.url(cluster)]
    argv += ["--kubeconfig", str(cluster.kubeconfig), "--out", str(png), "--json"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    drawn = json.loads(result.stdout)
    assert drawn["source"] == "prometheus" and png.read_bytes()[:4] == b"\x89PNG"
    drawn_actions = [d["action"] for d in drawn["decisions"]]
    after = [reason for reason, _ in decisions(kube, namespace)]
    assert len(drawn_actions) >= len(before) and after[: len(drawn_actions)] == drawn_actions, (before, drawn_actions)
    assert any(label.startswith("fp32@") for label in drawn["replicas"]), drawn["replicas"].keys()
    assert len(drawn["replicas"]) >= 2  # the faster tier it switched to
    print(f"fulcrum report wrote {png}")
    keep = os.environ.get("FULCRUM_E2E_ARTIFACTS")  # a directory to keep the picture in (tmp dirs are pruned)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
        (Path(keep) / "loop-report.json").write_text(result.stdout)
    # as the dashboard showed it while the model served: once the load stops, the operator's observed-latency
    # series goes (no traffic is unknown latency, never zero) and an instant query now may find nothing
    answers = prom.dashboard_results(cluster, namespace, "loop", at=load_ended)
    for title in (
        "SLO attainment over the range",
        "Cost per hour",
        "Load",
        "Latency at the SLO percentile vs the SLO",
        "Replicas by tier and pool",
        "Cost vs budget",
        "Decisions by action and reason",
        "Metrics the control loop sees",
    ):
        assert all(answers[title]), (title, answers[title])

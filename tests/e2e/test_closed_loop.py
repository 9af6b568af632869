"""The closed loop on a real control plane with real Triton pods on ``local-0`` under real open-loop load.

The served model and its repository are the real ctr-ranker build. Through Triton's HTTP front end on this
2-core machine the tiers are about equally fast, so this test gives the policy a pool (``edge``, the same node)
whose build record carries profiles in which the faster tiers really are faster: fp32 serves 30 rps per replica
in the SLO, fp16 70, int8 150. Everything else is real: the metrics the operator scrapes, the decisions, the
Deployments, the pods, the load. Under a step from 15 to 110 rps with a budget that affords 3 fp32 replicas,
fp32 would need 4: the operator must switch to a faster tier, and switch back once the load falls.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fulcrum.api import parse_model_deployment
from fulcrum.controller.kube import KubeClient
from fulcrum.loadgen.endpoints import service_endpoints
from fulcrum.loadgen.generator import Schedule, run_load
from fulcrum.loadgen.stats import Interval
from fulcrum.reconcile.builds import BuildResult
from fulcrum.resources.build import RECORD_KEY, build_record
from fulcrum.resources.build_key import build_key
from fulcrum.resources.labels import build_record_name
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
from tests.support.kube import Kube, debug, example_manifest, wait_ready
from tests.support.operator_process import OperatorProcess
from tests.support.polling import wait_for

pytestmark = pytest.mark.e2e

CAPACITY = {"fp32": 30.0, "fp16": 70.0, "int8": 150.0}  # rps per replica within the SLO, by tier


def profile(pool: str, capacity: float) -> dict[str, Any]:
    """A latency curve whose p99 crosses 22 ms (the SLO minus the policy's margin) at ``capacity``."""
    points = []
    for share, p99 in ((0.25, 6.0), (0.6, 12.0), (1.0, 22.0), (1.3, 60.0)):
        points.append(
            {
                "requestsPerSecond": capacity * share,
                "latencyMs": {"p50": p99 / 3, "p90": p99 / 1.6, "p95": p99 / 1.3, "p99": p99},
            }
        )
    return {"nodePool": pool, "points": points}


def loop_manifest() -> dict[str, Any]:
    manifest = example_manifest("loop")
    spec = manifest["spec"]
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


def seed_edge_record(kube: Kube, operator: OperatorProcess, base: dict[str, Any], manifest: dict[str, Any]) -> None:
    """The edge pool's build record: the real build's manifest and repository, with the profiles above."""
    settings = OperatorSettings(
        build_namespace=operator.build_namespace,
        storage=RepositoryStorage("hostPath", str(operator.repository)),
        build_target="local",
    )
    real_key = base["status"]["build"]["key"]
    real = kube.core.read_namespaced_config_map(build_record_name(real_key), operator.build_namespace)
    result = BuildResult.from_record(json.loads(real.data[RECORD_KEY]))
    assert result.manifest is not None
    tiers = []
    for tier in result.manifest.tiers:
        data = tier.model_dump(mode="json", by_alias=True)
        data["profiles"] = [profile("edge", CAPACITY[tier.name])] if tier.name in CAPACITY else []
        tiers.append(data)
    manifest_data = {**result.manifest.model_dump(mode="json", by_alias=True), "tiers": tiers}
    spec = parse_model_deployment(manifest).spec
    key = build_key(spec, spec.node_pools[0], "local", settings.storage.identity)
    seeded = BuildResult.from_record({**result.to_record(), "manifest": manifest_data})
    record = build_record(key, spec.node_pools[0], seeded.to_record(), settings)
    try:
        kube.core.create_namespaced_config_map(operator.build_namespace, record)
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def run_step_load(cluster: Any, namespace: str, intervals_out: list[Interval]) -> None:
    schedule = Schedule(times=[0, 45, 165], rates=[15, 110, 15], end=300)

    async def main() -> None:
        kube = KubeClient.from_environment(str(cluster.kubeconfig))
        try:
            _, intervals = await run_load(
                schedule,
                lambda: service_endpoints(kube, namespace, "loop"),
                model=None,
                interval_seconds=15,
                refresh_seconds=3,
            )
            intervals_out.extend(intervals)
        finally:
            await kube.close()

    asyncio.run(main())


def decisions(kube: Kube, namespace: str) -> list[tuple[str, str]]:
    events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.name=loop").items
    ordered = sorted(events, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return [(e.reason, e.message) for e in ordered if e.reason in ("ScaleUp", "ScaleDown", "SwitchTier", "SwitchPool")]


def test_step_load_scales_up_switches_tier_under_budget_and_back(
    cluster: Any, kube: Kube, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    kube.create(namespace, example_manifest())  # the real build (reused when an earlier test built it)
    wait_ready(kube, operator, namespace, "ctr-ranker")
    manifest = loop_manifest()
    seed_edge_record(kube, operator, kube.get(namespace, "ctr-ranker"), manifest)
    kube.delete(namespace, "ctr-ranker")
    kube.create(namespace, manifest)
    wait_ready(kube, operator, namespace, "loop", timeout=180)
    assert kube.get(namespace, "loop")["status"]["activeTier"] == "fp32"

    intervals: list[Interval] = []
    samples: list[tuple[str | None, float | None]] = []  # (activeTier, observed latency) while the load runs
    load = threading.Thread(target=run_step_load, args=(cluster, namespace, intervals))
    load.start()
    while load.is_alive():
        status = kube.get(namespace, "loop").get("status") or {}
        latency = (status.get("observed") or {}).get("latencyMs")
        samples.append((status.get("activeTier"), float(latency) if latency else None))
        load.join(timeout=5)
    history = decisions(kube, namespace)
    report = {
        "decisions": history,
        "tiers_seen": [t for t, _ in samples],
        "intervals": [i.summary(15, 25) for i in intervals],
    }
    (tmp_path / "closed-loop.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))

    # no gap: every interval of the run served requests, through the switches too
    assert all(i.latencies_ms for i in intervals), [i.summary(15, 25) for i in intervals]
    tiers_seen = [t for t, _ in samples]
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
    # the operator's latency comes from Triton's own metrics (server side); the load generator's p99 adds the
    # client and the network. Report how far apart they were in each interval, and hold the server side below.
    client_p99 = {int(i.start // 15): i.summary(15, 25)["p99Ms"] for i in intervals}
    observed = [lat for _, lat in samples if lat is not None]
    assert observed, "the operator never reported an observed latency"
    print("observed latency samples (ms):", observed, "client p99 by interval (ms):", client_p99)
    assert min(observed) <= max(v for v in client_p99.values() if v is not None) * 1.3

"""Helpers for e2e tests that run the closed loop: seeded pool profiles, `fulcrum load` processes, decisions."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client

from fulcrum.api import parse_model_deployment
from fulcrum.dev.objectstore import ObjectStoreConfig
from fulcrum.dev.procs import CLUSTER_ENV
from fulcrum.reconcile.builds import BuildResult
from fulcrum.reconcile.plan import pool_builds
from fulcrum.resources.build import build_record
from fulcrum.resources.settings import OperatorSettings
from tests.support.kube import Kube
from tests.support.kube_api import event_time
from tests.support.release import repository_storage

DECISIONS = ("ScaleUp", "ScaleDown", "SwitchTier", "SwitchPool")


class Operator(Protocol):
    """What seeding needs of an operator: a chart release or a host process (tests.support.operator_process)."""

    @property
    def build_namespace(self) -> str: ...
    @property
    def store(self) -> ObjectStoreConfig: ...
    @property
    def triton_image(self) -> str: ...


def profile(pool: str, capacity: float) -> dict[str, Any]:
    """A latency curve whose p99 crosses 22 ms (a 25 ms SLO minus the policy's margin) at ``capacity``.

    Its floor, about 10 ms, is what the real pods show: the example batches for up to 8 ms.
    """
    points = []
    for share, p99 in ((0.25, 10.0), (0.6, 13.0), (1.0, 22.0), (1.3, 60.0)):
        points.append(
            {
                "requestsPerSecond": capacity * share,
                "latencyMs": {"p50": p99 * 0.8, "p90": p99 * 0.9, "p95": p99 * 0.95, "p99": p99},
            }
        )
    return {"nodePool": pool, "points": points}


def seed_profiled_record(
    kube: Kube,
    operator: Operator,
    base: dict[str, Any],
    manifest: dict[str, Any],
    capacities: Mapping[str, float],
    pool_index: int = 0,
) -> str:
    """The build record of one pool of ``manifest`` (the first by default): the real build of ``base`` (its
    repository and tiers) with profiles whose capacity per replica is ``capacities[tier]`` on that pool. Returns
    the record's build key."""
    settings = OperatorSettings(
        build_namespace=operator.build_namespace,
        storage=repository_storage(operator.store),
        build_target="local",
        triton_image=operator.triton_image,
    )
    result = BuildResult.from_record(kube.build_record(operator.build_namespace, base["status"]["build"]["key"]))
    assert result.manifest is not None
    spec = parse_model_deployment(manifest).spec
    pool = spec.node_pools[pool_index]
    tiers = []
    for tier in result.manifest.tiers:
        data = tier.model_dump(mode="json", by_alias=True)
        data["profiles"] = [profile(pool.name, capacities[tier.name])] if tier.name in capacities else []
        tiers.append(data)
    manifest_data = {**result.manifest.model_dump(mode="json", by_alias=True), "tiers": tiers}
    # keyed as the operator keys it: in the ModelDeployment's namespace (the base's) unless every input is pinned
    key = pool_builds(spec, settings, {}, {}, base["metadata"]["namespace"])[pool_index].key
    seeded = BuildResult.from_record({**result.to_record(), "manifest": manifest_data})
    kube.create_build_record(operator.build_namespace, build_record(key, pool, seeded.to_record(), settings))
    return key


def start_load(
    cluster: Any,
    namespace: str,
    service: str,
    rows: Sequence[tuple[int, float]],
    workdir: Path,
    *,
    slo_ms: float,
    interval: int = 15,
    request_log: Path | None = None,
) -> subprocess.Popen[str]:
    """``fulcrum load`` in its own process, as a user would run it, playing ``rows`` (t_seconds, rps)."""
    trace = workdir / f"{service}-trace.csv"
    trace.write_text("t_seconds,requests_per_second\n" + "".join(f"{t},{r}\n" for t, r in rows))
    argv = [
        sys.executable,
        "-m",
        "fulcrum",
        "load",
        "--service",
        f"{namespace}/{service}",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--trace",
        str(trace),
        "--interval",
        str(interval),
        "--slo-ms",
        str(slo_ms),
        "--json",
    ]
    if request_log is not None:
        argv += ["--request-log", str(request_log)]
    # tagged with the cluster's home, so the cluster's watchdog sweeps it if pytest dies before stopping it
    env = {**os.environ, CLUSTER_ENV: str(Path(cluster.kubeconfig).parent)}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def decision_events(
    kube: Kube, namespace: str, name: str, reasons: Sequence[str] = DECISIONS
) -> list[client.CoreV1Event]:
    """The policy's decisions for one ModelDeployment (Events with these reasons), oldest first."""
    events = kube.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    ordered = sorted(events, key=event_time)
    return [e for e in ordered if e.reason in reasons]

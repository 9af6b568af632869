"""A control loop a platform team can trust: a leader killed, metrics lost, all under real steady load.

Two operator replicas (real `fulcrum run` processes, leader election on a Lease) serve two ModelDeployments of
the real ctr-ranker build on real Triton pods on ``local-0``. Each gets a steady open-loop load from
`fulcrum load` that needs at least two replicas (the ``edge`` pool's profiles: fp32 serves about 30 rps per
replica within the SLO; the load is 50 rps). Once both fleets serve it from one placement with every replica
ready and no decision for a few ticks, at the same moment:

- the leader is killed with SIGKILL (and started again: it comes back as the standby); the standby takes the
  Lease and carries on with none of the dead leader's memory, exactly what an operator restart is;
- the metrics of ``outage`` are made unreachable (its pods' metrics port dropped, as by a NetworkPolicy).

For the hold that follows (``HOLD_SECONDS``: within the stabilization window, which the new leader has not
observed yet) neither fleet may scale in or switch; ``outage``, with no data at all, may not change in any way,
and must say ``MetricsAvailable=False`` naming the pods, with a Warning, and ``SLOMet=Unknown``; ``steady`` must
measure again (it may only grow, if the load demands). Then the metrics come back (and ``outage`` may grow for
what it measures again). Over the whole run there is
one build Job per key, and no decision is taken twice (two leaders would). ``FULCRUM_E2E_FULL_HOLD=1`` runs the
issue's five minutes with the default 300 s stabilization window (CI: a 120 s window, a 110 s hold).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fulcrum.controller.control import parse_time
from fulcrum.dev.objectstore import ObjectStoreConfig
from fulcrum.resources.serving import METRICS_PORT
from tests.support.closed_loop import decision_events, seed_profiled_record, start_load
from tests.support.kube import Kube, debug, example_manifest, wait_ready
from tests.support.kube_api import event_time, meta, name_of
from tests.support.netblock import PortBlock, iptables
from tests.support.operator_process import OperatorProcess
from tests.support.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.lane("held")]

FULL = os.environ.get("FULCRUM_E2E_FULL_HOLD") == "1"
WINDOW_SECONDS = 300 if FULL else 120  # spec.scaling.scaleDownStabilizationSeconds
HOLD_SECONDS = 300 if FULL else 110
CAPACITY = {"fp32": 30.0, "fp16": 70.0, "int8": 150.0}  # rps per replica within the SLO, by tier (as profiled)
CHEAP = {"fp32": 12.0, "fp16": 28.0, "int8": 60.0}  # the cheaper pool's replicas serve less
RATE = 50.0  # needs 2 fp32 replicas at the profiled speed and at 1.5x it (the largest speed correction)
QUIET_TICKS = 3  # "settled": no decision for this many ticks
SLO_MS = 25.0
TICK_SECONDS = 5.0
LEASE = ["--leader-elect-lease-duration", "15", "--leader-elect-renew-deadline", "10"]
BUILD_NAMESPACE = "fulcrum-e2e-builds"  # shared with the other closed-loop tests: the real build is reused
NAMES = ("steady", "outage")


def pool(name: str, cost: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodeSelector": {"fulcrum.dev/pool": "local"},
        "gpusPerReplica": 0,
        "costPerHour": cost,
        "replicaStartupSeconds": 10,
    }


def model(name: str) -> dict[str, Any]:
    """``outage``: three tiers, and a cheaper pool whose slower replicas would only pay off at a low load (one
    replica there costs half of one on ``edge``): reading no data as no load would move it there, as the issue's
    example did. ``steady``: one tier on one pool, no budget, so only the load decides its size."""
    manifest = example_manifest(name)
    spec = manifest["spec"]
    if name == "outage":
        spec["nodePools"] = [pool("edge", "1.00"), pool("cheap", "0.50")]
    else:
        spec["tiers"] = spec["tiers"][:1]
        spec["nodePools"] = [pool("edge", "1.00")]
    spec["scaling"] = {
        "minReplicas": 1,
        "maxReplicas": 6,
        "scaleDownStabilizationSeconds": WINDOW_SECONDS,
        "tierSwitchCooldownSeconds": 30,
    }
    return manifest


def lease(kube: Kube, name: str) -> dict[str, Any]:
    try:
        found = client.CoordinationV1Api(kube.core.api_client).read_namespaced_lease(name, BUILD_NAMESPACE)
    except client.ApiException as exc:
        if exc.status == 404:
            return {"holder": "", "transitions": 0}
        raise
    assert found.spec is not None, f"Lease {name} without spec"
    return {
        "holder": found.spec.holder_identity or "",
        "transitions": found.spec.lease_transitions or 0,
    }


def build_jobs(kube: Kube) -> dict[str, str | None]:
    """The build Jobs, name -> uid."""
    return {name_of(j): meta(j).uid for j in kube.batch.list_namespaced_job(BUILD_NAMESPACE).items}


def fleet(kube: Kube, namespace: str, name: str) -> dict[str, int]:
    return {d.metadata.name: d.spec.replicas for d in kube.deployments(namespace, name)}


def condition(kube: Kube, namespace: str, name: str, type_: str) -> tuple[str, str, str]:
    found = kube.condition(namespace, name, type_) or {}
    return found.get("status", ""), found.get("reason", ""), found.get("message", "")


def settled(kube: Kube, namespace: str, name: str) -> bool:
    """At least two replicas serve fp32 (the most accurate tier: where a plan that starts on a faster tier, such
    as "prepare, then switch back hot", ends) from one placement, all ready, measured, and no decision for a few
    ticks."""
    status = kube.get(namespace, name).get("status") or {}
    decided = (status.get("lastDecision") or {}).get("time")
    quiet = decided is not None and time.time() - parse_time(decided) >= QUIET_TICKS * TICK_SECONDS  # type: ignore[operator]
    return (
        (status.get("replicas") or 0) >= 2
        and status.get("activeTier") == "fp32"
        and status.get("readyReplicas") == status.get("replicas")
        and len(fleet(kube, namespace, name)) == 1
        and condition(kube, namespace, name, "MetricsAvailable")[0] == "True"
        and quiet
    )


def grew_only(before: dict[str, int], now: dict[str, int]) -> bool:
    """The same placements, none smaller."""
    return now.keys() == before.keys() and all(now[k] >= before[k] for k in before)


def metrics_addresses(kube: Kube, namespace: str, name: str) -> list[str]:
    discovery = client.DiscoveryV1Api(kube.core.api_client)
    slices = discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={name}"
    ).items
    return sorted({a for s in slices for e in s.endpoints or [] for a in e.addresses})


@pytest.fixture
def two_operators(
    cluster: Any, crd_installed: None, namespace: str, model_storage: ObjectStoreConfig, tmp_path: Path
) -> Any:
    lease_name = f"safety-{namespace[-6:]}"
    args = ["--namespace", namespace, "--leader-elect-resource-name", lease_name, *LEASE]
    made: list[OperatorProcess] = []

    def start(tag: str) -> OperatorProcess:
        process = OperatorProcess(
            Path(cluster.kubeconfig),
            BUILD_NAMESPACE,
            model_storage,
            tmp_path / f"operator-{tag}.log",
            cluster.images,
            tick_seconds=TICK_SECONDS,
            extra_args=args,
        ).start()
        made.append(process)
        return process

    try:
        yield start, lease_name
    finally:
        for process in made:
            process.stop()


@pytest.mark.timeout(2400 if FULL else 900)  # the full run: a 300 s window to settle, then a 300 s hold
def test_a_killed_leader_and_lost_metrics_change_nothing_under_steady_load(
    cluster: Any, kube: Kube, namespace: str, two_operators: Any, tmp_path: Path
) -> None:
    if iptables() is None:
        pytest.fail("this test blocks a metrics port with iptables (Debian package iptables)")
    start, lease_name = two_operators
    first, second = start("a"), start("b")
    wait_for("a leader", lambda: lease(kube, lease_name)["holder"], timeout=60, on_timeout=first.log)

    # the real build (reused when an earlier test built it), then the edge pool's profiled record
    kube.create(namespace, example_manifest())
    wait_ready(kube, first, namespace, "ctr-ranker")
    base = kube.get(namespace, "ctr-ranker")
    seed_profiled_record(kube, first, base, model("steady"), CAPACITY)
    seed_profiled_record(kube, first, base, model("outage"), CAPACITY)
    seed_profiled_record(kube, first, base, model("outage"), CHEAP, pool_index=1)
    kube.delete(namespace, "ctr-ranker")
    for name in NAMES:
        kube.create(namespace, model(name))
    for name in NAMES:
        wait_ready(kube, first, namespace, name, timeout=180)

    run_seconds = 600 + HOLD_SECONDS  # the load outlasts the test; it is stopped at the end
    rows = [(t, RATE) for t in range(0, run_seconds, 15)]
    loads = {name: start_load(cluster, namespace, name, rows, tmp_path, slo_ms=SLO_MS) for name in NAMES}
    began = time.monotonic()
    try:
        # both settled at the same moment (each alone may move again while the other settles), every outage pod
        # serving its metrics, and only then the snapshot the hold is judged against, right before the faults
        wait_for(
            f"both fleets to settle under {RATE:g} rps",
            lambda: all(settled(kube, namespace, name) for name in NAMES),
            timeout=300 + 2 * WINDOW_SECONDS,  # a cheaper move waits for a whole observed window
            every=3,
            on_timeout=lambda: "\n".join(debug(kube, first, namespace, name) for name in NAMES),
        )
        addresses = wait_for(
            "every outage pod in its EndpointSlice",
            lambda: (
                len(a := metrics_addresses(kube, namespace, "outage")) == sum(fleet(kube, namespace, "outage").values())
                and a
            ),
            timeout=60,
        )
        before = {name: fleet(kube, namespace, name) for name in NAMES}
        decided_before = {name: len(decision_events(kube, namespace, name)) for name in NAMES}
        jobs_before = build_jobs(kube)
        held = lease(kube, lease_name)
        leader = next(p for p in (first, second) if f"identity {held['holder']})" in p.log_path.read_text())
        standby = second if leader is first else first

        # the faults, at once
        block = PortBlock(addresses, METRICS_PORT).__enter__()
        killed = time.monotonic()
        leader.kill()
        restarted = start("a-again")
        taken = wait_for(
            "the standby to take the Lease",
            lambda: (now := lease(kube, lease_name))["holder"] not in ("", held["holder"]) and now,
            timeout=60,
            every=0.5,
            on_timeout=standby.log,
        )
        takeover_seconds = time.monotonic() - killed
        try:
            samples: list[dict[str, Any]] = []
            while time.monotonic() - killed < HOLD_SECONDS:
                samples.append(
                    {
                        "t": round(time.monotonic() - killed),
                        "fleet": {name: fleet(kube, namespace, name) for name in NAMES},
                        "metrics": {n: condition(kube, namespace, n, "MetricsAvailable")[:2] for n in NAMES},
                        "slo": {n: condition(kube, namespace, n, "SLOMet")[:2] for n in NAMES},
                    }
                )
                (tmp_path / "control-safety-samples.json").write_text(json.dumps(samples, indent=1))
                now = samples[-1]["fleet"]
                assert now["outage"] == before["outage"], (samples[-1], debug(kube, standby, namespace, "outage"))
                assert grew_only(before["steady"], now["steady"]), (
                    samples[-1],
                    debug(kube, standby, namespace, "steady"),
                )
                time.sleep(5)
            outage_metrics = condition(kube, namespace, "outage", "MetricsAvailable")
            outage_slo = condition(kube, namespace, "outage", "SLOMet")
            steady_metrics = condition(kube, namespace, "steady", "MetricsAvailable")
        finally:
            block.lift()
        restored = time.monotonic()
        restored_at = datetime.now(UTC)
        wait_for(
            "outage's metrics back",
            lambda: condition(kube, namespace, "outage", "MetricsAvailable")[0] == "True",
            timeout=120,
            every=2,
            on_timeout=lambda: debug(kube, standby, namespace, "outage"),
        )
        restore_seconds = time.monotonic() - restored
        after = {name: fleet(kube, namespace, name) for name in NAMES}
        decisions = {name: decision_events(kube, namespace, name) for name in NAMES}
        events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.name=outage").items
        jobs_after = build_jobs(kube)
        final_lease = lease(kube, lease_name)
    finally:
        for load in loads.values():
            load.terminate()
        for load in loads.values():
            load.wait(30)

    report = {
        "window_seconds": WINDOW_SECONDS,
        "hold_seconds": HOLD_SECONDS,
        "takeover_seconds": round(takeover_seconds, 1),
        "metrics_back_seconds": round(restore_seconds, 1),
        "run_seconds": round(time.monotonic() - began),
        "fleet": {"before": before, "after": after},
        "lease": {"before": held, "taken": taken, "end": final_lease},
        "decisions": {n: [(e.reason, e.message) for e in d] for n, d in decisions.items()},
        "outage": {"metrics": outage_metrics, "slo": outage_slo},
        "samples": samples,
    }
    (tmp_path / "control-safety.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1, default=str))

    # the standby took over once (the restarted replica stays a standby), within about a lease duration
    assert final_lease["holder"] == taken["holder"] and final_lease["transitions"] == held["transitions"] + 1
    assert restarted.alive() and standby.alive()
    # nothing scaled in or switched while the faults lasted (the fleet without data did not change at all: checked
    # every sample above); once its metrics are back, a fleet may grow for the load it measures again
    assert grew_only(before["outage"], after["outage"])
    assert grew_only(before["steady"], after["steady"])
    for name in NAMES:
        late = [e for e in decisions[name][decided_before[name] :] if event_time(e) <= restored_at]
        assert not [e for e in late if e.reason in ("ScaleDown", "SwitchTier", "SwitchPool")], (name, late)
        # no decision taken twice: one leader at a time, one event per decision
        stamps = sorted(event_time(e) for e in decisions[name])
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
        assert all(gap >= TICK_SECONDS / 2 for gap in gaps), (name, gaps)
    # the outage was said, with what failed, and a Warning; the SLO was not claimed met without data
    assert outage_metrics[:2] == ("False", "ScrapeFailed"), outage_metrics
    assert f":{METRICS_PORT}/metrics" in outage_metrics[2] and "pod outage-" in outage_metrics[2]
    assert outage_slo[:2] == ("Unknown", "NoMetrics"), outage_slo
    assert any(e.type == "Warning" and e.reason == "ScrapeFailed" for e in events)
    assert any(e.type == "Normal" and e.reason == "MetricsAvailable" for e in events)
    # the new leader measured the other fleet again
    assert steady_metrics[0] == "True", steady_metrics
    # one build Job per key: none added, none replaced
    assert jobs_after == jobs_before

"""One model name through every kind of switch, on a real control plane with real Triton pods under steady load.

``fulcrum load`` knows only the Service and the served name (``ranker``) and sends 60 rps the whole time. The test
edits the spec as a user would and waits on what the policy (the real one, in the operator) reports in status and
events; the policy paces every move itself:

1. **cold tier switch**: on pool ``west`` fp32 does not fit beside the other tiers (``memoryPerReplica``), so it runs
   in pods of its own; when the load comes, fp32 cannot serve it within ``maxReplicas`` (a move the load forces,
   which waits for nothing), and the policy rolls to int8 in new pods that load fp16 and int8;
2. **pool switch**: the user retires ``west`` (``nodePools: [east]``, ``objective: Cost``): the served name moves to
   new pods on ``east``, whose replicas load every tier, and the ``west`` pods drain. Before the policy's next tick the
   rule that keeps what serves can place int8 there; the policy then keeps int8, or picks fp32 (x1 or x2, a cost tie
   while its view of the load is still rising), which is a hot switch of that pod and which the load then switches
   hot back to int8;
3. **hot tier switch**: ``objective: Quality``: fp32 x2 serves 60 rps on ``east``, so the policy first grows the int8
   replicas to two (``Preparing``) and then re-routes them to fp32 (model-control calls): no pod starts.

Steps 1 and 2 are the only ways to a cold move while the load is new: the policy counts a rise from idle as a
burst, and moves for cost or accuracy alone wait until a burst has ended (docs/policy.md, "Step"); a forced move
and a pool leaving the spec do not wait. A hot switch for accuracy waits for nothing but ready replicas.

Both pools are the real node ``local-0``. Their build records are the real ctr-ranker build with profiles in which
the tiers differ as GPU pools would make them differ (rps per replica within the SLO: ``CAPACITY``), as in
``test_closed_loop.py``. Every request must succeed, and none may meet an unknown model.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fulcrum.api import parse_model_deployment
from fulcrum.reconcile.builds import BuildResult
from fulcrum.reconcile.plan import pool_builds
from fulcrum.resources.build import build_record
from fulcrum.resources.settings import OperatorSettings
from tests.support.closed_loop import profile
from tests.support.kube import Kube, debug, example_manifest, wait_ready
from tests.support.kube_api import labels_of, meta
from tests.support.polling import wait_for
from tests.support.release import Release, repository_storage

pytestmark = [pytest.mark.e2e, pytest.mark.lane("store")]  # beside the storage tests: it evens the e2e lanes

NAME = "switch"
SERVED = "ranker"
RATE = 60.0
# rps per replica within the SLO, by pool and tier. The policy learns speed corrections of up to 1.5x from the real
# pods (faster than these profiles on a quiet machine), so each figure holds at 1x..1.5x: on west neither fp32 nor
# fp16 serves 60 rps with 2 replicas (45.6 at 1.5x); on east fp32 x2 serves 73 (60 x 1.05 hysteresis at 1x)
CAPACITY = {
    "west": {"fp32": 15.0, "fp16": 15.0, "int8": 150.0},
    "east": {"fp32": 36.0, "fp16": 15.0, "int8": 150.0},
}
EAST = {  # not test_closed_loop's "edge": a pool's name is part of its build key, so these records are this test's
    "name": "east",
    "nodeSelector": {"fulcrum.dev/pool": "local"},
    "gpusPerReplica": 0,
    "costPerHour": "1.00",
    "replicaStartupSeconds": 10,
}


def manifest(pools: list[dict[str, Any]], objective: str) -> dict[str, Any]:
    body = example_manifest(NAME)
    spec = body["spec"]
    spec["serving"] = {**spec["serving"], "modelName": SERVED}
    spec["nodePools"] = pools
    spec.pop("budget", None)
    spec["scaling"] = {
        "minReplicas": 1,
        "maxReplicas": 2,
        "scaleDownStabilizationSeconds": 20,
        "tierSwitchCooldownSeconds": 0,
        "objective": objective,
    }
    return body


def real_build(kube: Kube, operator: Release, real_key: str) -> BuildResult:
    result = BuildResult.from_record(kube.build_record(operator.build_namespace, real_key))
    assert result.manifest is not None and result.manifest.inputs, "the build records what the served name needs"
    return result


def seed_record(kube: Kube, operator: Release, result: BuildResult, body: dict[str, Any], pool: str) -> None:
    """The pool's build record: the real build's manifest and repository, with the pool's profiles above."""
    assert result.manifest is not None
    settings = OperatorSettings(
        build_namespace=operator.build_namespace,
        storage=repository_storage(operator.store),
        build_target="local",
        triton_image=operator.triton_image,
    )
    tiers = []
    for tier in result.manifest.tiers:
        data = tier.model_dump(mode="json", by_alias=True)
        capacity = CAPACITY[pool].get(tier.name)
        data["profiles"] = [profile(pool, capacity)] if capacity else []
        tiers.append(data)
    spec = parse_model_deployment(body).spec
    key = next(b.key for b in pool_builds(spec, settings, {}, {}) if b.pool.name == pool)  # pinned: any namespace
    seeded = {
        **result.to_record(),
        "manifest": {**result.manifest.model_dump(mode="json", by_alias=True), "tiers": tiers},
    }
    record = build_record(key, spec.node_pool(pool), BuildResult.from_record(seeded).to_record(), settings)
    kube.create_build_record(operator.build_namespace, record)


def start_load(cluster: Any, namespace: str, workdir: Path) -> subprocess.Popen[str]:
    """``fulcrum load`` as a client would run it: the Service and the served name, nothing else; stopped by SIGINT."""
    trace = workdir / "steady.csv"
    trace.write_text(f"t_seconds,requests_per_second\n0,{RATE}\n600,{RATE}\n")  # 10 minutes; the test stops it
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fulcrum",
            "load",
            "--service",
            f"{namespace}/{NAME}",
            "--model",
            SERVED,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--trace",
            str(trace),
            "--interval",
            "10",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events(kube: Kube, namespace: str) -> list[Any]:
    """The ModelDeployment's events in time order."""
    items = kube.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={NAME}").items
    return sorted(items, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)


def serving(kube: Kube, namespace: str) -> dict[str, Any]:
    return (kube.get(namespace, NAME).get("status") or {}).get("serving") or {}


def observed_rps(kube: Kube, namespace: str) -> float:
    observed = (kube.get(namespace, NAME).get("status") or {}).get("observed") or {}
    return float(observed.get("requestsPerSecond") or 0.0)


def fleet(kube: Kube, namespace: str) -> dict[str, tuple[int, int]]:
    """Deployment name -> (replicas, ready replicas)."""
    return {
        d.metadata.name: (d.spec.replicas or 0, d.status.ready_replicas or 0) for d in kube.deployments(namespace, NAME)
    }


def templates(kube: Kube, namespace: str, deployment: str) -> set[str]:
    """The pod templates (``pod-template-hash``) the Deployment's running pods were made from."""
    match_labels = kube.apps.read_namespaced_deployment(deployment, namespace).spec.selector.match_labels
    assert match_labels is not None, f"{deployment} selects by labels"
    selector = ",".join(f"{k}={v}" for k, v in match_labels.items())
    items = kube.core.list_namespaced_pod(namespace, label_selector=selector).items
    return {labels_of(p)["pod-template-hash"] for p in items if meta(p).deletion_timestamp is None}


def settled(kube: Kube, namespace: str, deployment: str, tier: str, *, at_least: int = 1) -> bool:
    """Only ``deployment`` runs, all its replicas (at least ``at_least``) ready, every ready pod routed to ``tier``."""
    s = serving(kube, namespace)
    running = fleet(kube, namespace)
    wanted, ready = running.get(deployment, (0, -1))
    return (
        set(running) == {deployment}
        and wanted == ready
        and wanted >= at_least
        and s.get("routedTier") == tier
        and s.get("pods") == ready
        and s.get("routedPods") == ready
    )


def test_cold_pool_and_hot_switches_keep_the_served_name_without_a_failed_request(
    cluster: Any, kube: Kube, operator: Release, namespace: str, tmp_path: Path
) -> None:
    kube.create(namespace, example_manifest())  # the real build (reused when an earlier test built it)
    wait_ready(kube, operator, namespace, "ctr-ranker")
    result = real_build(kube, operator, kube.get(namespace, "ctr-ranker")["status"]["build"]["key"])
    kube.delete(namespace, "ctr-ranker")
    assert result.manifest is not None
    sizes = {t.name: t.size_bytes for t in result.manifest.tiers if t.size_bytes is not None}
    # west fits fp16 and int8 together (each takes twice its files) but not fp32
    assert sizes["fp32"] > sizes["fp16"] + sizes["int8"], sizes
    west = {**EAST, "name": "west", "costPerHour": "0.50", "memoryPerReplica": str(sum(sizes.values()))}
    seed_record(kube, operator, result, manifest([west], "Quality"), "west")
    seed_record(kube, operator, result, manifest([EAST], "Quality"), "east")

    def wait(what: str, check: Any, timeout: float = 180) -> Any:
        return wait_for(
            what,
            check,
            timeout,
            every=1,
            on_timeout=lambda: (
                f"{fleet(kube, namespace)}\n{[(e.reason, e.message) for e in events(kube, namespace)]}\n"
                f"{debug(kube, operator, namespace, NAME)}"
            ),
        )

    began = time.monotonic()
    kube.create(namespace, manifest([west], "Quality"))
    wait_ready(kube, operator, namespace, NAME, timeout=180)
    wait("fp32 on west in pods of its own", lambda: settled(kube, namespace, "switch-fp32-west", "fp32"))
    s = serving(kube, namespace)  # the Deployment of fp32 on west loads fp32 alone
    assert s["modelName"] == SERVED and s["hotTiers"] == ["fp32"], s
    assert [(c["name"], c["reason"]) for c in s["coldTiers"]] == [("fp32", "DoesNotFit")], s
    load = start_load(cluster, namespace, tmp_path)
    marks: dict[str, float] = {"load": time.monotonic()}
    try:
        # 1. cold tier switch: the load outgrows what fp32 on west can serve; int8 comes in new pods
        wait("int8 on west", lambda: settled(kube, namespace, "switch-west", "int8"))
        marks["cold done"] = time.monotonic()
        assert serving(kube, namespace)["hotTiers"] == ["fp16", "int8"]  # the pods of west's hot tiers

        # 2. pool switch: west leaves the spec; int8 moves to east, the west pods drain. Once the policy sees the
        # whole load (its metrics window is a minute long): then fp32 x1 no longer serves it, and int8 x1 is the
        # cheapest on east (before, fp32 x1 would be, at the same price and more accurate)
        wait("the load seen in full", lambda: observed_rps(kube, namespace) >= 0.9 * RATE, 120)
        marks["pool"] = time.monotonic()
        kube.patch_spec(namespace, NAME, {"nodePools": [EAST], "scaling": {"objective": "Cost"}})
        wait("int8 on east", lambda: settled(kube, namespace, "switch-east", "int8"))
        marks["pool done"] = time.monotonic()
        assert serving(kube, namespace)["hotTiers"] == ["fp32", "fp16", "int8"]
        template = templates(kube, namespace, "switch-east")

        # 3. hot tier switch: back to fp32 on the same pods, once two of them are ready
        marks["hot"] = time.monotonic()
        kube.patch_spec(namespace, NAME, {"scaling": {"objective": "Quality"}})
        wait("the hot switch to fp32", lambda: any(e.reason == "HotSwitch" for e in events(kube, namespace)))
        wait("fp32 on east, routed", lambda: settled(kube, namespace, "switch-east", "fp32", at_least=2))
        marks["hot done"] = time.monotonic()
        # the same pod template throughout: the pods Preparing added are more of the same, and the switch rolled none
        assert templates(kube, namespace, "switch-east") == template
        time.sleep(5)  # a last stretch of load on the final fleet
    finally:
        load.send_signal(signal.SIGINT)
        stdout, stderr = load.communicate(timeout=120)
    ended = time.monotonic()
    assert load.returncode == 0, stderr[-3000:]
    result_of_load = json.loads(stdout)
    history = [(e.reason, e.message) for e in events(kube, namespace)]
    hot = [m for r, m in history if r == "HotSwitch"]
    seconds = [float(x) for x in re.findall(r"in ([0-9.]+) s from the decision", " ".join(hot))]
    decisions = [(r, m) for r, m in history if r in ("SwitchTier", "SwitchPool", "ScaleUp", "ScaleDown")]
    report = {
        "summary": result_of_load["summary"],
        "intervals": result_of_load["intervals"],
        "decisions": decisions,
        "hot switches": hot,
        "seconds from the load, or the spec edit, to the settled fleet": {
            "cold tier": round(marks["cold done"] - marks["load"], 1),
            "pool": round(marks["pool done"] - marks["pool"], 1),
            "hot tier": round(marks["hot done"] - marks["hot"], 1),
        },
        "test seconds": round(ended - began, 1),
    }
    (tmp_path / "serving-switches.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))

    summary = result_of_load["summary"]
    assert result_of_load["model"] == SERVED
    assert summary["errors"] == 0 and summary["errorKinds"] == {}, summary
    assert summary["ok"] >= 0.8 * RATE * (ended - marks["load"]), summary  # the client kept up (open loop)
    assert all(i["achievedRps"] > 0 for i in result_of_load["intervals"]), result_of_load["intervals"]
    # the last move is a hot switch: every ready pod of east re-routed from int8 to fp32, in seconds. (The
    # policy switches once the replicas Preparing started are due by the pool's replicaStartupSeconds; one that is
    # late on this machine starts routed to fp32.)
    assert hot and len(seconds) == len(hot) and all(m.endswith("no pod started") for m in hot), hot
    assert re.search(r"routes to fp32 \(was int8\) on pool east: (\d+) of \1 ready pods of switch-east routed", hot[-1])
    # the moves in order, each after the one before: the cold tier switch, the move off west (int8 on east, the
    # cheapest for the load; or fp32 x1 or x2 at a cost tie, which the load then switches hot to int8), the hot
    # switch back to fp32
    moves = iter(decisions)
    for move in (r"fp32@westx\d+ -> int8@westx", r"int8@westx\d+ -> (int8|fp32)@eastx", r"int8@eastx\d+ -> fp32@eastx"):
        assert any(r in ("SwitchTier", "SwitchPool") and re.match(move, m) for r, m in moves), (move, decisions)
    back = [m for r, m in decisions if r == "SwitchTier" and "-> fp32@east" in m][-1]
    assert re.match(r"int8@eastx(\d+) -> fp32@eastx\1 \(LoadAllows\)", back), back  # a hot switch adds no replica

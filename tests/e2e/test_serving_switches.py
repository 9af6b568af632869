"""One model name through every kind of switch, on a real control plane with real Triton pods under steady load.

``fulcrum load`` knows only the Service and the served name (``ranker``) and sends 60 rps the whole time, while the
spec is edited so that the policy (the real one, in the operator) makes three switches in turn:

1. **hot tier switch**: ``objective: Cost`` makes int8 x1 cheaper than fp32 x2 (or x3) on pool ``east``, whose
   replicas load every tier: the running Deployment is re-routed (model-control calls), no pod starts;
2. **pool switch**: adding pool ``west`` at half the price moves int8 there (new pods; the old ones drain);
3. **cold tier switch**: ``objective: Quality`` brings fp32 back, on ``west``, where fp32 does not fit beside the
   other tiers (``memoryPerReplica``): it is reported in ``status.serving.coldTiers`` and served by its own pods.

Both pools are the real node ``local-0``. Their build records are the real ctr-ranker build with profiles in which
the tiers differ as a GPU would make them differ (fp32 serves 30 rps per replica in the SLO, int8 150; fp16 25, so it
is never the cheapest), as in ``test_closed_loop.py``. Every request must succeed, and none may meet an unknown model.
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
from kubernetes import client

from fulcrum.api import parse_model_deployment
from fulcrum.dev import objectstore
from fulcrum.reconcile.builds import BuildResult
from fulcrum.reconcile.plan import pool_builds
from fulcrum.resources.build import RECORD_KEY, build_record
from fulcrum.resources.labels import build_record_name
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
from tests.support.closed_loop import profile
from tests.support.kube import Kube, debug, example_manifest, wait_ready
from tests.support.polling import wait_for
from tests.support.release import Release

pytestmark = pytest.mark.e2e

NAME = "switch"
SERVED = "ranker"
RATE = 60.0  # fp32 needs 2+ replicas even at the largest speed correction the policy learns (1.5x)
CAPACITY = {"fp32": 30.0, "fp16": 25.0, "int8": 150.0}  # rps per replica within the SLO, by tier (both pools)
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


def seed_record(kube: Kube, operator: Release, real_key: str, body: dict[str, Any], pool: str) -> dict[str, int]:
    """The pool's build record: the real build's manifest and repository, with the profiles above; tier sizes."""
    assert operator.store is not None
    settings = OperatorSettings(
        build_namespace=operator.build_namespace,
        storage=RepositoryStorage.parse(objectstore.REPOSITORY, endpoint=operator.store.endpoint),
        build_target="local",
        triton_image=operator.triton_image,
    )
    real = kube.core.read_namespaced_config_map(build_record_name(real_key), operator.build_namespace)
    result = BuildResult.from_record(json.loads(real.data[RECORD_KEY]))
    assert result.manifest is not None and result.manifest.inputs, "the build records what the served name needs"
    tiers = []
    for tier in result.manifest.tiers:
        data = tier.model_dump(mode="json", by_alias=True)
        data["profiles"] = [profile(pool, CAPACITY[tier.name])] if tier.name in CAPACITY else []
        tiers.append(data)
    spec = parse_model_deployment(body).spec
    key = next(b.key for b in pool_builds(spec, settings, {}, {}) if b.pool.name == pool)  # pinned: any namespace
    seeded = {
        **result.to_record(),
        "manifest": {**result.manifest.model_dump(mode="json", by_alias=True), "tiers": tiers},
    }
    record = build_record(key, spec.node_pool(pool), BuildResult.from_record(seeded).to_record(), settings)
    try:
        kube.core.create_namespaced_config_map(operator.build_namespace, record)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    return {t.name: t.size_bytes for t in result.manifest.tiers if t.size_bytes is not None}


def start_load(cluster: Any, namespace: str, workdir: Path) -> subprocess.Popen[str]:
    """``fulcrum load`` as a client would run it: the Service and the served name, nothing else; stopped by SIGINT."""
    trace = workdir / "steady.csv"
    trace.write_text(f"t_seconds,requests_per_second\n0,{RATE}\n600,{RATE}\n")  # 20 minutes; the test stops it
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


def events(kube: Kube, namespace: str, *, besides: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """The ModelDeployment's events in time order, leaving out those whose uid is in ``besides``."""
    items = kube.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={NAME}").items
    ordered = sorted(items, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return [(e.reason, e.message) for e in ordered if e.metadata.uid not in besides]


def event_uids(kube: Kube, namespace: str) -> frozenset[str]:
    items = kube.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={NAME}").items
    return frozenset(e.metadata.uid for e in items)


def serving(kube: Kube, namespace: str) -> dict[str, Any]:
    return (kube.get(namespace, NAME).get("status") or {}).get("serving") or {}


def fleet(kube: Kube, namespace: str) -> dict[str, tuple[int, int]]:
    """Deployment name -> (replicas, ready replicas)."""
    return {
        d.metadata.name: (d.spec.replicas or 0, d.status.ready_replicas or 0) for d in kube.deployments(namespace, NAME)
    }


def pods(kube: Kube, namespace: str, deployment: str) -> set[str]:
    selector = ",".join(
        f"{k}={v}"
        for k, v in kube.apps.read_namespaced_deployment(deployment, namespace).spec.selector.match_labels.items()
    )
    return {p.metadata.uid for p in kube.core.list_namespaced_pod(namespace, label_selector=selector).items}


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


@pytest.mark.xfail(
    strict=False,
    reason=(
        "known, open: the redesigned policy absorbs the 60 rps ramp with an emergency hot switch to int8, and its "
        "return to fp32 (Preparing, then a voluntary hot switch after Tuning.hot_dwell_seconds and enough evidence) "
        "did not come within the 180 s the scripted fp32 x2 -> Cost -> pool -> Quality sequence waits (CI: int8 x1 "
        "serving 60.8 rps at p99 10 ms); the script must follow the policy's pacing (docs/policy.md, Step)"
    ),
)
def test_hot_pool_and_cold_switches_keep_the_served_name_without_a_failed_request(
    cluster: Any, kube: Kube, operator: Release, namespace: str, tmp_path: Path
) -> None:
    kube.create(namespace, example_manifest())  # the real build (reused when an earlier test built it)
    wait_ready(kube, operator, namespace, "ctr-ranker")
    real_key = kube.get(namespace, "ctr-ranker")["status"]["build"]["key"]
    kube.delete(namespace, "ctr-ranker")
    sizes = seed_record(kube, operator, real_key, manifest([EAST], "Quality"), "east")
    # west fits fp16 and int8 together (each takes twice its files) but not fp32
    assert sizes["fp32"] > sizes["fp16"] + sizes["int8"], sizes
    memory = sizes["fp32"] + sizes["fp16"] + sizes["int8"]
    west = {**EAST, "name": "west", "costPerHour": "0.50", "memoryPerReplica": str(memory)}
    seed_record(kube, operator, real_key, manifest([EAST, west], "Quality"), "west")

    def wait(what: str, check: Any, timeout: float = 180) -> None:
        wait_for(
            what,
            check,
            timeout,
            every=1,
            on_timeout=lambda: (
                f"{fleet(kube, namespace)}\n{events(kube, namespace)}\n{debug(kube, operator, namespace, NAME)}"
            ),
        )

    began = time.monotonic()
    kube.create(namespace, manifest([EAST], "Quality"))
    wait_ready(kube, operator, namespace, NAME, timeout=180)
    load = start_load(cluster, namespace, tmp_path)
    marks: dict[str, float] = {"load": time.monotonic()}
    try:
        # 0. fp32 on east, scaled out for 60 rps; every tier loaded in each replica. (At 40 rps a quiet machine's
        # real pods are 1.5x faster than the seeded profile, the policy learns it, and one fp32 replica serves.)
        wait("fp32 x2+ on east, routed", lambda: settled(kube, namespace, "switch-east", "fp32", at_least=2))
        assert serving(kube, namespace)["hotTiers"] == ["fp32", "fp16", "int8"]
        before = pods(kube, namespace, "switch-east")

        # 1. hot: int8 x1 is the cheapest way to serve 60 rps; the running pods are re-routed. (While fp32 scaled
        # out in step 0, the policy may already have served the rising load on int8 for a while, hot: those
        # earlier events are not this step's.)
        marks["hot"] = time.monotonic()
        earlier = event_uids(kube, namespace)
        kube.patch_spec(namespace, NAME, {"scaling": {"objective": "Cost"}})
        wait(
            "the hot switch to int8",
            lambda: any(r == "HotSwitch" for r, _ in events(kube, namespace, besides=earlier)),
            60,
        )
        wait("int8 on east", lambda: settled(kube, namespace, "switch-east", "int8"), 90)
        assert pods(kube, namespace, "switch-east") <= before, "a hot switch starts no pod"

        # 2. pool: west serves int8 for half the price; new pods there, the old ones drain and go
        marks["pool"] = time.monotonic()
        kube.patch_spec(namespace, NAME, {"nodePools": [EAST, west]})
        wait("int8 on west", lambda: settled(kube, namespace, "switch-west", "int8"))
        s = serving(kube, namespace)
        assert s["hotTiers"] == ["fp16", "int8"]
        assert [(c["name"], c["reason"]) for c in s["coldTiers"]] == [("fp32", "DoesNotFit")], s

        # 3. cold tier: fp32 is the most accurate tier that serves 60 rps again; on west it runs in its own pods
        marks["cold"] = time.monotonic()
        kube.patch_spec(namespace, NAME, {"scaling": {"objective": "Quality"}})
        wait("fp32 on west, served cold", lambda: settled(kube, namespace, "switch-fp32-west", "fp32"))
        s = serving(kube, namespace)
        assert s["modelName"] == SERVED and s["hotTiers"] == ["fp32"]
        assert [(c["name"], c["reason"]) for c in s["coldTiers"]] == [("fp32", "DoesNotFit")], s
        time.sleep(5)  # a last stretch of load on the final fleet
    finally:
        load.send_signal(signal.SIGINT)
        stdout, stderr = load.communicate(timeout=120)
    ended = time.monotonic()
    assert load.returncode == 0, stderr[-3000:]
    result = json.loads(stdout)
    history = events(kube, namespace, besides=earlier)  # from the first spec edit on
    hot = [m for r, m in history if r == "HotSwitch"]
    seconds = [float(x) for x in re.findall(r"in ([0-9.]+) s from the decision", " ".join(hot))]
    report = {
        "summary": result["summary"],
        "intervals": result["intervals"],
        "decisions": [(r, m) for r, m in history if r in ("SwitchTier", "SwitchPool", "ScaleUp", "ScaleDown")],
        "hot switches": hot,
        "seconds from each spec edit to the next step": {
            "hot": round(marks["pool"] - marks["hot"], 1),
            "pool": round(marks["cold"] - marks["pool"], 1),
            "cold": round(ended - marks["cold"], 1),
        },
        "test seconds": round(ended - began, 1),
    }
    (tmp_path / "serving-switches.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))

    summary = result["summary"]
    assert result["model"] == SERVED
    assert summary["errors"] == 0 and summary["errorKinds"] == {}, summary
    assert summary["ok"] >= 0.8 * RATE * (ended - marks["load"]), summary  # the client kept up (open loop)
    assert all(i["achievedRps"] > 0 for i in result["intervals"]), result["intervals"]
    # The policy may step through fp16 on the way (its speed corrections follow the real latency on this busy
    # machine), so the check is on what every hot switch is and on the order of the three moves, not their count.
    assert hot and seconds and all(m.endswith("no pod started") for m in hot), hot
    assert any("routes to int8 " in m and " on pool east:" in m for m in hot), hot
    switches = [m for r, m in report["decisions"] if r in ("SwitchTier", "SwitchPool")]
    moves = iter(switches)
    for to in ("-> int8@east", "-> int8@west", "-> fp32@west"):  # in this order, each after the one before
        assert any(to in m for m in moves), (to, switches)

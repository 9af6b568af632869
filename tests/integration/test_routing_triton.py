"""The served model name against the real bundled tritonserver, no cluster: a server laid out as the operator lays
out a pod (the build's repository plus the routing repository, files exactly as a kubelet writes the routing
ConfigMap's items) comes up routed, is re-routed live by the operator's routing code under open-loop load without
a failed request, counts each request once, and comes up routed to the new tier after a restart."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fulcrum import local_triton
from fulcrum.api import ManifestTensor, NodePool
from fulcrum.controller.routing import Router
from fulcrum.loadgen.generator import Schedule, run_load
from fulcrum.metrics.triton import parse_triton_metrics
from fulcrum.policy.hot import HotLayout
from fulcrum.reconcile.layout import Placement
from fulcrum.reconcile.routing import PodRoute, RoutingIntent
from fulcrum.resources.routing import (
    KEY_ENV,
    ROUTING_MOUNT,
    Route,
    ServedIO,
    ensemble_pbtxt,
    routing_configmap,
    routing_volume,
)
from fulcrum.resources.serving import ServingTarget, triton_args
from tests.support.echo_model import write_echo_repository

pytestmark = pytest.mark.integration

SERVED = "ranker"
MD = {
    "apiVersion": "fulcrum.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": SERVED, "namespace": "shop", "uid": "u"},
}
IO = ServedIO(
    (ManifestTensor(name="x", data_type="FP32", dims=[4]),), (ManifestTensor(name="y", data_type="FP32", dims=[4]),), 64
)
POOL = NodePool(name="cpu", gpus_per_replica=0, cost_per_hour="1")
FACTORS = {"fp32": 2.0, "int8": 3.0}  # what each tier multiplies by: the answer says which tier served it
KEY = "the-routing-key"


def target(tier: str, build: Path) -> ServingTarget:
    return ServingTarget(
        tier=tier,
        pool=POOL,
        repository=str(build),
        model_name=tier,
        replicas=1,
        served_name=SERVED,
        loaded=(("fp32", "fp32"), ("int8", "int8")),
        hot=True,
    )


def write_routing(volume_dir: Path, tier: str, build: Path) -> None:
    """The routing ConfigMap's items, where a kubelet puts them for the pod of the hot Deployment."""
    deployment = target(tier, build).deployment_name(SERVED)
    configmap = routing_configmap(MD, {deployment: ensemble_pbtxt(Route(SERVED, tier, IO))}, KEY)
    volume, _mount = routing_volume(SERVED, SERVED, deployment)
    for item in volume["configMap"]["items"]:
        path = volume_dir / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(configmap["data"][item["key"]])


def start(build: Path, volume_dir: Path, tier: str) -> local_triton.TritonServer:
    """tritonserver with the pod's repository and model arguments (ports and addresses are the test's own)."""
    kept: tuple[str, ...] = (
        "--model-repository=",
        "--model-control-mode=",
        "--load-model=",
        "--strict-readiness=",
        "--exit-timeout",
    )
    kept += ("--http-restricted-api=", "--grpc-restricted-protocol=")
    args = [
        a.replace(ROUTING_MOUNT, str(volume_dir)).replace(f"$({KEY_ENV})", KEY)  # as the kubelet expands it
        for a in triton_args(target(tier, build))
        if a.startswith(kept)
    ]
    assert any(a.startswith("--http-restricted-api=") for a in args)
    repositories = [a for a in args if a.startswith("--model-repository=")]
    assert repositories[0] == f"--model-repository={build}"
    server = local_triton.start(build, extra_args=args[1:])
    server.wait_ready(90)
    return server


def infer(server: local_triton.TritonServer) -> float:
    body = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}'
    request = urllib.request.Request(
        f"{server.http_url}/v2/models/{SERVED}/infer", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return float(json.loads(response.read())["outputs"][0]["data"][0])


def counters(server: local_triton.TritonServer) -> dict[str, float]:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    return {model: parse_triton_metrics(text, model).success for model in (SERVED, "fp32", "int8")}


def intent(tier: str, build: Path, key: str = KEY) -> RoutingIntent:
    serving = Placement(target(tier, build), Route(SERVED, tier, IO), HotLayout(("fp32", "int8")), key)
    return RoutingIntent.of(SERVED, serving, "fp32" if tier == "int8" else "int8")


def test_served_name_routes_live_without_a_failed_request_and_after_a_restart(tmp_path: Path) -> None:
    build = tmp_path / "build"
    for tier, factor in FACTORS.items():
        write_echo_repository(build, tier, delay_ms=2, factor=factor)
    volume = tmp_path / "routing"
    write_routing(volume, "fp32", build)

    server = start(build, volume, "fp32")
    try:
        assert infer(server) == FACTORS["fp32"], "a pod comes up routed to its Deployment's tier"
        router = Router(kube=None, port=server.http_port)  # type: ignore[arg-type]  # no cluster: pods given
        pod = PodRoute("ranker-cpu-0", "127.0.0.1", ready=True)

        # a client without the routing key cannot re-route (nor load or unload): Triton refuses it
        async def guess() -> Any:
            intruder = Router(kube=None, port=server.http_port)  # type: ignore[arg-type]
            try:
                return await intruder.route_pods(intent("int8", build, key="guess"), [pod])
            finally:
                await intruder.close()

        refused = asyncio.run(guess())
        assert refused.routed == 0 and "ranker-cpu-0" in refused.failed, refused
        assert "HTTP 403" in refused.failed["ranker-cpu-0"] or "restricted" in refused.failed["ranker-cpu-0"], refused
        assert infer(server) == FACTORS["fp32"]
        switch: dict[str, Any] = {}

        async def scenario() -> list[Any]:
            async def endpoints() -> list[str]:
                return [server.http_url]

            load = asyncio.create_task(run_load(Schedule([0], [60], 12), endpoints, model=SERVED, interval_seconds=12))
            await asyncio.sleep(4)
            switch["before"] = counters(server)
            started = time.perf_counter()
            switch["report"] = await router.route_pods(intent("int8", build), [pod])
            switch["seconds"] = time.perf_counter() - started
            switch["at_switch"] = counters(server)
            _, intervals = await load
            switch["again"] = await router.route_pods(intent("int8", build), [pod])
            await router.close()
            return intervals

        intervals = asyncio.run(scenario())
        assert infer(server) == FACTORS["int8"]
        after = counters(server)
        errors = sum(i.errors for i in intervals)
        served = sum(len(i.latencies_ms) for i in intervals)
        report = switch["report"]
        print(
            f"switch: {switch['seconds'] * 1000:.1f} ms; {served} requests, {errors} errors; "
            f"counters before {switch['before']}, at switch {switch['at_switch']}, after {after}"
        )
        assert (report.ready, report.routed, report.rerouted, report.failed) == (1, 1, ["ranker-cpu-0"], {})
        assert switch["again"].rerouted == [] and switch["again"].routed == 1, "a routed pod is left alone"
        assert errors == 0 and served > 400
        # the served name counts every request once; its tiers count the same requests again
        assert after[SERVED] == after["fp32"] + after["int8"] == served + 3  # and 3 single requests
        assert after["fp32"] - switch["at_switch"]["fp32"] <= 8, "fp32 stops taking requests at the switch"
        assert after["int8"] > switch["at_switch"]["int8"] + 200
        # the tiers stayed loaded: the routing model was swapped, nothing else (model.py is precompiled as the
        # builder precompiles it, so Triton never sees a tier modified)
        assert server.log().count('"loading: int8:1"') == 1, server.log()[-3000:]
    finally:
        server.stop()

    # a restarted pod reads its Deployment's route from the ConfigMap, which the planner updated with the switch
    write_routing(volume, "int8", build)
    server = start(build, volume, "int8")
    try:
        assert infer(server) == FACTORS["int8"]
    finally:
        server.stop()

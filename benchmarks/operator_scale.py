"""How the operator scales, next to what Kubernetes itself takes for the same pods.

For each count N (default 200 and 1000), on an isolated local cluster with a kwok pool big enough for the pods:

1. N plain Deployments, each the very Deployment the operator would create for one ModelDeployment (one
   replica on the kwok pool), are created; the time until every one is Available is the baseline;
2. an operator (`fulcrum run`, leader election on, as installed) starts, N ModelDeployments that share one
   prebuilt build record are created, and the time until every one is Ready is measured, with the API requests
   the operator sent on the way;
3. the operator then runs on in a steady state for ``--steady-seconds``: its reconciles and its writes per
   object per minute (goal: writes 0, reconciles at most one per tick), and its resident memory.

The ratio ``secondsToAllReady / plainSecondsToAvailable`` is the operator's own overhead (goal: at most 1.5), both
counted from the first create; ``ratioToPlainAfterCreate`` counts both from the last create, leaving out how long
the API server takes to admit the objects themselves.
The machine may be shared: run it more than once and compare ratios, not seconds.

    python benchmarks/operator_scale.py --counts 200,1000 --steady-seconds 120
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT)]

from fulcrum.api import BuildManifest, parse_model_deployment  # noqa: E402
from fulcrum.dev import build as dev_build  # noqa: E402
from fulcrum.dev import cluster as dev_cluster  # noqa: E402
from fulcrum.dev import network  # noqa: E402
from fulcrum.dev.config import ClusterConfig, Pool, Ports  # noqa: E402
from fulcrum.dev.paths import DevHome  # noqa: E402
from fulcrum.reconcile.builds import BuildResult  # noqa: E402
from fulcrum.reconcile.plan import pool_builds  # noqa: E402
from fulcrum.resources.build import build_record  # noqa: E402
from fulcrum.resources.serving import ServingTarget, server_deployment  # noqa: E402
from fulcrum.resources.settings import MODELS_MOUNT, OperatorSettings, RepositoryStorage  # noqa: E402

POOL = "bench"
PODS_PER_NODE = 110
OBJECT_WRITES = ("POST", "PATCH", "DELETE")  # PUT is only the Lease's renewal: reported apart
SETTINGS = OperatorSettings(
    build_namespace="fulcrum-bench-builds", storage=RepositoryStorage("hostPath", "/var/lib/fulcrum")
)


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "fulcrum.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"source": {"uri": "s3://models/ctr-ranker/model.onnx", "format": "onnx"}},
            "tiers": [{"name": "fp32", "precision": "fp32"}, {"name": "fp16", "precision": "fp16"}],
            "slo": {"latencyMs": 25},
            "budget": {"maxCostPerHour": "10"},
            "nodePools": [
                {"name": POOL, "nodeSelector": {"fulcrum.dev/pool": POOL}, "gpusPerReplica": 0, "costPerHour": "0.85"}
            ],
            "scaling": {"minReplicas": 1, "maxReplicas": 2},
        },
    }


def prebuilt_record(namespace: str) -> tuple[dict[str, Any], BuildResult]:
    """The build record every object of ``namespace`` shares: the example's profiles, as a finished build would
    report them (the source is not pinned by a digest, so the key is the namespace's own)."""
    spec = parse_model_deployment(manifest("x")).spec
    [build, *_] = pool_builds(spec, SETTINGS, {}, {}, namespace)
    pool, key = build.pool, build.key
    profiles = json.loads((ROOT / "examples" / "profiles" / "ctr-ranker.json").read_text())
    by_tier = {t["name"]: [dict(p, nodePool=POOL) for p in t["profiles"]] for t in profiles["tiers"]}
    tiers = [
        {
            "name": t.name,
            "precision": t.precision,
            "backend": t.backend,
            "state": "Ready",
            "reason": "",
            "message": "",
            "accuracy": {"MeanAbsError": 0.001},
            "profiles": by_tier.get(t.name, by_tier["fp32"])[:1],
            "path": t.name,
        }
        for t in spec.tiers
    ]
    result = BuildResult(
        "Succeeded",
        "BuildSucceeded",
        "",
        BuildManifest.model_validate(
            {"model": "ctr-ranker", "source": {"uri": spec.model.source.uri, "sha256": "0" * 64}, "tiers": tiers}
        ),
        f"{MODELS_MOUNT}/{'0' * 64}",
    )
    return build_record(key, pool, result.to_record(), SETTINGS), result


def plain_deployment(name: str, namespace: str, result: BuildResult) -> dict[str, Any]:
    """The Deployment the operator creates for one ModelDeployment, without the owner reference."""
    body = {**manifest(name), "metadata": {"name": name, "namespace": namespace, "uid": "0"}}
    spec = parse_model_deployment(body).spec
    target = ServingTarget("fp32", spec.node_pools[0], result.repository or "", "fp32", 1)
    deployment = copy.deepcopy(server_deployment(body, spec, target, SETTINGS))
    deployment["metadata"].pop("ownerReferences", None)
    return deployment


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_base() -> int:
    for base in range(23000, 32000, 10):
        ports = Ports.from_base(base).all()
        busy = False
        for port in ports:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    busy = True
                    break
        if not busy:
            return base
    raise RuntimeError("no free block of loopback ports")


def scrape(port: int) -> dict[str, float]:
    """The operator's own counters: API requests by verb, reconciles."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("fulcrum_api_requests_total{"):
            verb = line.split('verb="')[1].split('"')[0]
            out[verb] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("fulcrum_reconcile_duration_seconds_count"):
            out["reconciles"] = float(line.rsplit(" ", 1)[1])
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return math.nan


def wait_all(what: str, probe: Any, count: int, timeout: float) -> tuple[float, int]:
    started = time.monotonic()
    done = 0
    while time.monotonic() - started < timeout:
        done = probe()
        if done >= count:
            break
        time.sleep(2)
    print(f"  {what}: {done}/{count} after {time.monotonic() - started:.0f} s", file=sys.stderr)
    return time.monotonic() - started, done


def phase(count: int, api: client.ApiClient, kubeconfig: Path, result: BuildResult, args: argparse.Namespace) -> dict:
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    plain_ns, md_ns = f"plain-{count}", f"models-{count}"
    for ns in (plain_ns, md_ns):
        core.create_namespace({"metadata": {"name": ns}})

    # 1. plain Deployments: what Kubernetes alone takes for the same pods
    started = time.monotonic()
    for i in range(count):
        apps.create_namespaced_deployment(plain_ns, plain_deployment(f"md-{i:04d}", plain_ns, result))
    plain_created = time.monotonic() - started

    def available() -> int:
        items = apps.list_namespaced_deployment(plain_ns).items
        return sum(1 for d in items if (d.status.available_replicas or 0) >= 1)

    plain_seconds, plain_ready = wait_all("plain Deployments Available", available, count, args.timeout)
    plain_seconds = time.monotonic() - started

    # 2. the operator and N ModelDeployments
    metrics_port = free_port()
    log = Path(tempfile.mkstemp(prefix=f"fulcrum-operator-{count}-", suffix=".log")[1])
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fulcrum",
            "run",
            "--namespace",
            md_ns,
            "--build-namespace",
            SETTINGS.build_namespace,
            "--repository",
            "hostpath:///var/lib/fulcrum",
            "--metrics-port",
            str(metrics_port),
            "--liveness",
            f"http://127.0.0.1:{free_port()}/healthz",
            "--tick-seconds",
            str(args.tick_seconds),
            "--leader-elect-resource-name",
            f"bench-{count}",
        ],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(120):
            with contextlib.suppress(OSError):
                before = scrape(metrics_port)
                break
            time.sleep(0.5)
        idle_rss = rss_mib(operator.pid)
        started = time.monotonic()
        for i in range(count):
            custom.create_namespaced_custom_object(
                "fulcrum.dev", "v1alpha1", md_ns, "modeldeployments", manifest(f"md-{i:04d}")
            )
        created = time.monotonic() - started

        def ready() -> int:
            items = custom.list_namespaced_custom_object("fulcrum.dev", "v1alpha1", md_ns, "modeldeployments")["items"]
            return sum(
                1
                for md in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (md.get("status") or {}).get("conditions", [])
                )
            )

        _, md_ready = wait_all("ModelDeployments Ready", ready, count, args.timeout)
        md_seconds = time.monotonic() - started
        at_ready = scrape(metrics_port)
        time.sleep(args.settle_seconds)  # the first ticks after Ready (metrics condition, scale decisions) pass
        steady_from = scrape(metrics_port)
        time.sleep(args.steady_seconds)
        steady_to = scrape(metrics_port)
        rss = rss_mib(operator.pid)
    finally:
        operator.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            operator.wait(60)
        if operator.poll() is None:
            operator.kill()
    minutes = args.steady_seconds / 60.0
    verbs = sorted(set(at_ready) - {"reconciles"})
    requests = sum(at_ready.get(v, 0) - before.get(v, 0) for v in verbs)
    writes = sum(steady_to.get(v, 0) - steady_from.get(v, 0) for v in OBJECT_WRITES)
    for ns in (plain_ns, md_ns):
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(ns)
    return {
        "objects": count,
        "plainAvailable": plain_ready,
        "plainCreateSeconds": round(plain_created, 1),
        "plainSecondsToAvailable": round(plain_seconds, 1),
        "ready": md_ready,
        "createSeconds": round(created, 1),
        "secondsToAllReady": round(md_seconds, 1),
        "ratioToPlain": round(md_seconds / plain_seconds, 2),
        # from the last create: what the operator adds, without the API server's admission of the objects
        # themselves (a ModelDeployment's schema and CEL rules take longer to admit than a Deployment)
        "ratioToPlainAfterCreate": round((md_seconds - created) / max(plain_seconds - plain_created, 1e-9), 2),
        "apiRequestsPerObject": round(requests / count, 2),
        "apiRequestsByVerb": {v: int(at_ready.get(v, 0) - before.get(v, 0)) for v in verbs},
        "steadyReconcilesPerObjectPerMinute": round(
            (steady_to.get("reconciles", 0) - steady_from.get("reconciles", 0)) / count / minutes, 3
        ),
        "steadyWritesPerObjectPerMinute": round(writes / count / minutes, 4),
        "steadyLeaseRenewalsPerMinute": round((steady_to.get("PUT", 0) - steady_from.get("PUT", 0)) / minutes, 1),
        "operatorRssMiB": rss,
        "operatorRssMiBIdle": idle_rss,
        "operatorLog": str(log),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="200,1000", help="comma-separated object counts, run in order")
    parser.add_argument("--steady-seconds", type=float, default=120.0)
    parser.add_argument("--settle-seconds", type=float, default=45.0)
    parser.add_argument("--tick-seconds", type=float, default=15.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c]

    if dev_build.find_bin_dir() is None:
        dev_build.build(dev_build.plan())
    nodes = math.ceil(2 * sum(counts) / (PODS_PER_NODE * 0.9)) + 1
    home = DevHome(Path(tempfile.mkdtemp(prefix="fulcrum-bench-")))
    netns = network.netns_supported()
    cfg = ClusterConfig(
        port_base=free_port_base(),
        pools=(Pool(POOL, nodes, 0),),
        subnet_index=dev_cluster.choose_subnet_index(home, first=150) if netns else 150,
        netns=netns,
    )
    print(f"starting a cluster in {home.root} with {nodes} kwok nodes", file=sys.stderr)
    dev_cluster.up(home, cfg, say=lambda m: print(m, file=sys.stderr), timeout=300, owner_pid=os.getpid())
    try:
        api = config.new_client_from_config(config_file=str(home.kubeconfig))
        crd = yaml.safe_load((ROOT / "crds" / "fulcrum.dev_modeldeployments.yaml").read_text())
        client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
        time.sleep(3)
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": SETTINGS.build_namespace}})
        for count in counts:
            record, result = prebuilt_record(f"models-{count}")  # the namespace phase() puts them in
            core.create_namespaced_config_map(SETTINGS.build_namespace, record)
        reports = []
        for count in counts:
            print(f"== {count} objects", file=sys.stderr)
            report = phase(count, api, home.kubeconfig, result, args)
            reports.append(report)
            print(yaml.safe_dump(report, sort_keys=False), flush=True)
        print(json.dumps(reports))
    finally:
        dev_cluster.down(home, say=lambda _m: None)


if __name__ == "__main__":
    main()

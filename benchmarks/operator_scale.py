"""How the operator scales: N ModelDeployments on kwok GPU pools sharing one prebuilt repository.

Prints time to all-Ready, API requests per object to get there, and writes per object per minute in steady
state (goal: zero). Needs the local control plane (`fulcrum dev up`, started here if not running).

    python benchmarks/operator_scale.py --count 200 --steady-seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT)]

from fulcrum.api import BuildManifest, parse_model_deployment  # noqa: E402
from fulcrum.reconcile.builds import BuildResult  # noqa: E402
from fulcrum.reconcile.plan import pool_builds  # noqa: E402
from fulcrum.resources.build import build_record  # noqa: E402
from fulcrum.resources.settings import MODELS_MOUNT, OperatorSettings, RepositoryStorage  # noqa: E402

WRITE_VERBS = ("POST", "PATCH", "PUT", "DELETE")


def manifest(name: str) -> dict:
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
                {
                    "name": "l4",
                    "nodeSelector": {"fulcrum.dev/pool": "l4"},
                    "gpusPerReplica": 0,
                    "costPerHour": "0.85",
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                }
            ],
            "scaling": {"minReplicas": 1, "maxReplicas": 2},
        },
    }


def prebuilt_record(settings: OperatorSettings, namespace: str) -> dict:
    """The build record every object shares: the example's profiles, as a finished build would report them."""
    spec = parse_model_deployment(manifest("x")).spec
    [build, *_] = pool_builds(spec, settings, {}, {}, namespace)  # the key of the namespace's objects
    pool, key = build.pool, build.key
    profiles = json.loads((ROOT / "examples" / "profiles" / "ctr-ranker.json").read_text())
    by_tier = {t["name"]: [p for p in t["profiles"] if p["nodePool"] == "l4"] for t in profiles["tiers"]}
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
    return build_record(key, pool, result.to_record(), settings)


def operator_requests(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("fulcrum_api_requests_total{"):
            verb = line.split('verb="')[1].split('"')[0]
            out[verb] = float(line.rsplit(" ", 1)[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--metrics-port", type=int, default=19190)
    args = parser.parse_args()

    subprocess.run([sys.executable, "-m", "fulcrum", "dev", "up"], check=True)
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".cache/fulcrum/dev/kubeconfig")
    api = config.new_client_from_config(config_file=kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            kubeconfig,
            "apply",
            "--server-side",
            "-f",
            str(ROOT / "crds" / "fulcrum.dev_modeldeployments.yaml"),
        ],
        check=True,
        capture_output=True,
    )
    namespace, build_ns = f"scale-{int(time.time())}", "fulcrum-scale-builds"
    settings = OperatorSettings(build_namespace=build_ns, storage=RepositoryStorage("hostPath", "/var/lib/fulcrum"))
    for ns in (namespace, build_ns):
        try:
            core.create_namespace({"metadata": {"name": ns}})
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    try:
        core.create_namespaced_config_map(build_ns, prebuilt_record(settings, namespace))
    except client.ApiException as exc:
        if exc.status != 409:
            raise

    log = Path(tempfile.mkstemp(prefix="fulcrum-operator-", suffix=".log")[1])
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fulcrum",
            "run",
            "--build-namespace",
            build_ns,
            "--repository",
            "hostpath:///var/lib/fulcrum",
            "--metrics-port",
            str(args.metrics_port),
            "--liveness",
            "http://127.0.0.1:18080/healthz",
            "--namespace",
            namespace,
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(3)
        before = operator_requests(args.metrics_port)
        started = time.monotonic()
        for i in range(args.count):
            custom.create_namespaced_custom_object(
                "fulcrum.dev", "v1alpha1", namespace, "modeldeployments", manifest(f"md-{i:04d}")
            )
        created = time.monotonic() - started
        ready = 0
        while time.monotonic() - started < args.timeout:
            items = custom.list_namespaced_custom_object("fulcrum.dev", "v1alpha1", namespace, "modeldeployments")[
                "items"
            ]
            ready = sum(
                1
                for md in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (md.get("status") or {}).get("conditions", [])
                )
            )
            if ready == args.count:
                break
            time.sleep(2)
        to_ready = time.monotonic() - started
        at_ready = operator_requests(args.metrics_port)
        time.sleep(args.steady_seconds)
        after = operator_requests(args.metrics_port)
        requests = sum(at_ready.values()) - sum(before.values())
        writes = sum(after.get(v, 0) - at_ready.get(v, 0) for v in WRITE_VERBS)
        report = {
            "objects": args.count,
            "ready": ready,
            "createSeconds": round(created, 1),
            "secondsToAllReady": round(to_ready, 1),
            "apiRequestsPerObject": round(requests / args.count, 2),
            "apiRequestsByVerb": {k: at_ready.get(k, 0) - before.get(k, 0) for k in sorted(at_ready)},
            "steadyWritesPerObjectPerMinute": round(writes / args.count / (args.steady_seconds / 60.0), 4),
        }
        print(yaml.safe_dump(report, sort_keys=False))
    finally:
        operator.terminate()
        operator.wait(30)
        core.delete_namespace(namespace)
        print(f"operator log: {log}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The local quickstart: a real control plane, the operator, the ctr-ranker example and a step load.

Run through `scripts/quickstart` (which installs everything first). Ends with `fulcrum report`: the decision
history as a table and a PNG (its path is printed). Leaves the cluster running; the operator stops at the end.
`fulcrum dev down` stops the cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from fulcrum.api import TierProfiles
from fulcrum.dev import objectstore
from fulcrum.dev import prometheus as dev_prometheus
from fulcrum.dev.cluster import load_config
from fulcrum.dev.paths import DevHome
from fulcrum.policy import ProfileTable

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "fulcrum-quickstart"
MAX_LOAD_RPS = 800.0  # about what the Python load generator sustains beside the cluster on a 2-core machine
console = Console()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sh(*argv: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, text=True, capture_output=capture)


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("kubectl", *args, check=check)


def example(path: Path) -> dict[str, Any]:
    """The example (its files in the cluster's object store) with pools limited to what runs on this machine."""
    manifest: dict[str, Any] = yaml.safe_load(path.read_text())
    spec = manifest["spec"]
    spec["tiers"] = [t for t in spec["tiers"] if t.get("backend") != "tensorrt"]  # no GPU on this machine
    spec["nodePools"] = [p for p in spec["nodePools"] if p["name"] == "local"]
    # the demo is minutes long: load must stay low 30 s (not 5 min) before replicas go
    spec["scaling"] = {**spec.get("scaling", {}), "scaleDownStabilizationSeconds": 30, "tierSwitchCooldownSeconds": 60}
    return manifest


def replica_capacity(md: dict[str, Any]) -> float:
    """What one replica of the active tier serves within the SLO, from the profile the build measured here."""
    status, slo = md["status"], md["spec"]["slo"]
    tiers = [TierProfiles.model_validate(t) for t in status["tiers"] if t["state"] == "Ready" and t.get("profiles")]
    table = ProfileTable.from_tiers(tiers)
    return table.capacity(status["activeTier"], status["activeNodePool"], slo["latencyMs"] * 0.95, slo["percentile"])


def step_trace(capacity: float, path: Path) -> Path:
    """Low, then 1.5x what one replica serves (so the operator must scale up), then low again (so it scales down)."""
    low, high = round(0.3 * min(capacity, MAX_LOAD_RPS)), round(min(1.5 * capacity, MAX_LOAD_RPS))
    path.write_text(f"t_seconds,requests_per_second\n0,{low}\n40,{high}\n130,{low}\n")  # ends at 195 s
    if 1.5 * capacity > MAX_LOAD_RPS:
        console.print(
            f"one replica serves {capacity:.0f} rps here, more than this machine can send; the step peaks at "
            f"{high} rps and may not need a second replica"
        )
    return path


def condition_line(md: dict[str, Any]) -> str:
    status = md.get("status") or {}
    parts = [f"{c['type']}={c['status']}({c.get('reason', '')})" for c in status.get("conditions", [])[:5]]
    return " ".join(parts) or "waiting for the operator"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--trace", type=Path, default=None, help="Load trace (default: a step sized to the measured capacity)."
    )
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    started = time.monotonic()

    console.rule("1. local control plane and object store (fulcrum dev up)")
    sh(sys.executable, "-m", "fulcrum", "dev", "up", capture=False)
    home = Path(os.environ.get("FULCRUM_DEV_HOME", Path.home() / ".cache" / "fulcrum" / "dev"))
    os.environ["KUBECONFIG"] = str(home / "kubeconfig")
    store = objectstore.load(DevHome(home))
    if store is None:
        raise SystemExit(f"`fulcrum dev up` left no object store in {home}")

    config = load_config(DevHome(home))
    prometheus_url = dev_prometheus.url(config) if config is not None else None

    console.rule("2. CRD and the operator")
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds" / "fulcrum.dev_modeldeployments.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/modeldeployments.fulcrum.dev", "--timeout=60s")
    log_path = home / "logs" / "operator.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_port = free_port()
    # the cluster's Prometheus scrapes this operator's /metrics (and the Triton pods): `fulcrum report` reads it
    dev_prometheus.register_host_target(DevHome(home), "quickstart-operator", f"127.0.0.1:{metrics_port}")
    # the build pods' keys in the build namespace, the serving pods' read-only keys where the example runs
    kubectl("create", "namespace", "fulcrum-system", check=False)
    kubectl("create", "namespace", NAMESPACE, check=False)
    for who, name, namespace in (
        ("writer", objectstore.BUILD_SECRET, "fulcrum-system"),
        ("reader", objectstore.SERVING_SECRET, NAMESPACE),
    ):
        subprocess.run(
            ["kubectl", "apply", "-f", "-"],
            input=json.dumps(objectstore.secret(store, who, name, namespace)),
            text=True,
            check=True,
            capture_output=True,
        )
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fulcrum",
            "run",
            "--build-target",
            "local",
            "--build-namespace",
            "fulcrum-system",
            *objectstore.operator_flags(store),
            "--tick-seconds",
            "5",
            "--metrics-port",
            str(metrics_port),
            "--metrics-address",
            "127.0.0.1",
            "--liveness",
            "http://127.0.0.1:18080/healthz",
        ],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **store.env("writer")},  # garbage collection of the store
    )
    console.print(f"operator pid {operator.pid}, log {log_path}")
    try:
        console.rule("3. the ctr-ranker example")
        manifest = example(ROOT / "examples" / "ctr-ranker" / "modeldeployment.yaml")
        subprocess.run(
            ["kubectl", "apply", "-n", NAMESPACE, "-f", "-"],
            input=yaml.safe_dump(manifest),
            text=True,
            check=True,
            capture_output=True,
        )
        name = manifest["metadata"]["name"]
        with console.status("building tiers and starting Triton...") as status:
            while True:
                md = json.loads(kubectl("get", "md", name, "-n", NAMESPACE, "-o", "json").stdout)
                status.update(condition_line(md))
                ready = any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (md.get("status") or {}).get("conditions", [])
                )
                stalled = any(
                    c["type"] == "Stalled" and c["status"] == "True"
                    for c in (md.get("status") or {}).get("conditions", [])
                )
                if ready or stalled:
                    break
                if time.monotonic() - started > args.timeout:
                    raise SystemExit(f"timed out; see {log_path}")
                time.sleep(2)
        console.print(kubectl("get", "md", "-n", NAMESPACE).stdout)
        if stalled:
            raise SystemExit(f"{name} is Stalled: {condition_line(md)}")
        table = Table(title="tiers built on this machine")
        for column in ("tier", "state", "reason", "accuracy"):
            table.add_column(column)
        for tier in md["status"]["tiers"]:
            table.add_row(tier["name"], tier["state"], tier.get("reason", ""), json.dumps(tier.get("accuracy", {})))
        console.print(table)

        console.rule("4. a step load (fulcrum load)")
        trace = args.trace
        if trace is None:
            capacity = replica_capacity(md)
            trace = step_trace(capacity, Path(tempfile.mkdtemp()) / "step.csv")
            console.print(
                f"one {md['status']['activeTier']} replica serves {capacity:.0f} rps within the SLO (measured by "
                f"the build); the trace: {trace.read_text().strip().splitlines()[1:]}"
            )
        load = subprocess.run(
            [
                sys.executable,
                "-m",
                "fulcrum",
                "load",
                "--service",
                f"{NAMESPACE}/{name}",
                "--trace",
                str(trace),
                "--slo-ms",
                str(manifest["spec"]["slo"]["latencyMs"]),
                "--interval",
                "20",
                "--json",
            ],
            text=True,
            capture_output=True,
            check=True,
        )
        report = json.loads(load.stdout)

        console.rule("5. what happened")
        events = json.loads(
            kubectl(
                "get", "events", "-n", NAMESPACE, "-o", "json", f"--field-selector=involvedObject.name={name}"
            ).stdout
        )["items"]
        decisions = Table(title="decisions and events")
        for column in ("time", "reason", "message"):
            decisions.add_column(column)
        for event in sorted(events, key=lambda e: e.get("lastTimestamp") or ""):
            decisions.add_row(event.get("lastTimestamp", ""), event["reason"], event["message"][:110])
        console.print(decisions)
        intervals = Table(title="load, per 20 s")
        for column in ("t", "offeredRps", "achievedRps", "p50Ms", "p99Ms", "sloAttainment"):
            intervals.add_column(column, justify="right")
        for row in report["intervals"]:
            intervals.add_row(
                *(str(row[c]) for c in ("t", "offeredRps", "achievedRps", "p50Ms", "p99Ms", "sloAttainment"))
            )
        console.print(intervals)
        md = json.loads(kubectl("get", "md", name, "-n", NAMESPACE, "-o", "json").stdout)
        console.print(kubectl("get", "md", "-n", NAMESPACE).stdout)
        console.print(
            f"SLO attainment over the run: {report['summary']['sloAttainment']}; "
            f"p99 {report['summary']['p99Ms']} ms (the operator's last reading from Triton: "
            f"{(md['status'].get('observed') or {}).get('latencyMs')} ms); "
            f"cost now {md['status'].get('costPerHour')}/h; "
            f"took {time.monotonic() - started:.0f} s"
        )
        console.rule("6. the decision history (fulcrum report)")
        picture = home / "reports" / f"{name}.png"
        picture.parent.mkdir(parents=True, exist_ok=True)
        argv = ["fulcrum", "report", f"{NAMESPACE}/{name}", "--out", str(picture)]
        argv += ["--prometheus", prometheus_url] if prometheus_url else []
        drawn = sh(sys.executable, "-m", *argv, check=False)
        console.print(drawn.stdout, drawn.stderr)
        if drawn.returncode == 0:
            console.print(f"[bold]the decision history, drawn: {picture}[/]")
        console.print(
            "The cluster keeps running: `kubectl get md -A` (KUBECONFIG=~/.cache/fulcrum/dev/kubeconfig); "
            f"Prometheus at {prometheus_url}; `fulcrum dev down` stops it."
        )
    finally:
        os.killpg(operator.pid, signal.SIGTERM)
        operator.wait(30)
        dev_prometheus.unregister_host_target(DevHome(home), "quickstart-operator")


if __name__ == "__main__":
    main()

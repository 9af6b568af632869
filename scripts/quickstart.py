"""The local quickstart: a real cluster, the chart installed as a user installs it, ctr-ranker and a step load.

Run through `scripts/quickstart` (which installs everything first and puts the project's kubectl and helm first
on PATH). Leaves the cluster and the release running; `fulcrum dev down` stops everything.

1. `fulcrum dev up`: the control plane, kwok GPU pools, local-0 (a real kubelet on containerd) and the object
   store (SeaweedFS, holding the example's model and validation files);
2. `helm install` charts/fulcrum with the images built by `fulcrum dev build` and the cluster's object store
   (`fulcrum dev chart-values`): the operator runs in its pod as the chart's ServiceAccount;
3. the ctr-ranker example: a build Job in the builder image (fetched from the store, tiers, accuracy, a profile
   measured under each replica's CPU limit, published to the store), then tritonserver-cpu pods, a tenth of a CPU each,
   that download it read-only;
4. a step load sized from the profile the build measured: beyond what one replica serves, so the operator must
   scale up (and, where a faster tier fits the budget better, switch), then low again;
5. what happened (events, load per interval), and 6. `fulcrum report`: the decision history as a table and a PNG
   (its path is printed), read from the cluster's Prometheus, which scrapes the Triton pods and the operator pod.
"""

from __future__ import annotations

import argparse
import json
import os
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
from fulcrum.dev.paths import DevHome, resolve_home
from fulcrum.policy import ProfileTable
from fulcrum.resources import labels

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "fulcrum-quickstart"
RELEASE = "fulcrum"
RELEASE_NAMESPACE = "fulcrum-system"
MAX_LOAD_RPS = 700.0  # about what the Python load generator sustains beside the cluster on a 2-core machine
# A tenth of a CPU per Triton replica (the build Job profiles under the same limit). Triton answers ctr-ranker's
# batched requests for about 0.3 ms of CPU each, so with a whole CPU one replica serves more than the load
# generator can send beside the cluster on two cores, and a step load shows no scaling. Measured on this machine
# (tritonserver in a cgroup with that CFS quota, one onnxruntime thread, p99 within the 25 ms SLO): 100m about
# 150 rps, 150m about 250, 200m 450, 500m over 600. The request equals the limit: the node's two cores hold the
# replicas the step needs, a rolling switch's old and new ones included.
REPLICA_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "100m", "memory": "1Gi"}}
console = Console()
if not console.is_terminal:  # piped into a log: lines as wide as `fulcrum report`'s, not folded at 80 columns
    console = Console(width=180)


def sh(*argv: str, check: bool = True, capture: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, text=True, capture_output=capture, **kwargs)


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("kubectl", *args, check=check)


def say(message: str, started: float) -> None:
    console.print(f"[dim]{time.monotonic() - started:6.0f}s[/dim] {message}")


def example(path: Path) -> dict[str, Any]:
    """The example (its files in the cluster's object store, as it says), the local pool only, a tenth of a CPU
    per replica."""
    manifest: dict[str, Any] = yaml.safe_load(path.read_text())
    spec = manifest["spec"]
    spec["tiers"] = [t for t in spec["tiers"] if t.get("backend") != "tensorrt"]  # no GPU on this machine
    # the local pool only; its replicas, with a tenth of a CPU, load the example's four models in about 25 s
    spec["nodePools"] = [{**p, "replicaStartupSeconds": 30} for p in spec["nodePools"] if p["name"] == "local"]
    spec["serving"] = {**spec.get("serving", {}), "resources": REPLICA_RESOURCES}
    # the demo is minutes long: load must stay low 30 s (not 5 min) before replicas go
    spec["scaling"] = {
        **spec.get("scaling", {}),
        "maxReplicas": 4,
        "scaleDownStabilizationSeconds": 30,
        "tierSwitchCooldownSeconds": 60,
    }
    return manifest


def tier_capacity(md: dict[str, Any], tier: str) -> float:
    """What one replica of ``tier`` on the active pool serves within the SLO, from the profile the build measured
    here (0 when it measured no rate within the SLO)."""
    status, slo = md["status"], md["spec"]["slo"]
    tiers = [TierProfiles.model_validate(t) for t in status["tiers"] if t["state"] == "Ready" and t.get("profiles")]
    table = ProfileTable.from_tiers(tiers)
    return table.capacity(tier, status["activeNodePool"], slo["latencyMs"] * 0.95, slo["percentile"])


def replica_capacity(md: dict[str, Any]) -> float:
    """What one replica of the active tier serves within the SLO."""
    return tier_capacity(md, md["status"]["activeTier"])


def remeasure(md: dict[str, Any], started: float, timeout: float) -> dict[str, Any]:
    """Build (and so measure) once more when the profile shows no rate at which one replica meets the SLO.

    On a machine this size that means it was busy while the build measured (every latency, even at the lowest
    rate, is above the SLO), and a step load sized from such a profile would be a load of 0. The rebuild
    annotation is how a user asks for the same (see docs/operator.md); without a capacity after it, we stop."""
    name, status = md["metadata"]["name"], md["status"]
    slo = md["spec"]["slo"]
    console.print(
        f"[yellow]the build measured no rate at which one {status['activeTier']} replica keeps p{slo['percentile']} "
        f"within {slo['latencyMs']} ms (load average while it ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
        "cores): the machine was busy. Building and measuring once more.[/yellow]"
    )
    kubectl(
        "annotate", "md", name, "-n", NAMESPACE, "--overwrite", f"fulcrum.dev/rebuild=quickstart-{int(time.time())}"
    )
    md = wait_serving(name, started, timeout, not_build=status["build"]["key"])
    if replica_capacity(md) <= 0:
        raise SystemExit(
            "the second measurement shows no capacity within the SLO either: run the quickstart on a quieter machine, "
            "or pass --trace with a load of your own"
        )
    return md


def step_trace(capacity: float, path: Path) -> Path:
    """Low, then well beyond one replica (so the operator must scale up), then low again (so it scales down)."""
    low, high = round(0.3 * min(capacity, MAX_LOAD_RPS)), round(min(2.5 * capacity, MAX_LOAD_RPS))
    path.write_text(f"t_seconds,requests_per_second\n0,{low}\n40,{high}\n160,{low}\n")  # ends at 225 s
    if high < 1.3 * capacity:
        console.print(
            f"one replica serves {capacity:.0f} rps here, about what this machine can send; the step peaks at "
            f"{high} rps and may not need a second replica"
        )
    return path


def conditions_line(md: dict[str, Any]) -> str:
    status = md.get("status") or {}
    wanted = ("Ready", "RepositoryReady", "Available")
    parts = [
        f"{c['type']}={c['status']}({c.get('reason', '')})" for c in status.get("conditions", []) if c["type"] in wanted
    ]
    return " ".join(parts) or "waiting for the operator"


def build_step(pod: dict[str, Any]) -> str:
    """One build pod as the kubelet reports it: the step running now (the init containers fetch, build, measure,
    then publish beside the Triton sidecar) and its state (pulling the builder image, running, done)."""
    status = pod.get("status") or {}
    # Triton runs beside the steps as a native sidecar (an init container that restarts Always): never "the step"
    sidecars = {c["name"] for c in pod.get("spec", {}).get("initContainers", []) if c.get("restartPolicy") == "Always"}
    steps = [
        s
        for s in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        if s["name"] not in sidecars
    ]
    name = pod["metadata"]["name"]
    current = next((s for s in steps if "terminated" not in s.get("state", {})), steps[-1] if steps else None)
    if current is None:
        return f"{name}: {status.get('phase', 'Pending')}"
    state = next(iter(current.get("state") or {}), "waiting")
    reason = (current["state"].get(state) or {}).get("reason", "")
    return f"{name}: step {current['name']} {state}{f' ({reason})' if reason else ''}"


def build_line() -> str:
    """The build Job's pods, one step each."""
    selector = f"{labels.COMPONENT}={labels.COMPONENT_BUILD}"
    pods = json.loads(kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-l", selector, "-o", "json").stdout)["items"]
    return "; ".join(build_step(pod) for pod in pods) or "no build pod yet"


def install(home: Path, started: float) -> None:
    values = sh(sys.executable, "-m", "fulcrum", "dev", "chart-values", "--home", str(home)).stdout
    values_file = home / "chart-values.yaml"
    values_file.write_text(values + yaml.safe_dump({"operator": {"tickSeconds": 5}}))
    kubectl("create", "namespace", RELEASE_NAMESPACE, check=False)
    action = (
        "upgrade" if sh("helm", "status", RELEASE, "-n", RELEASE_NAMESPACE, check=False).returncode == 0 else "install"
    )
    sh("helm", action, RELEASE, str(ROOT / "charts" / "fulcrum"), "-n", RELEASE_NAMESPACE, "-f", str(values_file))
    say(f"helm {action} {RELEASE} charts/fulcrum -n {RELEASE_NAMESPACE} -f {values_file}", started)
    deadline = time.monotonic() + 300
    while True:
        result = kubectl(
            "wait", "pod", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/component=operator",
            "--for=condition=Ready", "--timeout=10s", check=False,
        )  # fmt: skip
        if result.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise SystemExit(
                f"the operator pod is not Ready:\n{kubectl('get', 'pods', '-n', RELEASE_NAMESPACE).stdout}"
            )
        say("waiting for the operator pod (pulling its image, starting)", started)
    say("the operator runs in its pod: kubectl logs -n fulcrum-system deploy/fulcrum", started)


def wait_serving(name: str, started: float, timeout: float, not_build: str | None = None) -> dict[str, Any]:
    """The ModelDeployment once Ready (with a build other than ``not_build``, when given)."""
    last, printed = "", 0.0
    while True:
        md: dict[str, Any] = json.loads(kubectl("get", "md", name, "-n", NAMESPACE, "-o", "json").stdout)
        status = md.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        built = (status.get("build") or {}).get("key")
        if conditions.get("Ready", {}).get("status") == "True" and (not_build is None or built != not_build):
            return md
        if conditions.get("Stalled", {}).get("status") == "True":
            raise SystemExit(f"{name} is Stalled: {conditions['Stalled'].get('message')}")
        line = f"{conditions_line(md)} | build: {build_line()}"
        if line != last or time.monotonic() - printed >= 30:  # what changed, and a line every 30 s regardless
            say(line, started)
            last, printed = line, time.monotonic()
        if time.monotonic() - started > timeout:
            raise SystemExit("timed out; see `kubectl logs -n fulcrum-system deploy/fulcrum`")
        time.sleep(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--trace", type=Path, default=None, help="Load trace (default: a step sized to the measured capacity)."
    )
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    started = time.monotonic()

    console.rule("1. local cluster (fulcrum dev up)")
    sh(sys.executable, "-m", "fulcrum", "dev", "up", capture=False)
    home = resolve_home()
    os.environ["KUBECONFIG"] = str(home / "kubeconfig")
    say("cluster ready", started)

    console.rule("2. the chart (helm install, the images built from images/)")
    install(home, started)

    console.rule("3. the ctr-ranker example")
    kubectl("create", "namespace", NAMESPACE, check=False)
    store = objectstore.load(DevHome(home))
    if store is None:
        raise SystemExit(f"`fulcrum dev up` left no object store in {home}")
    # the serving pods' read-only keys, as a platform's secret sync would put them in a namespace that serves
    reader = objectstore.secret(store, "reader", objectstore.SERVING_SECRET, NAMESPACE)
    sh("kubectl", "apply", "-f", "-", input=json.dumps(reader))
    manifest = example(ROOT / "examples" / "ctr-ranker" / "modeldeployment.yaml")
    sh("kubectl", "apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(manifest))
    name = manifest["metadata"]["name"]
    md = wait_serving(name, started, args.timeout)
    console.print(kubectl("get", "md", "-n", NAMESPACE).stdout)
    table = Table(title="tiers built on this machine (a tenth of a CPU per replica)")
    for column in ("tier", "state", "reason", "accuracy", "one replica serves"):
        table.add_column(column)
    for tier in md["status"]["tiers"]:
        served = tier_capacity(md, tier["name"]) if tier["state"] == "Ready" else None
        table.add_row(
            tier["name"], tier["state"], tier.get("reason", ""), json.dumps(tier.get("accuracy", {})),
            "" if served is None else f"{served:.0f} rps",
        )  # fmt: skip
    console.print(table)

    console.rule("4. a step load (fulcrum load)")
    trace = args.trace
    if trace is None:
        capacity = replica_capacity(md)
        if capacity <= 0:
            md = remeasure(md, started, args.timeout)
            capacity = replica_capacity(md)
        trace = step_trace(capacity, Path(tempfile.mkdtemp()) / "step.csv")
        console.print(
            f"one {md['status']['activeTier']} replica serves {capacity:.0f} rps within the SLO (measured by "
            f"the build under its CPU limit); the trace: {trace.read_text().strip().splitlines()[1:]}"
        )
    load = subprocess.run(
        [
            sys.executable, "-m", "fulcrum", "load", "--service", f"{NAMESPACE}/{name}", "--trace", str(trace),
            "--slo-ms", str(manifest["spec"]["slo"]["latencyMs"]), "--interval", "20", "--json",
        ],
        text=True,
        capture_output=True,
        check=True,
    )  # fmt: skip
    report = json.loads(load.stdout)

    console.rule("5. what happened")
    events = json.loads(
        kubectl("get", "events", "-n", NAMESPACE, "-o", "json", f"--field-selector=involvedObject.name={name}").stdout
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
        intervals.add_row(*(str(row[c]) for c in ("t", "offeredRps", "achievedRps", "p50Ms", "p99Ms", "sloAttainment")))
    console.print(intervals)
    md = json.loads(kubectl("get", "md", name, "-n", NAMESPACE, "-o", "json").stdout)
    console.print(kubectl("get", "md", "-n", NAMESPACE).stdout)
    scale_ups = [e for e in events if e["reason"] in ("ScaleUp", "SwitchTier")]
    console.print(
        f"SLO attainment over the run: {report['summary']['sloAttainment']}; "
        f"p99 {report['summary']['p99Ms']} ms (the operator's last reading from Triton: "
        f"{(md['status'].get('observed') or {}).get('latencyMs')} ms); "
        f"{len(scale_ups)} scale-up/switch decision(s); cost now {md['status'].get('costPerHour')}/h; "
        f"took {time.monotonic() - started:.0f} s"
    )

    console.rule("6. the decision history (fulcrum report)")
    config = load_config(DevHome(home))
    prometheus_url = dev_prometheus.url(config) if config is not None else None
    picture = home / "reports" / f"{name}.png"
    picture.parent.mkdir(parents=True, exist_ok=True)
    argv = ["fulcrum", "report", f"{NAMESPACE}/{name}", "--out", str(picture)]
    argv += ["--prometheus", prometheus_url] if prometheus_url else []
    drawn = sh(sys.executable, "-m", *argv, check=False)
    console.out(drawn.stdout + drawn.stderr, highlight=False, end="")  # already laid out by `fulcrum report`
    if drawn.returncode == 0:
        console.print(f"[bold]the decision history, drawn: {picture}[/]")
    console.print(
        f"The cluster and the release keep running: `kubectl get md -A` (KUBECONFIG={home / 'kubeconfig'}); "
        f"Prometheus at {prometheus_url}; `fulcrum dev down` stops everything."
    )


if __name__ == "__main__":
    main()

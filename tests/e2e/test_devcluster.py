"""The local cluster works like a cluster: kwok GPU pools schedule, local-0 (a real kubelet) runs pods from images."""

from __future__ import annotations

import functools
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.support import polling

wait_for = functools.partial(polling.wait_for, every=0.5)

pytestmark = pytest.mark.e2e

LOCAL = {"fulcrum.dev/pool": "local"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
Obj = dict[str, Any]


def pods_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/pods" + (f"/{name}" if name else "")


def pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pod_when(cluster: Cluster, ns: str, name: str, check: Callable[[Obj], bool]) -> Callable[[], Obj | None]:
    def probe() -> Obj | None:
        pod = cluster.rest.get(pods_path(ns, name))
        return pod if check(pod) else None

    return probe


def test_gpu_deployment_gets_all_replicas_ready_on_kwok_nodes(cluster: Cluster, namespace: str) -> None:
    labels = {"app": "gpu-infer"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gpu-infer"},
        "spec": {
            "replicas": 6,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"fulcrum.dev/pool": "l4"},
                    "tolerations": [GPU_TOLERATION],
                    "containers": [
                        {
                            "name": "triton",
                            "image": "nvcr.io/nvidia/tritonserver:24.08-py3",
                            "resources": {"limits": {"nvidia.com/gpu": "2"}},
                        }
                    ],
                },
            },
        },
    }
    cluster.rest.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment)

    def all_ready() -> bool:
        dep = cluster.rest.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/gpu-infer")
        return bool(dep.get("status", {}).get("readyReplicas") == 6)

    wait_for("6 ready replicas", all_ready)
    pods = cluster.rest.get(pods_path(namespace), labelSelector="app=gpu-infer")["items"]
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert all(n.startswith("kwok-l4-") for n in nodes), nodes
    # 4 nodes x 4 GPUs and 2 GPUs per pod: the scheduler had to use at least 3 nodes
    assert len(nodes) >= 3
    assert all(p["status"].get("podIP") for p in pods)


def test_gpu_pod_beyond_node_capacity_is_unschedulable(cluster: Cluster, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "too-big"},
        "spec": {
            "nodeSelector": {"fulcrum.dev/pool": "a100"},
            "tolerations": [GPU_TOLERATION],
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "9"}}}],
        },
    }
    cluster.rest.create(pods_path(namespace), pod)

    def unschedulable_message() -> str | None:
        conditions = cluster.rest.get(pods_path(namespace, "too-big")).get("status", {}).get("conditions") or []
        for c in conditions:
            if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable":
                return str(c.get("message", ""))
        return None

    assert "nvidia.com/gpu" in wait_for("the scheduler to report the pod unschedulable", unschedulable_message)


def test_job_on_local_node_runs_and_reports_its_termination_message(cluster: Cluster, namespace: str) -> None:
    image = cluster.images["fulcrum"].ref
    cluster.rest.create(
        f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "greeting"}, "data": {"word": "hello"}}
    )
    script = (
        'echo "working in $PWD"; '
        'printf \'{"greeting": "%s", "pod": "%s", "data": "%s"}\' "$WORD" "$POD_NAME" "$(cat /data/input)" '
        "> /dev/termination-log"
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "builder"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": LOCAL,
                    "initContainers": [
                        {
                            "name": "prepare",
                            "image": image,
                            "command": ["sh", "-c", "printf from-init > /data/input"],
                            "volumeMounts": [{"name": "scratch", "mountPath": "/data"}],
                        }
                    ],
                    "containers": [
                        {
                            "name": "build",
                            "image": image,
                            "command": ["sh", "-c", script],
                            "env": [
                                {"name": "WORD", "valueFrom": {"configMapKeyRef": {"name": "greeting", "key": "word"}}},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            ],
                            "volumeMounts": [{"name": "scratch", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            },
        },
    }
    cluster.rest.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", job)

    def succeeded() -> bool:
        status = cluster.rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/builder").get("status", {})
        assert not status.get("failed"), f"job failed: {status}"
        return bool(status.get("succeeded"))

    wait_for("the job to succeed", succeeded)
    pod = cluster.rest.get(pods_path(namespace), labelSelector="job-name=builder")["items"][0]
    assert pod["spec"]["nodeName"] == "local-0"
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    expected = {"greeting": "hello", "pod": pod["metadata"]["name"], "data": "from-init"}
    assert json.loads(terminated["message"]) == expected
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    logs = cluster.kubectl("logs", "-n", namespace, pod["metadata"]["name"], "-c", "build").stdout
    assert "working in" in logs


def test_failing_container_reports_exit_code_and_log_fallback(cluster: Cluster, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fails"},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": LOCAL,
            "containers": [
                {
                    "name": "c",
                    "image": cluster.images["fulcrum"].ref,
                    "command": ["sh", "-c", "echo boom; exit 3"],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        },
    }
    cluster.rest.create(pods_path(namespace), pod)
    failed = wait_for(
        "the pod to fail", pod_when(cluster, namespace, "fails", lambda p: p["status"].get("phase") == "Failed")
    )
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["message"].strip() == "boom"


SERVER = """
import http.server, os, pathlib, time
gate = pathlib.Path(os.environ["GATE"])
while not gate.exists():
    time.sleep(0.1)
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def _running(pod: Obj) -> bool:
    statuses = pod["status"].get("containerStatuses") or []
    return bool(statuses and "running" in statuses[0]["state"] and pod["status"].get("podIP"))


def test_readiness_probe_gates_ready_until_the_server_answers(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    gate_dir = tmp_path / "gate"
    gate_dir.mkdir()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "nodeSelector": LOCAL,
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "web",
                    "image": cluster.images["fulcrum"].ref,
                    "command": ["python", "-c", SERVER],
                    "env": [{"name": "GATE", "value": "/gate/open"}],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                    "volumeMounts": [{"name": "gate", "mountPath": "/gate"}],
                }
            ],
            "volumes": [{"name": "gate", "hostPath": {"path": str(gate_dir), "type": "Directory"}}],
        },
    }
    cluster.rest.create(pods_path(namespace), pod)
    wait_for("the container to run", pod_when(cluster, namespace, "web", _running))
    # while the gate is closed the server cannot answer, so the pod cannot be Ready, whatever the timing
    for _ in range(4):
        time.sleep(1)
        assert not pod_ready(cluster.rest.get(pods_path(namespace, "web"))), "Ready before the server answered"
    (gate_dir / "open").write_text("")
    ready = wait_for("the pod to become Ready", pod_when(cluster, namespace, "web", pod_ready))
    # the host reaches the pod at its own IP, where the server bound 0.0.0.0
    with urllib.request.urlopen(f"http://{ready['status']['podIP']}:8080/", timeout=10) as resp:
        assert resp.status == 200
    # deletion stops the process within the grace period, then the object goes away
    cluster.rest.delete(pods_path(namespace, "web"))
    wait_for(
        "the pod object to go away",
        lambda: not [p for p in cluster.rest.get(pods_path(namespace))["items"] if p["metadata"]["name"] == "web"],
    )


def test_tritonserver_cpu_image_serves_on_local_0(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    repo = tmp_path / "empty-repo"
    repo.mkdir()
    cluster.rest.create(
        pods_path(namespace),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "triton"},
            "spec": {
                "nodeSelector": LOCAL,
                "containers": [
                    {
                        "name": "triton",
                        "image": cluster.images["tritonserver-cpu"].ref,
                        "command": ["tritonserver"],
                        "args": ["--model-repository=/models", "--model-control-mode=explicit"],
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 1},
                        "volumeMounts": [{"name": "repo", "mountPath": "/models"}],
                    }
                ],
                "volumes": [{"name": "repo", "hostPath": {"path": str(repo)}}],
            },
        },
    )
    ready = wait_for("tritonserver to become Ready", pod_when(cluster, namespace, "triton", pod_ready), timeout=300)
    with urllib.request.urlopen(f"http://{ready['status']['podIP']}:8000/v2", timeout=10) as resp:
        assert json.loads(resp.read())["name"] == "triton"


def test_security_context_and_cpu_limit_are_enforced_by_the_kubelet(cluster: Cluster, namespace: str) -> None:
    """What the chart and the operator ask of their pods really holds on local-0: a non-root uid, a read-only
    root filesystem, no capabilities, and the CPU limit as a CFS quota on the container's cgroup."""
    script = (
        "id -u; (touch /probe 2>/dev/null && echo writable) || echo read-only; "
        "grep CapEff /proc/self/status | tr -d '\\t'; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "restricted"},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": LOCAL,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "c",
                    "image": cluster.images["fulcrum"].ref,
                    "command": ["sh", "-c", f"({script}) > /dev/termination-log"],
                    "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    cluster.rest.create(pods_path(namespace), pod)
    done = wait_for(
        "the pod to finish",
        pod_when(cluster, namespace, "restricted", lambda p: p["status"].get("phase") in ("Succeeded", "Failed")),
    )
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0, terminated
    assert terminated["message"].split() == ["65532", "read-only", "CapEff:0000000000000000", "25000"]

"""Pure parts of the node agent: env, path mapping, images, status, provisioning."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from fulcrum.dev.agent import images, podspec, provisioner, status, volumes
from fulcrum.dev.agent.podspec import Lookups, SpecError
from fulcrum.dev.agent.status import ContainerView, Terminated


def _pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "a"}},
        "spec": {"nodeName": "local-0", "restartPolicy": "Never", **spec},
    }


LOOKUPS = Lookups(
    config_map=lambda ns, name: {"k": "cm-value", "other": "o"} if name == "cm" else None,
    secret=lambda ns, name: (
        podspec.decode_secret({"pw": base64.b64encode(b"s3cret").decode()}) if name == "sec" else None
    ),
)


def test_container_env_sources_and_expansion() -> None:
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "A", "value": "x"},
            {"name": "B", "value": "$(A)-y-$$(A)-$(MISSING)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        ],
        "resources": {"limits": {"cpu": "1500m"}},
    }
    env = podspec.container_env(_pod(), container, LOOKUPS, "10.244.1.2", "127.0.0.1")
    assert env["CM_k"] == "cm-value"
    assert env["B"] == "x-y-$(A)-$(MISSING)"
    assert env["POD"] == "p"
    assert env["IP"] == "10.244.1.2"
    assert env["APP"] == "a"
    assert env["K"] == "cm-value"
    assert env["PW"] == "s3cret"
    assert "OPT" not in env
    assert env["CPU"] == "2"


def test_missing_config_map_key_is_a_spec_error() -> None:
    container = {"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "no"}}}]}
    with pytest.raises(SpecError, match="key 'no'"):
        podspec.container_env(_pod(), container, LOOKUPS, "", "")


def test_path_rewriter_matches_whole_paths_only() -> None:
    rewrite = podspec.path_rewriter({"/models": "/h/m", "/models/cache": "/h/c", "/dev/termination-log": "/h/t"})
    assert rewrite("--model-repository=/models") == "--model-repository=/h/m"
    assert rewrite("/models/x/y") == "/h/m/x/y"
    assert rewrite("/models/cache/z") == "/h/c/z"
    assert rewrite("/modelsx /data/models") == "/modelsx /data/models"
    assert rewrite("echo done > /dev/termination-log") == "echo done > /h/t"
    assert podspec.path_rewriter({})("/a") == "/a"


def test_termination_message_fallback() -> None:
    assert podspec.termination_message("ok", "log", 0, None) == "ok"
    assert podspec.termination_message("", "l1\nl2\n", 1, "FallbackToLogsOnError") == "l1\nl2"
    assert podspec.termination_message("", "l1", 1, "File") == ""
    assert len(podspec.termination_message("x" * 10000, "", 0, None)) == podspec.MAX_TERMINATION_BYTES


def test_resolve_named_port() -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8000}]}
    assert podspec.resolve_port(container, "http") == 8000
    assert podspec.resolve_port(container, 81) == 81
    with pytest.raises(SpecError):
        podspec.resolve_port(container, "grpc")


def test_images_map() -> None:
    triton = images.local_command(
        "nvcr.io/nvidia/tritonserver:24.08-py3",
        ["tritonserver"],
        ["--model-repository=/m"],
        "/venv/bin/python",
        "/venv/bin",
    )
    assert triton.argv == ["/venv/bin/python", "-m", "fulcrum.local_triton", "--model-repository=/m"]
    fulcrum = images.local_command("ghcr.io/acme/fulcrum:0.1", ["python", "-m", "x"], [], "/py", "/venv/bin")
    assert fulcrum.path_prefix == "/venv/bin"
    assert images.with_path({"PATH": "/usr/bin"}, "/venv/bin")["PATH"] == "/venv/bin:/usr/bin"
    other = images.local_command("busybox:1.36", ["sh", "-c", "true"], [], "/py", "/venv/bin")
    assert other == images.LocalCommand(["sh", "-c", "true"], None)
    with pytest.raises(images.NoLocalCommandError):
        images.local_command("nginx", [], [], "/py", "/venv/bin")
    assert images.image_name("localhost:5000/a/fulcrum:1@sha256:ab") == "localhost:5000/a/fulcrum"


def _done(code: int) -> ContainerView:
    view = ContainerView("c", "img", state="terminated")
    view.terminated = Terminated(code, "Completed" if code == 0 else "Error", "msg", None, "t")
    return view


def test_phase_rules() -> None:
    running = ContainerView("c", "img", state="running")
    assert status.phase("Never", [], [running], False) == "Running"
    assert status.phase("Never", [], [_done(0)], False) == "Succeeded"
    assert status.phase("Never", [], [_done(1)], False) == "Failed"
    assert status.phase("OnFailure", [], [_done(1)], False) == "Running"
    assert status.phase("Always", [], [_done(0)], False) == "Running"
    assert status.phase("Never", [ContainerView("i", "img")], [ContainerView("c", "img")], False) == "Pending"
    assert status.phase("Never", [], [], True) == "Failed"


def test_pod_status_reports_termination_message_and_readiness() -> None:
    pod = _pod()
    pod["status"] = {"conditions": [{"type": "PodScheduled", "status": "True"}]}
    out = status.pod_status(pod, [], [_done(0)], pod_ip="10.244.1.2", host_ip="127.0.0.1", start_time="t")
    assert out["phase"] == "Succeeded"
    assert out["containerStatuses"][0]["state"]["terminated"]["message"] == "msg"
    assert out["podIP"] == "10.244.1.2"
    ready = {c["type"]: c["status"] for c in out["conditions"]}
    assert ready["Ready"] == "False" and ready["PodScheduled"] == "True"
    live = ContainerView("c", "img", state="running", started_at="t", ready=True, started=True)
    out = status.pod_status(_pod(), [], [live], pod_ip="10.244.1.2", host_ip="127.0.0.1", start_time="t")
    assert {c["type"]: c["status"] for c in out["conditions"]}["Ready"] == "True"


def test_provisioner_volume_for_claim(tmp_path: Path) -> None:
    pvc: dict[str, Any] = {
        "metadata": {"name": "data", "namespace": "ns", "uid": "abcdef12-3456"},
        "spec": {
            "storageClassName": "fulcrum-local",
            "resources": {"requests": {"storage": "5Gi"}},
            "accessModes": ["ReadWriteMany"],
        },
        "status": {"phase": "Pending"},
    }
    assert provisioner.wants_volume(pvc)
    pv = provisioner.volume_for(pvc, tmp_path)
    assert pv["spec"]["claimRef"]["uid"] == "abcdef12-3456"
    assert pv["spec"]["capacity"] == {"storage": "5Gi"}
    assert pv["spec"]["hostPath"]["path"] == str(tmp_path / "ns-data-abcdef12")
    pvc["spec"]["volumeName"] = "x"
    assert not provisioner.wants_volume(pvc)


def test_volumes_are_materialised_as_directories(tmp_path: Path) -> None:
    pv = {"spec": {"hostPath": {"path": str(tmp_path / "pv")}}}
    lookups = volumes.VolumeLookups(
        objects=LOOKUPS,
        pvc=lambda ns, name: {"spec": {"volumeName": "pv-1"}} if name == "claim" else None,
        pv=lambda name: pv if name == "pv-1" else None,
        token=lambda pod, audience, seconds: "tok",
        ca_pem="CA",
    )
    pod = _pod(
        volumes=[
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "k", "path": "sub/k.txt"}]}},
            {"name": "sec", "secret": {"secretName": "sec"}},
            {
                "name": "kube-api-access-x",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                        {"configMap": {"name": "cm", "items": [{"key": "other", "path": "o"}]}},
                        {
                            "downwardAPI": {
                                "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                            }
                        },
                    ]
                },
            },
            {"name": "repo", "persistentVolumeClaim": {"claimName": "claim"}},
        ]
    )
    out = volumes.materialise(pod, tmp_path / "pod", lookups, "10.244.1.2")
    assert out["scratch"].is_dir()
    assert (out["cfg"] / "sub" / "k.txt").read_text() == "cm-value"
    assert (out["sec"] / "pw").read_text() == "s3cret"
    api = out["kube-api-access-x"]
    assert (api / "token").read_text() == "tok"
    assert (api / "namespace").read_text() == "ns"
    assert (api / "ca.crt").read_text() == "CA"
    assert out["repo"] == tmp_path / "pv"
    container = {"name": "c", "volumeMounts": [{"name": "repo", "mountPath": "/models", "subPath": "m1"}]}
    assert volumes.mounts(container, out) == {"/models": str(tmp_path / "pv" / "m1")}
    with pytest.raises(SpecError, match="not bound"):
        volumes.pvc_path(
            "ns", "claim", volumes.VolumeLookups(LOOKUPS, lambda ns, n: {"spec": {}}, lookups.pv, lookups.token, "CA")
        )

"""The builder end to end: three architectures, both targets, served by the real bundled tritonserver.

Every ``local`` tier that comes out Ready is loaded in tritonserver and its served outputs are compared with
the torch reference under that tier's accuracy checks. Builds are made once per session (few, short profile
points) and shared by the tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from fulcrum import local_triton
from tests.support.triton_client import infer
from tests.support.triton_models import ModelCase, cnn_model, ctr_model, transformer_model

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from model_repo_builder.pipeline import BuildResult

Builds = dict[tuple[str, str], "BuildResult"]
MODELS = ("ctr-ranker", "tiny-transformer", "small-cnn")
METRICS = {"MaxAbsError", "MeanAbsError", "Cosine", "TopKOverlap", "Agreement"}


@pytest.fixture(scope="session")
def builder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builder-cache")


@pytest.fixture(scope="session")
def test_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelCase]:
    workdir = tmp_path_factory.mktemp("models")
    models = [ctr_model(), transformer_model(workdir), cnn_model(workdir)]
    return {m.name: m for m in models}


@pytest.fixture(scope="session")
def builds(test_models: dict[str, ModelCase], builder_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Builds:
    from model_repo_builder.pipeline import BuildOptions, build

    out_root = tmp_path_factory.mktemp("repos")
    results: Builds = {}
    for name, model in test_models.items():
        for target in ("local", "triton"):
            options = BuildOptions(
                spec_path=model.spec_path,
                out=out_root / f"{name}-{target}",
                target=target,
                node_pool="local",
                profile=target == "local",
                profile_duration=0.3,
                profile_points=2,
                cache_dir=builder_cache,
            )
            results[(name, target)] = build(options)
    return results


def _parse_config(text: str):  # type: ignore[no-untyped-def]
    from model_repo_builder.triton_config import parse

    return parse(text)


@pytest.mark.parametrize("target", ["local", "triton"])
@pytest.mark.parametrize("name", MODELS)
def test_manifest(builds: Builds, name: str, target: str) -> None:
    from fulcrum.api import BuildManifest

    result = builds[(name, target)]
    repo: Path = result.repository
    manifest = BuildManifest.model_validate_json((repo / "manifest.json").read_text())
    assert manifest.model == name
    assert len(manifest.source.sha256) == 64
    tiers = {t.name: t for t in manifest.tiers}
    assert list(tiers) == ["fp32", "fp16", "int8", "fp16-trt"]
    trt = tiers["fp16-trt"]
    assert (trt.state, trt.reason) == ("Unavailable", "NoGPU")
    assert trt.path is None
    assert tiers["fp32"].state == "Ready", tiers["fp32"].message
    for tier in manifest.tiers:
        if tier.backend != "onnxruntime":
            continue
        assert set(tier.accuracy) == METRICS, tier
        if tier.state != "Ready":
            assert tier.reason == "AccuracyCheckFailed", tier
            continue
        assert tier.path is not None
        model_dir = repo / tier.path
        config = (model_dir / "config.pbtxt").read_text()
        assert (model_dir / "1" / "model.onnx").is_file()
        assert tier.size_bytes == sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file()) > 0
        if target == "local":
            assert 'backend: "python"' in config
            assert (model_dir / "1" / "model.py").is_file()
            # compiled already: the python backend never writes into the tier (Triton would take it for modified)
            assert len(list((model_dir / "1" / "__pycache__").glob("model.cpython-*.pyc"))) == 1
            assert [p.node_pool for p in tier.profiles] == ["local"]
            points = tier.profiles[0].points
            assert 1 <= len(points) <= 2
            assert all(p.latency_ms.p50 <= p.latency_ms.p99 for p in points)
        else:
            assert 'platform: "onnxruntime_onnx"' in config
            assert tier.profiles == []
    # what every tier takes and returns, for the routing model that serves the ModelDeployment's name
    ready = [t for t in manifest.tiers if t.state == "Ready"]
    assert manifest.inputs and manifest.outputs and manifest.max_batch_size
    for tier in ready:
        parsed = _parse_config((repo / str(tier.path) / "config.pbtxt").read_text())
        assert [(i.name, list(i.dims)) for i in parsed.input] == [(i.name, i.dims) for i in manifest.inputs]
        assert [(o.name, list(o.dims)) for o in parsed.output] == [(o.name, o.dims) for o in manifest.outputs]
        assert parsed.max_batch_size == manifest.max_batch_size
    # every directory of the repository is a Ready tier (Triton loads them all)
    dirs = sorted(p.name for p in repo.iterdir() if p.is_dir())
    assert dirs == sorted(t.path for t in manifest.tiers if t.path)


def test_example_tiers_are_all_ready_with_real_accuracy(builds: Builds) -> None:
    """The example's fp16 and int8 (static QDQ, calibrated on its validation data) pass its checks."""
    manifest = builds[("ctr-ranker", "local")].manifest
    tiers = {t.name: t for t in manifest.tiers}
    for name in ("fp32", "fp16", "int8"):
        assert tiers[name].state == "Ready", tiers[name].message
    assert tiers["fp32"].accuracy["MaxAbsError"] <= tiers["fp16"].accuracy["MaxAbsError"]
    assert "static QDQ" in tiers["int8"].message
    assert tiers["int8"].accuracy["MeanAbsError"] > 0


@pytest.mark.parametrize("name", MODELS)
def test_served_outputs_match_torch_reference(builds: Builds, test_models: dict[str, ModelCase], name: str) -> None:
    from model_repo_builder import accuracy as acc
    from model_repo_builder.pipeline import load_spec

    result = builds[(name, "local")]
    repo: Path = result.repository
    model = test_models[name]
    checks = acc.checks_from_spec(load_spec(model.spec_path).spec.accuracy.checks)
    reference = model.reference(model.inputs)
    ready = [t for t in result.manifest.tiers if t.state == "Ready"]
    assert ready
    with local_triton.start(repo) as server:
        server.wait_ready(120)
        for tier in ready:
            assert tier.path is not None
            served = infer(server.http_url.removeprefix("http://"), tier.path, model.inputs, list(reference))
            evaluation = acc.evaluate(reference, served, checks)
            assert evaluation.passed, (tier.name, evaluation.failures, evaluation.metrics)
        metrics = _get(server.metrics_url)
        assert "nv_inference_request_summary_us{" in metrics
        assert "nv_inference_request_success" in metrics


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_same_build_twice_is_reused(builds: Builds, test_models: dict[str, ModelCase], builder_cache: Path) -> None:
    from model_repo_builder.pipeline import BuildOptions, build

    first = builds[("small-cnn", "triton")]
    again = build(
        BuildOptions(
            spec_path=test_models["small-cnn"].spec_path,
            out=first.repository,
            target="triton",
            profile=False,
            cache_dir=builder_cache,
        )
    )
    assert again.reused
    assert again.key == first.key
    assert "export" not in again.timings
    local = builds[("small-cnn", "local")]
    assert local.key != first.key  # the target is part of the key


def test_cli_json_termination_message_and_reuse(
    tmp_path: Path, builder_cache: Path, test_models: dict[str, ModelCase]
) -> None:
    """`python -m model_repo_builder build` (the code behind `fulcrum build`), --json and --termination-message."""
    spec = test_models["small-cnn"].spec_path
    out = tmp_path / "repo"
    message = tmp_path / "termination-log"
    args = [
        sys.executable, "-m", "model_repo_builder", "build", "--spec", str(spec), "--out", str(out),
        "--target", "local", "--json", "--profile-seconds", "0.2", "--profile-points", "1",
        "--termination-message", str(message),
    ]  # fmt: skip
    env = {**__import__("os").environ, "FULCRUM_CACHE_DIR": str(builder_cache)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    assert printed == json.loads((out / "manifest.json").read_text())
    raw = message.read_bytes()
    assert len(raw) <= 4096
    result = json.loads(raw)
    assert set(result) == {"key", "repository", "reused", "truncated", "manifest"}
    assert result["repository"] == str(out.resolve())
    assert not result["reused"]
    assert [t["name"] for t in result["manifest"]["tiers"]] == [t["name"] for t in printed["tiers"]]
    again = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(message.read_bytes())["reused"] is True


def test_pickled_module_is_refused_with_export_failed(tmp_path: Path, builder_cache: Path) -> None:
    import torch
    import yaml

    from model_repo_builder.pipeline import BuildOptions, build

    torch.save(torch.nn.Linear(4, 1), tmp_path / "model.pt")
    spec = {
        "apiVersion": "fulcrum.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "pickled"},
        "spec": {
            "model": {
                "source": {"uri": "file:model.pt", "format": "torchscript"},
                "inputs": [{"name": "x", "dataType": "FP32", "dims": [4]}],
                "outputs": [{"name": "y", "dataType": "FP32", "dims": [1]}],
            },
            "tiers": [{"name": "fp32", "precision": "fp32"}, {"name": "int8", "precision": "int8"}],
            "slo": {"latencyMs": 10},
            "nodePools": [{"name": "cpu", "gpusPerReplica": 0, "costPerHour": "0.1"}],
        },
    }
    (tmp_path / "md.yaml").write_text(yaml.safe_dump(spec))
    result = build(BuildOptions(spec_path=tmp_path / "md.yaml", out=tmp_path / "out", cache_dir=builder_cache))
    for tier in result.manifest.tiers:
        assert (tier.state, tier.reason) == ("Failed", "ExportFailed")
        assert "pickled nn.Module" in tier.message and "torch.export.save" in tier.message
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["tiers"][0]["reason"] == "ExportFailed"


def test_sha256_mismatch_fails_every_tier(
    tmp_path: Path, builder_cache: Path, test_models: dict[str, ModelCase]
) -> None:
    import yaml

    from model_repo_builder.pipeline import BuildOptions, build

    src = test_models["small-cnn"].spec_path
    for name in ("cnn.onnx", "cnn-validation.npz"):
        shutil.copy(src.parent / name, tmp_path / name)
    spec = yaml.safe_load(src.read_text())
    spec["spec"]["model"]["source"]["sha256"] = "0" * 64
    (tmp_path / "md.yaml").write_text(yaml.safe_dump(spec))
    result = build(BuildOptions(spec_path=tmp_path / "md.yaml", out=tmp_path / "out", cache_dir=builder_cache))
    assert {(t.state, t.reason) for t in result.manifest.tiers} == {("Failed", "SourceFailed")}
    assert "sha256 mismatch" in result.manifest.tiers[0].message


def test_local_triton_module_execs_tritonserver_with_given_args(builds: Builds) -> None:
    """The local kubelet's contract: `python -m fulcrum.local_triton <args>` is tritonserver with those args."""
    import urllib.request

    repo = builds[("small-cnn", "local")].repository
    http_port, grpc_port, metrics_port = (local_triton.free_port() for _ in range(3))
    args = local_triton.serve_args(repo, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port)
    process = subprocess.Popen(
        [sys.executable, "-m", "fulcrum.local_triton", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        ready = False
        while time.monotonic() < deadline and process.poll() is None and not ready:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as r:
                    ready = r.status == 200
            except OSError:
                time.sleep(0.3)
        assert ready, f"not ready (exit code {process.poll()})"
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0].endswith(b"tritonserver")  # exec'd: same pid, the real binary
        assert any(a.startswith(b"--backend-directory=") for a in cmdline)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_fulcrum_serve_until_interrupted(builds: Builds, tmp_path: Path) -> None:
    import signal
    import urllib.request

    repo = builds[("ctr-ranker", "local")].repository
    port = local_triton.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fulcrum", "serve", "--repo", str(repo), "--http-port", str(port),
         "--grpc-port", "0", "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        status = 0
        while time.monotonic() < deadline and process.poll() is None and status != 200:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/fp32/ready", timeout=2) as r:
                    status = r.status
            except OSError:
                time.sleep(0.3)
        assert status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        data = np.load(Path(__file__).resolve().parents[2] / "examples" / "ctr-ranker" / "validation.npz")
        assert len(data["sparse"]) == 512
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_profile_against_the_bundled_tritonserver(
    builds: Builds, test_models: dict[str, ModelCase], builder_cache: Path
) -> None:
    """A reused local build gains a profile for a new node pool, measured through tritonserver over HTTP."""
    from model_repo_builder.pipeline import BuildOptions, build

    first = builds[("small-cnn", "local")]
    again = build(
        BuildOptions(
            spec_path=test_models["small-cnn"].spec_path,
            out=first.repository,
            target="local",
            node_pool="dev-triton",
            profile_server="tritonserver",
            profile_duration=0.3,
            profile_points=1,
            cache_dir=builder_cache,
        )
    )
    assert again.reused and "tritonserver" in again.timings
    for tier in again.manifest.tiers:
        if tier.state != "Ready":
            continue
        assert [p.node_pool for p in tier.profiles] == ["local", "dev-triton"]
        (point,) = tier.profiles[1].points
        assert point.requests_per_second > 0 and 0 < point.latency_ms.p50 <= point.latency_ms.p99

"""The builder end to end: three architectures, both targets, served by the real bundled tritonserver.

``local`` builds are gated and profiled through the bundled tritonserver (the measure stage); every tier that
comes out Ready is loaded in tritonserver again and its served outputs are compared with the torch reference
under that tier's accuracy checks. Builds are made once per session (few, short profile points, the config
search off: one test below runs it) and shared by the tests.
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
                search=False,
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
        assert tier.validation is not None
        if target == "local":
            assert 'backend: "python"' in config
            assert (model_dir / "1" / "model.py").is_file()
            # compiled already: the python backend never writes into the tier (Triton would take it for modified)
            assert len(list((model_dir / "1" / "__pycache__").glob("model.cpython-*.pyc"))) == 1
            assert [p.node_pool for p in tier.profiles] == ["local"]
            points = tier.profiles[0].points
            assert 1 <= len(points) <= 2
            assert all(p.latency_ms.p50 <= p.latency_ms.p99 for p in points)
            # gated and profiled through tritonserver, with the config that serves
            assert tier.validation.gated_on.startswith("tritonserver 2.")
            config_knobs = tier.profiles[0].config
            assert config_knobs is not None and f"count: {config_knobs.instances}" in config
            assert tier.profiles[0].search is None  # off in these builds
        else:
            assert 'platform: "onnxruntime_onnx"' in config
            assert tier.profiles == []
            assert tier.validation.gated_on == "onnxruntime CPU (at build)"
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


def test_gate_rows_are_held_out_of_calibration(builds: Builds) -> None:
    """The example has 512 validation rows; int8 asks for 256 calibration samples: rows 0-255 calibrate, and
    every tier is gated on rows 256-511 only."""
    manifest = builds[("ctr-ranker", "local")].manifest
    for tier in manifest.tiers:
        if tier.state == "Unavailable":
            continue
        assert tier.validation is not None, tier.name
        assert tier.validation.gate_rows == [256, 512], tier.name
        if tier.name == "int8":
            assert tier.validation.calibration_rows == [0, 256]
            assert "calibrated on rows 0-255" in tier.message
        else:
            assert tier.validation.calibration_rows is None
        start, end = tier.validation.gate_rows
        assert not set(range(start, end)) & set(range(*(tier.validation.calibration_rows or [0, 0])))


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
            search=False,
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
        "--target", "local", "--json", "--profile-seconds", "0.2", "--profile-points", "1", "--no-search",
        "--termination-message", str(message),
    ]  # fmt: skip
    env = {**__import__("os").environ, "FULCRUM_CACHE_DIR": str(builder_cache)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    assert printed == json.loads((out / "manifest.json").read_text())
    from model_repo_builder.termination import LIMIT, unpacked

    raw = message.read_text()
    assert len(raw.encode()) <= LIMIT
    result = json.loads(unpacked(raw))
    assert set(result) == {"key", "repository", "reused", "truncated", "manifest"}
    assert result["repository"] == str(out.resolve())
    assert not result["reused"]
    assert [t["name"] for t in result["manifest"]["tiers"]] == [t["name"] for t in printed["tiers"]]
    again = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(unpacked(message.read_text()))["reused"] is True


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


def test_a_new_pool_is_searched_and_profiled_through_tritonserver(
    builds: Builds, test_models: dict[str, ModelCase], builder_cache: Path, tmp_path: Path
) -> None:
    """A reused local build gains a searched config and a profile for a new node pool; the chosen config is the one
    in config.pbtxt, and every candidate's capacity is recorded."""
    import yaml

    from model_repo_builder import triton_config
    from model_repo_builder.pipeline import BuildOptions, build

    first = builds[("small-cnn", "local")]
    repo = tmp_path / "repo"
    shutil.copytree(first.repository, repo)
    source = test_models["small-cnn"].spec_path
    spec = yaml.safe_load(source.read_text())
    spec["spec"]["serving"]["configSearch"] = {"maxCandidates": 3}  # a short search: the start and two more
    spec_path = source.with_name("small-cnn-search.yaml")
    spec_path.write_text(yaml.safe_dump(spec))
    again = build(
        BuildOptions(
            spec_path=spec_path,
            out=repo,
            target="local",
            node_pool="dev-triton",
            profile_duration=0.3,
            profile_points=1,
            search=True,
            search_seconds=0.3,
            cache_dir=builder_cache,
        )
    )
    assert not again.reused  # the search's inputs (its settings and the SLO) are part of the key
    assert "tritonserver" in again.timings and any(k.startswith("search:") for k in again.timings)
    for tier in again.manifest.tiers:
        if tier.state != "Ready":
            continue
        (profile,) = [p for p in tier.profiles if p.node_pool == "dev-triton"]
        (point,) = profile.points
        assert point.requests_per_second > 0 and 0 < point.latency_ms.p50 <= point.latency_ms.p99
        assert profile.search is not None and profile.config is not None
        candidates = profile.search.candidates
        assert len(candidates) == 3 and profile.search.seconds > 0
        assert candidates[0].config.max_queue_delay_microseconds == 200  # the spec's own config comes first
        chosen = next(c for c in candidates if c.config == profile.config)
        if chosen is not candidates[0]:  # a change from the spec's config must have served clearly more
            assert (chosen.requests_per_second or 0.0) > 1.1 * (candidates[0].requests_per_second or 0.0)
        served = triton_config.knobs_of(triton_config.parse((repo / str(tier.path) / "config.pbtxt").read_text()))
        assert (served.instances, served.max_queue_delay_us) == (
            profile.config.instances,
            profile.config.max_queue_delay_microseconds,
        )


def test_a_tensorrt_tier_listed_first_fails_clearly_and_the_others_are_measured(
    builds: Builds, test_models: dict[str, ModelCase], builder_cache: Path, tmp_path: Path
) -> None:
    """A Ready TensorRT tier first in the manifest (as a GPU build leaves it) goes through the same measure stage:
    the bundled CPU tritonserver has no TensorRT backend, so it fails with Triton's reason; nothing crashes."""
    from fulcrum.api import BuildManifest, ValidationSplit
    from model_repo_builder import triton_config
    from model_repo_builder.pipeline import BuildOptions, build

    first = builds[("small-cnn", "local")]
    repo = tmp_path / "repo"
    shutil.copytree(first.repository, repo)
    manifest = BuildManifest.model_validate_json((repo / "manifest.json").read_text())
    fp32 = next(t for t in manifest.tiers if t.name == "fp32")
    config = triton_config.parse((repo / "fp32" / "config.pbtxt").read_text())
    config.name = "fp16-trt"
    config.ClearField("backend")
    config.ClearField("parameters")
    config.platform = "tensorrt_plan"
    config.default_model_filename = "model.plan"
    (repo / "fp16-trt" / "1").mkdir(parents=True)
    (repo / "fp16-trt" / "1" / "model.plan").write_bytes(b"not an engine")
    (repo / "fp16-trt" / "config.pbtxt").write_text(triton_config.to_text(config))
    trt = fp32.model_copy(
        update={"name": "fp16-trt", "precision": "fp16", "backend": "tensorrt", "path": "fp16-trt", "accuracy": {},
                "validation": ValidationSplit(gate_rows=fp32.validation.gate_rows if fp32.validation else [0, 1]),
                "profiles": []}
    )  # fmt: skip
    others = [t for t in manifest.tiers if t.name != "fp16-trt"]
    (repo / "manifest.json").write_text(manifest.model_copy(update={"tiers": [trt, *others]}).model_dump_json())
    again = build(
        BuildOptions(
            spec_path=test_models["small-cnn"].spec_path,
            out=repo,
            target="local",
            node_pool="second",
            profile_duration=0.3,
            profile_points=1,
            search=False,
            cache_dir=builder_cache,
        )
    )
    assert again.reused
    tiers = {t.name: t for t in again.manifest.tiers}
    assert next(iter(tiers)) == "fp16-trt"
    assert (tiers["fp16-trt"].state, tiers["fp16-trt"].reason) == ("Failed", "ServingFailed")
    assert "tensorrt" in tiers["fp16-trt"].message.lower() and not (repo / "fp16-trt").exists()
    assert [p.node_pool for p in tiers["fp32"].profiles] == ["local", "second"]


def test_the_jobs_second_phase_measures_through_a_separate_triton(
    builds: Builds, test_models: dict[str, ModelCase], builder_cache: Path, tmp_path: Path
) -> None:
    """The build Job on a pool: a finished build (its init container) is reused by the measure phase, which copies
    each tier into the folder a separate Triton serves (the sidecar's) and gates and profiles it there."""
    from model_repo_builder.pipeline import BuildOptions, build

    first = builds[("small-cnn", "local")]
    repo = tmp_path / "repo"
    shutil.copytree(first.repository, repo)
    shared = tmp_path / "sidecar-models"
    shared.mkdir()
    with local_triton.start(shared, extra_args=["--model-control-mode=explicit"]) as sidecar:
        sidecar.wait_ready(120)
        again = build(
            BuildOptions(
                spec_path=test_models["small-cnn"].spec_path,
                out=repo,
                target="local",
                node_pool="sidecar-pool",
                triton_url=f"127.0.0.1:{sidecar.http_port}",
                triton_repository=shared,
                profile_duration=0.3,
                profile_points=1,
                search=False,
                cache_dir=builder_cache,
            )
        )
    assert again.reused and "export" not in again.timings
    ready = [t for t in again.manifest.tiers if t.state == "Ready"]
    assert ready
    for tier in ready:
        assert tier.validation is not None and tier.validation.gated_on.startswith("tritonserver 2.")
        assert [p.node_pool for p in tier.profiles] == ["local", "sidecar-pool"]
        assert (shared / str(tier.path) / "config.pbtxt").is_file()  # staged where the sidecar loads from

"""The build: spec -> source -> fp32 ONNX -> tiers -> CPU gate -> repository -> measure stage -> manifest.json.

The measure stage gates, searches and profiles every Ready tier through a Triton server: the build Job's
sidecar on a pool (``--triton-url``, the pool's own image and device), the bundled CPU tritonserver for
``--target local``; or, for quick looks, profiles onnxruntime tiers in process (``--profile-server onnxruntime``).

Tier failures are results, not crashes: a tier that cannot be built is ``Failed`` (``ExportFailed``,
``ConversionFailed``, ``QuantizationFailed``, ``EngineBuildFailed``, ``AccuracyCheckFailed``, ``ConfigFailed``,
``ServingFailed``) or ``Unavailable`` (``NoGPU``, ``TensorRTNotInstalled``, ``TensorRTTooOld``, ``NotGated``),
with a message; the manifest is always written. Only an unreadable spec raises :class:`BuildError`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fulcrum.api import (
    BuildManifest,
    ManifestSource,
    ManifestTensor,
    ManifestTier,
    ModelDeployment,
    Tier,
    format_validation_error,
    parse_model_deployment,
)
from model_repo_builder import accuracy as acc
from model_repo_builder.dtypes import Array, TensorInfo
from model_repo_builder.inputs import Inputs
from model_repo_builder.triton_config import ServingOptions, Target

ProfileServer = Literal["auto", "onnxruntime", "tritonserver"]

BUILD_RECORD = ".fulcrum-build.json"
"""A file (Triton loads every directory of the repository as a model) with the content key of the build."""
MANIFEST = "manifest.json"


class BuildError(RuntimeError):
    """The build cannot start (bad spec, bad options); the message names the field or file."""


@dataclass
class BuildOptions:
    spec_path: Path
    out: Path
    target: Target = "triton"
    node_pool: str = "local"
    profile: bool = True
    profile_duration: float = 3.0
    profile_points: int | None = None
    profile_server: ProfileServer = "auto"
    """auto: the sidecar when ``triton_url`` is set, else the bundled tritonserver for ``local``, else in process."""
    triton_url: str | None = None
    """A running Triton (the build Job's sidecar, the pool's image) to gate, search and profile through."""
    triton_repository: Path | None = None
    """The model repository ``triton_url`` serves (explicit model control), shared with this process."""
    device: str = ""
    """What ``triton_url`` runs on, for messages (default: the GPU nvidia-smi lists, or CPU)."""
    search: bool = True
    """False turns the config search off whatever the spec says."""
    search_seconds: float = 1.0
    cache_dir: Path | None = None
    pvc_root: str | None = None
    force: bool = False
    platform: dict[str, Any] | None = None
    """What the build runs on, part of the content key (the operator passes the node pool)."""
    inputs: Inputs | None = None
    """Inputs fetched beforehand (``python -m model_repo_builder fetch``); fetched here when None."""

    def measure_server(self) -> Literal["sidecar", "bundled", "onnxruntime"]:
        if self.triton_url:
            return "sidecar"
        if self.profile_server == "tritonserver" or (self.profile_server == "auto" and self.target == "local"):
            return "bundled"
        return "onnxruntime"


@dataclass
class BuildResult:
    manifest: BuildManifest
    key: str
    repository: Path
    reused: bool
    timings: dict[str, float] = field(default_factory=dict)
    failure: tuple[str, str] | None = None
    """(reason, message) when the sources could not be used (every tier is then Failed with that reason)."""


Reporter = Callable[[str, str, float | None], None]
"""Called with (stage, message, None) when a stage starts and (stage, message, seconds) when it ends."""


def _noop(stage: str, message: str, seconds: float | None) -> None:
    del stage, message, seconds


def default_cache_dir() -> Path:
    base = os.environ.get("FULCRUM_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "fulcrum"


def load_spec(path: Path) -> ModelDeployment:
    import yaml
    from pydantic import ValidationError

    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as error:
        raise BuildError(f"--spec: cannot read {path}: {error}") from error
    documents = [d for d in documents if isinstance(d, dict) and d.get("kind") == "ModelDeployment"]
    if len(documents) != 1:
        raise BuildError(f"--spec: {path} must hold exactly one ModelDeployment (found {len(documents)})")
    try:
        return parse_model_deployment(documents[0])
    except ValidationError as error:
        raise BuildError(f"--spec {path}: {format_validation_error(error)}") from error


def declared_io(md: ModelDeployment) -> tuple[list[TensorInfo], list[TensorInfo]]:
    model = md.spec.model
    inputs = [TensorInfo(t.name, t.data_type, tuple(t.dims)) for t in model.inputs or []]
    outputs = [TensorInfo(t.name, t.data_type, tuple(t.dims)) for t in model.outputs or []]
    return inputs, outputs


def search_requested(md: ModelDeployment, options: BuildOptions) -> bool:
    """Whether the spec and the options ask for the config search (a build input: the served config follows it).

    It does not depend on where the measure stage runs, so a build made without a server (the Job's init
    container, ``--no-profile``) is reused by the measure stage that runs with one.
    """
    return md.spec.serving.config_search.enabled and options.search


def search_enabled(md: ModelDeployment, options: BuildOptions) -> bool:
    """The config search runs when it is requested and a Triton serves the measure stage."""
    return search_requested(md, options) and options.measure_server() != "onnxruntime"


def serving_options(md: ModelDeployment) -> ServingOptions:
    serving = md.spec.serving
    return ServingOptions(
        max_batch_size=md.spec.model.max_batch_size,
        max_queue_delay_microseconds=serving.dynamic_batching.max_queue_delay_microseconds,
        preferred_batch_sizes=tuple(serving.dynamic_batching.preferred_batch_sizes or ()),
        instances=serving.instances_per_replica,
        queue_timeout_microseconds=serving.dynamic_batching.queue_timeout_microseconds,
    )


def _tier(t: Tier, state: str, reason: str = "", message: str = "", **kw: Any) -> ManifestTier:
    from model_repo_builder.tier_stage import manifest_tier

    return manifest_tier(t, state, reason, message, **kw)


class _Stages:
    def __init__(self, report: Reporter) -> None:
        self.report = report
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, message: str) -> Iterator[None]:
        self.report(name, message, None)
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            self.report(name, message, seconds)


def build(options: BuildOptions, report: Reporter = _noop) -> BuildResult:
    from model_repo_builder.inputs import fetch_inputs

    stages = _Stages(report)
    if options.profile and options.measure_server() == "bundled" and options.target != "local":
        raise BuildError("--profile-server tritonserver needs --target local (the bundled server runs python models)")
    if options.triton_url and options.triton_repository is None:
        raise BuildError("--triton-url needs --triton-repository (the folder that server serves, shared with it)")
    spec_path = options.spec_path.resolve()
    md = load_spec(spec_path)
    spec = md.spec
    name = str(md.metadata.get("name") or spec_path.stem)
    cache = options.cache_dir or default_cache_dir()
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    def all_failed(reason: str, message: str, digest: str = "") -> BuildResult:
        _clear(out)
        manifest = BuildManifest(
            model=name,
            source=ManifestSource(uri=spec.model.source.uri, sha256=digest),
            tiers=[_tier(t, "Failed", reason, message) for t in spec.tiers],
        )
        _write_manifest(out, manifest)
        return BuildResult(manifest, "", out, False, stages.timings, failure=(reason, message))

    with stages.stage("source", f"fetching {spec.model.source.uri}"):
        fetched = options.inputs or fetch_inputs(
            md,
            base_dir=spec_path.parent,
            cache_dir=cache,
            target=options.target,
            platform=options.platform or {},
            search=search_inputs(md, options),
            pvc_root=options.pvc_root,
        )
    if fetched.failure is not None or fetched.model is None:
        reason, message = fetched.failure or ("SourceFailed", "no model file was fetched")
        return all_failed(reason, message)
    model_path, digest = fetched.model.path, fetched.model.sha256
    validation_path = fetched.validation.path if fetched.validation is not None else None
    inputs, outputs = declared_io(md)
    key = fetched.key

    reused = _reusable(out, key) and not options.force
    if reused:
        report("reuse", f"build {key[:12]} already in {out}: reusing it", 0.0)
        manifest = BuildManifest.model_validate_json((out / MANIFEST).read_text())
    else:
        _clear(out)
        work = cache / "work" / key
        try:
            manifest = _build_tiers(
                md,
                name=name,
                options=options,
                stages=stages,
                model_path=model_path,
                digest=digest,
                validation_path=validation_path,
                inputs=inputs,
                outputs=outputs,
                out=out,
                work=work,
                export_cache=cache / "exports",
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _write_manifest(out, manifest)  # before the record: a record always has its own manifest beside it
        if all(t.reason != "ExportFailed" for t in manifest.tiers):
            (out / BUILD_RECORD).write_text(json.dumps({"key": key, "target": options.target}, indent=2) + "\n")
    if options.profile and all(t.reason != "ExportFailed" for t in manifest.tiers):
        manifest = _measure(
            manifest,
            md=md,
            options=options,
            stages=stages,
            out=out,
            validation_path=validation_path,
            inputs=inputs,
        )
        manifest = _ungated_tensorrt(manifest, out)
    _write_manifest(out, manifest)
    return BuildResult(manifest, key, out, reused, stages.timings)


def _ungated_tensorrt(manifest: BuildManifest, out: Path) -> BuildManifest:
    """A TensorRT tier is gated only through Triton on its GPU: without that it does not serve."""
    tiers = []
    for tier in manifest.tiers:
        if tier.state == "Ready" and tier.backend == "tensorrt" and not (tier.validation and tier.validation.gated_on):
            if tier.path:
                shutil.rmtree(out / tier.path, ignore_errors=True)
            message = (
                "a TensorRT engine is gated and profiled through Triton on its GPU: build with --triton-url "
                "(the build Job's Triton sidecar does this on a pool)"
            )
            update = {"state": "Unavailable", "reason": "NotGated", "message": message, "path": None}
            tiers.append(tier.model_copy(update=update))
            continue
        tiers.append(tier)
    return manifest.model_copy(update={"tiers": tiers})


def _search_inputs(md: ModelDeployment) -> dict[str, Any]:
    """What the config search's choice depends on: its settings and the SLO it optimises for."""
    return {
        "configSearch": md.spec.serving.config_search.to_wire(),
        "slo": md.spec.slo.to_wire(),
    }


def search_inputs(md: ModelDeployment, options: BuildOptions) -> dict[str, Any] | None:
    """The search's part of the content key (None when it is off)."""
    return _search_inputs(md) if search_requested(md, options) else None


def _clear(out: Path) -> None:
    """Forget a previous build in ``out``: its record, manifest and model directories."""
    (out / BUILD_RECORD).unlink(missing_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    for stale in [p for p in out.iterdir() if p.is_dir() and (p / "config.pbtxt").exists()]:
        shutil.rmtree(stale)


def _reusable(out: Path, key: str) -> bool:
    record = out / BUILD_RECORD
    if not record.is_file() or not (out / MANIFEST).is_file():
        return False
    try:
        return str(json.loads(record.read_text()).get("key")) == key
    except (OSError, ValueError):
        return False


def _write_manifest(out: Path, manifest: BuildManifest) -> None:
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest.model_dump(by_alias=True, mode="json"), indent=2) + "\n")
    tmp.replace(out / MANIFEST)


def _validation_inputs(validation_path: Path | None, inputs: list[TensorInfo]) -> dict[str, Array]:
    from model_repo_builder import validation

    if validation_path is not None:
        return validation.load_npz(validation_path, inputs)
    return validation.generate(inputs)


def _build_tiers(
    md: ModelDeployment,
    *,
    name: str,
    options: BuildOptions,
    stages: _Stages,
    model_path: Path,
    digest: str,
    validation_path: Path | None,
    inputs: list[TensorInfo],
    outputs: list[TensorInfo],
    out: Path,
    work: Path,
    export_cache: Path,
) -> BuildManifest:
    from model_repo_builder import export as exp
    from model_repo_builder import export_stage, runtime, tier_stage, validation
    from model_repo_builder.measure_stage import save_reference
    from model_repo_builder.onnx_graph import OPSET
    from model_repo_builder.tiers import tensorrt

    spec = md.spec
    fmt = spec.model.source.format
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = ManifestSource(uri=spec.model.source.uri, sha256=digest)

    def all_failed(reason: str, message: str) -> BuildManifest:
        return BuildManifest(model=name, source=source, tiers=[_tier(t, "Failed", reason, message) for t in spec.tiers])

    cached = export_stage.cached_path(export_cache, export_stage.export_key(digest, fmt, inputs, outputs)).is_file()
    what = "reusing the cached ONNX export" if cached else "exporting"
    with stages.stage("export", f"{what} {fmt} -> ONNX (opset {OPSET})"):
        try:
            exported = export_stage.export_cached(
                model_path, fmt, digest=digest, inputs=inputs, outputs=outputs, target=work / "export.onnx",
                cache=export_cache,
            )  # fmt: skip
        except exp.ExportError as error:
            return all_failed("ExportFailed", str(error))
    problem = export_stage.io_mismatch(inputs, outputs, exported.graph_in, exported.graph_out)
    if problem:
        return all_failed("ExportFailed", problem)
    try:
        data = _validation_inputs(validation_path, exported.graph_in)
        calibrating = [t.calibration.samples if t.calibration else 512 for t in spec.tiers if t.precision == "int8"]
        split = validation.split(
            len(next(iter(data.values()))), max(calibrating) if calibrating and validation_path else None
        )
    except validation.ValidationDataError as error:
        return all_failed("ValidationDataFailed", str(error))
    batch = spec.model.max_batch_size
    with stages.stage("reference", "running the fp32 reference"):
        reference = runtime.run_batched(runtime.session(exported.path), data, batch)
    checks = acc.checks_from_spec(spec.accuracy.checks)
    marker = export_stage.check_marker(export_cache, exported.key, data, checks)
    if fmt != "onnx" and not marker.exists():
        with stages.stage("export-check", "checking the ONNX export against torch"):
            problem = export_stage.check_against_torch(
                model_path, fmt, exported=exported, data=data, reference=reference, checks=checks, batch=batch
            )
        if problem:
            return all_failed("ExportFailed", problem)
        marker.touch()

    gate_reference = validation.rows(reference, split.gate)
    save_reference(out, gate_reference)
    gpu = tensorrt.detect_gpu()
    ctx = tier_stage.TierContext(
        exported=exported.path,
        work=work,
        out=out,
        target=options.target,
        graph_in=exported.graph_in,
        graph_out=exported.graph_out,
        data=data,
        split=split,
        calibrate=validation_path is not None,
        reference=gate_reference,
        checks=checks,
        serving=serving_options(md),
        gpu=gpu,
        tensorrt_version=tensorrt.installed_version() if any(t.backend == "tensorrt" for t in spec.tiers) else None,
        max_dims={t.name: t.max_dims for t in spec.model.inputs or []},
    )
    results: list[ManifestTier] = []
    for tier in spec.tiers:
        skipped = tier_stage.unavailable(tier, ctx)
        if skipped is not None:
            results.append(skipped)
            continue
        with stages.stage(f"tier:{tier.name}", f"building tier {tier.name} ({tier.precision}, {tier.backend})"):
            results.append(tier_stage.build_tier(tier, ctx))
    return BuildManifest(
        model=name,
        source=source,
        tiers=results,
        inputs=[_tensor(t) for t in ctx.graph_in],
        outputs=[_tensor(t) for t in ctx.graph_out],
        max_batch_size=ctx.serving.max_batch_size,
        gpu_product=gpu.product,
    )


def _tensor(tensor: TensorInfo) -> ManifestTensor:
    """The tensor as every tier serves it; the served model name's routing model declares the same."""
    return ManifestTensor(name=tensor.name, data_type=tensor.data_type, dims=list(tensor.dims))


def _measure(
    manifest: BuildManifest,
    *,
    md: ModelDeployment,
    options: BuildOptions,
    stages: _Stages,
    out: Path,
    validation_path: Path | None,
    inputs: list[TensorInfo],
) -> BuildManifest:
    from model_repo_builder import measure_stage, triton_control
    from model_repo_builder import profile as prof
    from model_repo_builder.profile_stage import profile_in_process
    from model_repo_builder.search import Knobs

    todo = measure_stage.todo(manifest, options.node_pool)
    if not todo:
        return manifest
    data = _validation_inputs(validation_path, inputs or _config_inputs(out / str(todo[0].path)))
    serving = serving_options(md)
    kind = options.measure_server()
    if kind == "onnxruntime":
        batching = prof.Batching(
            max_batch_size=serving.max_batch_size,
            max_queue_delay_s=serving.max_queue_delay_microseconds / 1e6,
            preferred_batch_sizes=serving.preferred_batch_sizes,
            instances=serving.instances,
        )
        return profile_in_process(
            manifest,
            out=out,
            node_pool=options.node_pool,
            inputs=data,
            batching=batching,
            duration=options.profile_duration,
            max_points=options.profile_points,
            stage=stages.stage,
        )
    reference = measure_stage.load_reference(out)
    if reference is None:
        raise BuildError(f"--out {out}: the build has no {measure_stage.REFERENCE_FILE}; rebuild it with --force")
    settings = measure_stage.MeasureSettings(
        node_pool=options.node_pool,
        slo_ms=float(md.spec.slo.latency_ms),
        percentile=float(md.spec.slo.percentile),
        checks=acc.checks_from_spec(md.spec.accuracy.checks),
        max_batch_size=serving.max_batch_size,
        duration=options.profile_duration,
        max_points=options.profile_points,
        search=search_enabled(md, options),
        search_candidates=md.spec.serving.config_search.max_candidates,
        search_seconds=options.search_seconds,
        max_instances=(os.cpu_count() or 1) if kind == "bundled" else 4,
        start=Knobs(
            instances=serving.instances,
            max_queue_delay_us=serving.max_queue_delay_microseconds,
            preferred=tuple(b for b in serving.preferred_batch_sizes if b <= serving.max_batch_size),
        ),
    )
    with ExitStack() as stack:
        if kind == "sidecar":
            assert options.triton_url is not None and options.triton_repository is not None
            with stages.stage("tritonserver", f"waiting for the Triton sidecar at {options.triton_url}"):
                device = options.device or manifest.gpu_product or _device_name()
                server = triton_control.external_server(options.triton_url, options.triton_repository, device)
        else:
            with stages.stage("tritonserver", f"starting the bundled tritonserver on {out}"):
                server = stack.enter_context(triton_control.bundled_server(out))
        return measure_stage.measure_on_triton(
            manifest, out=out, server=server, data=data, reference=reference, settings=settings, stage=stages.stage
        )


def _config_inputs(model_dir: Path) -> list[TensorInfo]:
    """A tier's inputs as its config.pbtxt declares them (any backend: TensorRT tiers have no ONNX file)."""
    from model_repo_builder import triton_config

    config = triton_config.parse((model_dir / "config.pbtxt").read_text())
    return [TensorInfo(t.name, triton_config.type_name(t.data_type), tuple(t.dims)) for t in config.input]


def _device_name() -> str:
    from model_repo_builder.tiers import tensorrt

    gpu = tensorrt.detect_gpu()
    return (gpu.product or "GPU") if gpu.available else "CPU"

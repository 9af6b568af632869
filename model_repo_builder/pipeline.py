"""The build: spec -> source -> fp32 ONNX -> tiers -> accuracy -> repository -> profiles -> manifest.json.

Tier failures are results, not crashes: a tier that cannot be built is ``Failed`` (``ExportFailed``,
``ConversionFailed``, ``QuantizationFailed``, ``AccuracyCheckFailed``, ``ConfigFailed``) or
``Unavailable`` (``NoGPU``, ``TensorRTNotInstalled``), with a message; the manifest is always written.
Only an unreadable spec raises :class:`BuildError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fulcrum.api import (
    BuildManifest,
    LatencyQuantiles,
    ManifestSource,
    ManifestTier,
    ModelDeployment,
    Profile,
    ProfilePoint,
    Tier,
    format_validation_error,
    parse_model_deployment,
)
from model_repo_builder import accuracy as acc
from model_repo_builder.dtypes import Array, TensorInfo
from model_repo_builder.keys import content_key
from model_repo_builder.triton_config import ServingOptions, Target

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
    profile_server: Literal["onnxruntime", "tritonserver"] = "onnxruntime"
    cache_dir: Path | None = None
    pvc_root: str | None = None
    force: bool = False


@dataclass
class BuildResult:
    manifest: BuildManifest
    key: str
    repository: Path
    reused: bool
    timings: dict[str, float] = field(default_factory=dict)


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


def serving_options(md: ModelDeployment) -> ServingOptions:
    serving = md.spec.serving
    return ServingOptions(
        max_batch_size=md.spec.model.max_batch_size,
        max_queue_delay_microseconds=serving.dynamic_batching.max_queue_delay_microseconds,
        preferred_batch_sizes=tuple(serving.dynamic_batching.preferred_batch_sizes or ()),
        instances=serving.instances_per_replica,
    )


def _tier(t: Tier, state: str, reason: str = "", message: str = "", **kw: Any) -> ManifestTier:
    return ManifestTier(
        name=t.name, precision=t.precision, backend=t.backend, state=state, reason=reason, message=message, **kw
    )


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
    from model_repo_builder import sources
    from model_repo_builder.onnx_graph import OPSET

    stages = _Stages(report)
    if options.profile and options.profile_server == "tritonserver" and options.target != "local":
        raise BuildError("--profile-server tritonserver needs --target local (the bundled server runs python models)")
    spec_path = options.spec_path.resolve()
    md = load_spec(spec_path)
    spec = md.spec
    name = str(md.metadata.get("name") or spec_path.stem)
    base_dir = spec_path.parent
    cache = options.cache_dir or default_cache_dir()
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    def all_failed(reason: str, message: str, digest: str = "") -> BuildResult:
        manifest = BuildManifest(
            model=name,
            source=ManifestSource(uri=spec.model.source.uri, sha256=digest),
            tiers=[_tier(t, "Failed", reason, message) for t in spec.tiers],
        )
        _write_manifest(out, manifest)
        return BuildResult(manifest, "", out, False, stages.timings)

    with stages.stage("source", f"fetching {spec.model.source.uri}"):
        try:
            model_path, digest = sources.fetch(
                spec.model.source.uri,
                base_dir=base_dir,
                cache_dir=cache,
                expected_sha256=spec.model.source.sha256,
                field="model.source.uri",
                pvc_root=options.pvc_root,
            )
            validation_path: Path | None = None
            validation_digest: str | None = None
            if spec.accuracy.validation_data is not None:
                validation_path, validation_digest = sources.fetch(
                    spec.accuracy.validation_data.uri,
                    base_dir=base_dir,
                    cache_dir=cache,
                    field="accuracy.validationData.uri",
                    pvc_root=options.pvc_root,
                )
        except sources.SourceError as error:
            return all_failed("SourceFailed", str(error))

    inputs, outputs = declared_io(md)
    key = content_key(
        model_sha256=digest,
        source_format=spec.model.source.format,
        target=options.target,
        model_io={
            "inputs": [t.to_dict() for t in inputs],
            "outputs": [t.to_dict() for t in outputs],
            "maxBatchSize": spec.model.max_batch_size,
        },
        tiers=[t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in spec.tiers],
        accuracy={
            "checks": [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in spec.accuracy.checks]
        },
        validation_sha256=validation_digest,
        serving=spec.serving.model_dump(
            by_alias=True, exclude_none=True, mode="json", include={"dynamic_batching", "instances_per_replica"}
        ),
        opset=OPSET,
    )

    reused = _reusable(out, key) and not options.force
    if reused:
        report("reuse", f"build {key[:12]} already in {out}: reusing it", 0.0)
        manifest = BuildManifest.model_validate_json((out / MANIFEST).read_text())
    else:
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
        (out / BUILD_RECORD).unlink(missing_ok=True)
        if all(t.reason != "ExportFailed" for t in manifest.tiers):
            (out / BUILD_RECORD).write_text(json.dumps({"key": key, "target": options.target}, indent=2) + "\n")
    if options.profile and all(t.reason != "ExportFailed" for t in manifest.tiers):
        manifest = _profile_missing(
            manifest,
            md=md,
            options=options,
            stages=stages,
            out=out,
            validation_path=validation_path,
            inputs=inputs,
        )
    _write_manifest(out, manifest)
    return BuildResult(manifest, key, out, reused, stages.timings)


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
    from model_repo_builder import onnx_graph, repository, runtime, validation
    from model_repo_builder.tiers import tensorrt
    from model_repo_builder.tiers.fp16 import build_fp16
    from model_repo_builder.tiers.fp32 import build_fp32
    from model_repo_builder.tiers.int8 import build_int8
    from model_repo_builder.triton_config import ConfigError

    spec = md.spec
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for stale in [p for p in out.iterdir() if p.is_dir() and (p / "config.pbtxt").exists()]:
        shutil.rmtree(stale)
    source = ManifestSource(uri=spec.model.source.uri, sha256=digest)
    exported = work / "export.onnx"
    # Exports are cached by what determines them, so the other target or other tiers of one model reuse it.
    export_key = content_key(
        model_sha256=digest,
        source_format=spec.model.source.format,
        target="export",
        model_io={"inputs": [t.to_dict() for t in inputs], "outputs": [t.to_dict() for t in outputs]},
        tiers=[],
        accuracy={},
        validation_sha256=None,
        serving={},
        opset=onnx_graph.OPSET,
    )
    cached_export = export_cache / f"{export_key}.onnx"
    what = "reusing the cached ONNX export" if cached_export.is_file() else "exporting"
    with stages.stage("export", f"{what} {spec.model.source.format} -> ONNX (opset {onnx_graph.OPSET})"):
        try:
            if cached_export.is_file():
                shutil.copyfile(cached_export, exported)
            else:
                exp.export(model_path, spec.model.source.format, exported, inputs=inputs, outputs=outputs)
                cached_export.parent.mkdir(parents=True, exist_ok=True)
                tmp_export = cached_export.with_suffix(f".{os.getpid()}.tmp")
                shutil.copyfile(exported, tmp_export)
                tmp_export.replace(cached_export)
            graph_in, graph_out = onnx_graph.graph_io(onnx_graph.load(exported))
        except exp.ExportError as error:
            message = str(error)
            return BuildManifest(
                model=name, source=source, tiers=[_tier(t, "Failed", "ExportFailed", message) for t in spec.tiers]
            )
    if not inputs:
        inputs, outputs = graph_in, graph_out
    io_problems = _io_mismatch(inputs, outputs, graph_in, graph_out)
    if io_problems:
        return BuildManifest(
            model=name, source=source, tiers=[_tier(t, "Failed", "ExportFailed", io_problems) for t in spec.tiers]
        )

    try:
        data = _validation_inputs(validation_path, graph_in)
    except validation.ValidationDataError as error:
        return BuildManifest(
            model=name,
            source=source,
            tiers=[_tier(t, "Failed", "ValidationDataFailed", str(error)) for t in spec.tiers],
        )
    batch = spec.model.max_batch_size
    with stages.stage("reference", "running the fp32 reference"):
        reference = runtime.run_batched(runtime.session(exported), data, batch)
    checks = acc.checks_from_spec(spec.accuracy.checks)
    # The export is the reference of every tier: hold it to the torch model first (once per export, data, checks).
    digest_of_check = hashlib.sha256(export_key.encode())
    digest_of_check.update(json.dumps([c.__dict__ for c in checks], sort_keys=True).encode())
    for array_name in sorted(data):
        digest_of_check.update(array_name.encode() + np.ascontiguousarray(data[array_name]).tobytes())
    checked_marker = export_cache / f"{export_key}.checked-{digest_of_check.hexdigest()[:16]}"
    if spec.model.source.format != "onnx" and not checked_marker.exists():
        with stages.stage("export-check", "checking the ONNX export against torch"):
            problem = ""
            try:
                torch_out = exp.torch_outputs(
                    model_path, spec.model.source.format, data, [t.name for t in graph_out], batch
                )
                check = acc.evaluate(torch_out, reference, checks)
                if not check.passed:
                    problem = (
                        f"the ONNX export differs from the torch model ({', '.join(check.failures)}): an exporter "
                        "bug or an operation it does not translate faithfully; try the other source format or "
                        "export to ONNX yourself (format: onnx)"
                    )
            except Exception as error:
                problem = f"could not run the torch model to check the export: {exp._key_line(error)}"
        if problem:
            return BuildManifest(
                model=name, source=source, tiers=[_tier(t, "Failed", "ExportFailed", problem) for t in spec.tiers]
            )
        checked_marker.touch()
    gpu = tensorrt.detect_gpu()
    serving = serving_options(md)
    results: list[ManifestTier] = []
    int8_cache: dict[str, Path] = {}

    def onnx_tier_file(tier: Tier) -> tuple[Path, str]:
        target_file = work / f"{tier.name}.onnx"
        if tier.precision == "fp32":
            build_fp32(exported, target_file)
            return target_file, "graph-optimised (onnxruntime basic level)"
        if tier.precision == "fp16":
            build_fp16(exported, target_file)
            return target_file, "fp16 (IO kept fp32; control flow and fragile ops kept fp32)"
        samples = tier.calibration.samples if tier.calibration else 512
        calib = validation.take(data, samples) if validation_path is not None else None
        method = build_int8(exported, target_file, calib, samples)
        int8_cache[tier.name] = target_file
        detail = (
            f"static QDQ, calibrated on {min(samples, len(next(iter(data.values()))))} samples"
            if method == "static-qdq"
            else "dynamic quantisation (no validationData)"
        )
        return target_file, f"int8 {detail}"

    for tier in spec.tiers:
        if tier.backend == "tensorrt":
            if not gpu.available:
                results.append(_tier(tier, "Unavailable", "NoGPU", f"TensorRT needs a GPU: {gpu.detail}"))
                continue
            if options.target == "local":
                message = "--target local serves onnxruntime tiers only (python backend); build with --target triton"
                results.append(_tier(tier, "Unavailable", "NotServedLocally", message))
                continue
            if not tensorrt.tensorrt_available():
                results.append(
                    _tier(
                        tier,
                        "Unavailable",
                        "TensorRTNotInstalled",
                        "the tensorrt package is not installed on the build image",
                    )
                )
                continue
        with stages.stage(f"tier:{tier.name}", f"building tier {tier.name} ({tier.precision}, {tier.backend})"):
            try:
                if tier.backend == "tensorrt":
                    plan = work / f"{tier.name}.plan"
                    src = exported
                    if tier.precision == "int8":
                        src, _ = onnx_tier_file(tier)
                    shapes = {t.name: tuple(d if d > 0 else 1 for d in t.dims) for t in graph_in}
                    tensorrt.build_engine(src, plan, tier.precision, input_shapes=shapes, max_batch_size=batch)
                    tier_file, detail = plan, f"TensorRT {tier.precision} engine built on {gpu.detail}"
                else:
                    tier_file, detail = onnx_tier_file(tier)
            except Exception as error:  # conversion failures become the tier's state
                reason = {"fp16": "ConversionFailed", "int8": "QuantizationFailed"}.get(
                    tier.precision, "ConversionFailed"
                )
                if tier.backend == "tensorrt":
                    reason = "EngineBuildFailed"
                results.append(
                    _tier(tier, "Failed", reason, f"{tier.precision} {tier.backend}: {exp._key_line(error)}")
                )
                continue
            evaluation: acc.Evaluation | None = None
            if tier.backend != "tensorrt":
                tier_out = runtime.run_batched(runtime.session(tier_file), data, batch)
                evaluation = acc.evaluate(reference, tier_out, checks)
            if evaluation is not None and not evaluation.passed:
                results.append(
                    _tier(
                        tier,
                        "Failed",
                        "AccuracyCheckFailed",
                        f"{detail}; failed: {', '.join(evaluation.failures)}",
                        accuracy=evaluation.metrics,
                    )
                )
                continue
            try:
                model_dir = repository.write_tier(
                    out,
                    tier.name,
                    backend=tier.backend,
                    target=options.target,
                    model_file=tier_file,
                    inputs=graph_in,
                    outputs=graph_out,
                    serving=serving,
                )
            except ConfigError as error:
                results.append(_tier(tier, "Failed", "ConfigFailed", str(error)))
                continue
            if evaluation is None:
                detail += "; accuracy not measured (TensorRT engines run only on the GPU they were built for)"
            results.append(
                _tier(
                    tier,
                    "Ready",
                    "Built",
                    detail,
                    accuracy=evaluation.metrics if evaluation else {},
                    path=model_dir.name,
                )
            )
    return BuildManifest(model=name, source=source, tiers=results)


def _io_mismatch(
    inputs: list[TensorInfo], outputs: list[TensorInfo], graph_in: list[TensorInfo], graph_out: list[TensorInfo]
) -> str:
    problems = []
    for what, declared, graph in (("inputs", inputs, graph_in), ("outputs", outputs, graph_out)):
        by_name = {t.name: t for t in graph}
        for t in declared:
            g = by_name.get(t.name)
            if g is None:
                problems.append(f"model.{what}[{t.name}] is not in the graph (it has {sorted(by_name)})")
            elif g.data_type != t.data_type:
                problems.append(f"model.{what}[{t.name}].dataType is {t.data_type}, the graph has {g.data_type}")
            elif len(g.dims) != len(t.dims) or any(
                a != b and -1 not in (a, b) for a, b in zip(g.dims, t.dims, strict=False)
            ):
                problems.append(f"model.{what}[{t.name}].dims is {list(t.dims)}, the graph has {list(g.dims)}")
    return "; ".join(problems)


def _profile_missing(
    manifest: BuildManifest,
    *,
    md: ModelDeployment,
    options: BuildOptions,
    stages: _Stages,
    out: Path,
    validation_path: Path | None,
    inputs: list[TensorInfo],
) -> BuildManifest:
    """Profile every Ready onnxruntime tier that has no profile for ``options.node_pool`` yet."""
    from model_repo_builder import onnx_graph
    from model_repo_builder import profile as prof

    serving = serving_options(md)
    batching = prof.Batching(
        max_batch_size=serving.max_batch_size,
        max_queue_delay_s=serving.max_queue_delay_microseconds / 1e6,
        preferred_batch_sizes=serving.preferred_batch_sizes,
        instances=serving.instances,
    )
    todo = [
        t
        for t in manifest.tiers
        if t.state == "Ready"
        and t.backend == "onnxruntime"
        and t.path is not None
        and not any(p.node_pool == options.node_pool for p in t.profiles)
    ]
    if not todo:
        return manifest
    first = out / str(todo[0].path) / "1" / "model.onnx"
    graph_in, graph_out = onnx_graph.graph_io(onnx_graph.load(first))
    data = _validation_inputs(validation_path, inputs or graph_in)
    measured: dict[str, list[prof.PointResult]] = {}
    if options.profile_server == "tritonserver":
        from model_repo_builder import profile_triton

        with ExitStack() as stack:
            with stages.stage("tritonserver", f"starting the bundled tritonserver on {out}"):
                address = stack.enter_context(profile_triton.local_server(out))
            for tier in todo:
                message = f"profiling tier {tier.name} in tritonserver ({options.node_pool})"
                with stages.stage(f"profile:{tier.name}", message):
                    send = profile_triton.http_sender(address, str(tier.path), data, [t.name for t in graph_out])
                    measured[tier.name] = profile_triton.profile_model(
                        send, duration=options.profile_duration, max_points=options.profile_points
                    )
    else:
        for tier in todo:
            with stages.stage(f"profile:{tier.name}", f"profiling tier {tier.name} on {options.node_pool}"):
                run = prof.onnxruntime_runner(out / str(tier.path) / "1" / "model.onnx", data, batching.instances)
                measured[tier.name] = prof.profile(
                    run, batching, duration=options.profile_duration, max_points=options.profile_points
                )
    tiers = []
    for tier in manifest.tiers:
        if tier.name not in measured:
            tiers.append(tier)
            continue
        profile = Profile(
            node_pool=options.node_pool,
            points=[
                ProfilePoint(
                    requests_per_second=round(p.offered_rps, 2),
                    latency_ms=LatencyQuantiles(
                        p50=round(p.p50, 3), p90=round(p.p90, 3), p95=round(p.p95, 3), p99=round(p.p99, 3)
                    ),
                )
                for p in measured[tier.name]
            ],
        )
        tiers.append(tier.model_copy(update={"profiles": [*tier.profiles, profile]}))
    return manifest.model_copy(update={"tiers": tiers})

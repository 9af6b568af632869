"""One tier: its model file (fp32 / fp16 / int8 ONNX, or a TensorRT plan), its accuracy, its repository entry.

Every outcome is a :class:`ManifestTier`: ``Ready``, ``Failed`` (``ConversionFailed``, ``QuantizationFailed``,
``EngineBuildFailed``, ``AccuracyCheckFailed``, ``ConfigFailed``) or ``Unavailable`` (``NoGPU``,
``NotServedLocally``, ``TensorRTNotInstalled``, ``TensorRTTooOld``).

onnxruntime tiers are gated here on the CPU (a first check, on the gate rows only); every tier is gated again
where it serves by the measure stage (:mod:`model_repo_builder.measure_stage`), which is the only gate a
TensorRT engine gets: until then it is Ready with ``validation.gatedOn`` empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fulcrum.api import ManifestTier, Tier, ValidationSplit
from model_repo_builder import accuracy as acc
from model_repo_builder import validation
from model_repo_builder.dtypes import Array, TensorInfo
from model_repo_builder.tiers.tensorrt import GpuCheck
from model_repo_builder.triton_config import ServingOptions, Target

CPU_GATE = "onnxruntime CPU (at build)"


def manifest_tier(t: Tier, state: str, reason: str = "", message: str = "", **kw: Any) -> ManifestTier:
    return ManifestTier(
        name=t.name, precision=t.precision, backend=t.backend, state=state, reason=reason, message=message, **kw
    )


@dataclass(frozen=True)
class TierContext:
    """What every tier of one build shares."""

    exported: Path  # the fp32 ONNX export (the reference)
    work: Path  # scratch folder for tier files
    out: Path  # the repository
    target: Target
    graph_in: list[TensorInfo]
    graph_out: list[TensorInfo]
    data: dict[str, Array]  # validation inputs, every row
    split: validation.Split  # which rows calibrate, which gate
    calibrate: bool  # static int8 (validation data given) or dynamic
    reference: dict[str, Array]  # fp32 outputs on the gate rows
    checks: list[acc.Check]
    serving: ServingOptions
    gpu: GpuCheck
    tensorrt_version: str | None = None
    max_dims: dict[str, list[int] | None] | None = None  # spec inputs' maxDims

    def validation_of(self, tier: Tier, gated_on: str) -> ValidationSplit:
        samples = tier.calibration.samples if tier.calibration else 512
        calibration = self.split.calibration_rows(samples) if tier.precision == "int8" and self.calibrate else None
        return ValidationSplit(
            gate_rows=list(self.split.gate),
            calibration_rows=list(calibration) if calibration else None,
            gated_on=gated_on,
        )


def unavailable(tier: Tier, ctx: TierContext) -> ManifestTier | None:
    """Why a tensorrt tier cannot be built here, or None."""
    from model_repo_builder.tiers import tensorrt

    if tier.backend != "tensorrt":
        return None
    if not ctx.gpu.available:
        return manifest_tier(tier, "Unavailable", "NoGPU", f"TensorRT needs a GPU: {ctx.gpu.detail}")
    if ctx.target == "local":
        message = "--target local serves onnxruntime tiers only (python backend); build with --target triton"
        return manifest_tier(tier, "Unavailable", "NotServedLocally", message)
    problem = tensorrt.version_problem(ctx.tensorrt_version)
    if problem is not None:
        return manifest_tier(tier, "Unavailable", *problem)
    return None


def onnx_file(tier: Tier, ctx: TierContext) -> tuple[Path, str]:
    """The tier's ONNX file at its precision, and a line saying how it was made."""
    from model_repo_builder.tiers.fp16 import build_fp16
    from model_repo_builder.tiers.fp32 import build_fp32
    from model_repo_builder.tiers.int8 import build_int8

    target = ctx.work / f"{tier.name}.onnx"
    if tier.precision == "fp32":
        build_fp32(ctx.exported, target)
        return target, "graph-optimised (onnxruntime basic level)"
    if tier.precision == "fp16":
        build_fp16(ctx.exported, target)
        return target, "fp16 (IO kept fp32; control flow and fragile ops kept fp32)"
    samples = tier.calibration.samples if tier.calibration else 512
    rows = ctx.split.calibration_rows(samples) if ctx.calibrate else None
    calibration = validation.rows(ctx.data, rows) if rows else None
    method = build_int8(ctx.exported, target, calibration, samples)
    note = method.partition(" ")[2]
    if method.startswith("static-qdq") and rows:
        used = rows[1] - rows[0]
        held = f" (of {samples} asked: half the rows stay for the gate)" if used < samples else ""
        return target, f"int8 static QDQ, calibrated on rows {rows[0]}-{rows[1] - 1}{held}{' ' + note if note else ''}"
    return target, f"int8 dynamic quantisation (no validationData){' ' + note if note else ''}"


def _model_file(tier: Tier, ctx: TierContext) -> tuple[Path, str]:
    from model_repo_builder.tiers import tensorrt

    if tier.backend != "tensorrt":
        return onnx_file(tier, ctx)
    source = onnx_file(tier, ctx)[0] if tier.precision == "int8" else ctx.exported
    plan = ctx.work / f"{tier.name}.plan"
    typical = {name: tuple(int(d) for d in array.shape[1:]) for name, array in ctx.data.items()}
    ranges = tensorrt.shape_ranges(
        ctx.graph_in, max_batch_size=ctx.serving.max_batch_size, typical=typical, max_dims=ctx.max_dims
    )
    workspace_mib = tier.tensorrt.workspace_mib if tier.tensorrt else 1024
    settings = tensorrt.EngineSettings(
        precision=tier.precision,
        workspace_bytes=workspace_mib << 20,
        timing_cache=ctx.out / tensorrt.TIMING_CACHE,
        calibration_cache=ctx.out / f".fulcrum-{tier.name}-int8-calibration.cache",
    )
    samples = tier.calibration.samples if tier.calibration else 512
    rows = ctx.split.calibration_rows(samples) if ctx.calibrate else None
    how = tensorrt.build_engine(
        source, plan, settings, ranges, calibration=validation.rows(ctx.data, rows) if rows else None
    )
    shapes = ", ".join(f"{name} {r.min}..{r.max}" for name, r in ranges.items())
    return plan, f"{how} engine built on {ctx.gpu.detail} (shapes {shapes})"


def _failure_reason(tier: Tier) -> str:
    if tier.backend == "tensorrt":
        return "EngineBuildFailed"
    return "QuantizationFailed" if tier.precision == "int8" else "ConversionFailed"


def build_tier(tier: Tier, ctx: TierContext) -> ManifestTier:
    """Build, check and write one tier (call :func:`unavailable` first)."""
    from model_repo_builder import repository, runtime
    from model_repo_builder.export import key_line
    from model_repo_builder.triton_config import ConfigError

    try:
        model_file, detail = _model_file(tier, ctx)
    except Exception as error:  # a conversion failure is the tier's state, not the build's
        message = f"{tier.precision} {tier.backend}: {key_line(error)}"
        return manifest_tier(tier, "Failed", _failure_reason(tier), message)
    metrics: dict[str, float] = {}
    gated_on = ""
    if tier.backend == "tensorrt":
        detail += "; gated and profiled through Triton on the pool's GPU"
    else:
        gate = validation.rows(ctx.data, ctx.split.gate)
        outputs = runtime.run_batched(runtime.session(model_file), gate, ctx.serving.max_batch_size)
        evaluation = acc.evaluate(ctx.reference, outputs, ctx.checks)
        metrics = evaluation.metrics
        gated_on = CPU_GATE
        if not evaluation.passed:
            message = f"{detail}; failed: {', '.join(evaluation.failures)}"
            return manifest_tier(
                tier,
                "Failed",
                "AccuracyCheckFailed",
                message,
                accuracy=metrics,
                validation=ctx.validation_of(tier, gated_on),
            )
    try:
        model_dir = repository.write_tier(
            ctx.out,
            tier.name,
            backend=tier.backend,
            target=ctx.target,
            model_file=model_file,
            inputs=ctx.graph_in,
            outputs=ctx.graph_out,
            serving=ctx.serving,
        )
    except ConfigError as error:
        return manifest_tier(tier, "Failed", "ConfigFailed", str(error), accuracy=metrics)
    size = repository.directory_size(model_dir)
    split = ctx.validation_of(tier, gated_on)
    return manifest_tier(
        tier, "Ready", "Built", detail, accuracy=metrics, validation=split, path=model_dir.name, size_bytes=size
    )

"""One tier: its model file (fp32 / fp16 / int8 ONNX, or a TensorRT plan), its accuracy, its repository entry.

Every outcome is a :class:`ManifestTier`: ``Ready``, ``Failed`` (``ConversionFailed``, ``QuantizationFailed``,
``EngineBuildFailed``, ``AccuracyCheckFailed``, ``ConfigFailed``) or ``Unavailable`` (``NoGPU``,
``NotServedLocally``, ``TensorRTNotInstalled``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fulcrum.api import ManifestTier, Tier
from model_repo_builder import accuracy as acc
from model_repo_builder.dtypes import Array, TensorInfo
from model_repo_builder.tiers.tensorrt import GpuCheck
from model_repo_builder.triton_config import ServingOptions, Target


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
    data: dict[str, Array]  # validation inputs
    calibrate: bool  # static int8 (validation data given) or dynamic
    reference: dict[str, Array]  # fp32 outputs on ``data``
    checks: list[acc.Check]
    serving: ServingOptions
    gpu: GpuCheck


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
    if not tensorrt.tensorrt_available():
        message = "the tensorrt package is not installed on the build image"
        return manifest_tier(tier, "Unavailable", "TensorRTNotInstalled", message)
    return None


def onnx_file(tier: Tier, ctx: TierContext) -> tuple[Path, str]:
    """The tier's ONNX file at its precision, and a line saying how it was made."""
    from model_repo_builder import validation
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
    calibration = validation.take(ctx.data, samples) if ctx.calibrate else None
    method = build_int8(ctx.exported, target, calibration, samples)
    note = method.partition(" ")[2]
    if method.startswith("static-qdq"):
        used = min(samples, len(next(iter(ctx.data.values()))))
        return target, f"int8 static QDQ, calibrated on {used} samples{' ' + note if note else ''}"
    return target, f"int8 dynamic quantisation (no validationData){' ' + note if note else ''}"


def _model_file(tier: Tier, ctx: TierContext) -> tuple[Path, str]:
    from model_repo_builder.tiers import tensorrt

    if tier.backend != "tensorrt":
        return onnx_file(tier, ctx)
    source = onnx_file(tier, ctx)[0] if tier.precision == "int8" else ctx.exported
    plan = ctx.work / f"{tier.name}.plan"
    shapes = {t.name: tuple(d if d > 0 else 1 for d in t.dims) for t in ctx.graph_in}
    tensorrt.build_engine(source, plan, tier.precision, input_shapes=shapes, max_batch_size=ctx.serving.max_batch_size)
    return plan, f"TensorRT {tier.precision} engine built on {ctx.gpu.detail}"


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
    if tier.backend == "tensorrt":
        detail += "; accuracy not measured (TensorRT engines run only on the GPU they were built for)"
    else:
        outputs = runtime.run_batched(runtime.session(model_file), ctx.data, ctx.serving.max_batch_size)
        evaluation = acc.evaluate(ctx.reference, outputs, ctx.checks)
        metrics = evaluation.metrics
        if not evaluation.passed:
            message = f"{detail}; failed: {', '.join(evaluation.failures)}"
            return manifest_tier(tier, "Failed", "AccuracyCheckFailed", message, accuracy=metrics)
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
    return manifest_tier(tier, "Ready", "Built", detail, accuracy=metrics, path=model_dir.name, size_bytes=size)

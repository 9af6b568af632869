"""TensorRT tiers: an engine (``model.plan``) built on the build node's GPU, for the Triton that serves it.

Without a GPU the tier is ``Unavailable`` with reason ``NoGPU``; without the ``tensorrt`` package,
``TensorRTNotInstalled``; with a TensorRT older than :data:`MIN_VERSION`, ``TensorRTTooOld``. A plan only runs
on the GPU model and the TensorRT version it was built with: the build Job runs on the pool the tier serves
on, and the plan is gated and profiled by loading it into that pool's Triton image (a version mismatch fails
the load there, with Triton's message, instead of at serving time).

The pure parts (shape ranges, network flags, version parsing, settings) are here without importing
``tensorrt``; :func:`build_engine` is the only function that needs it (and a GPU).

- **Shapes.** One optimisation profile: the batch dimension from 1 to ``maxBatchSize`` (optimum at half of
  it); every other dimension as the spec declares it: fixed sizes stay fixed, a ``-1`` dimension ranges
  from 1 to ``model.inputs[].maxDims`` (else the validation data's size), optimum at the validation data's.
- **Timing cache.** Kernel timings are loaded from and saved to a file kept in the repository, so the
  tiers of a build, and a rebuild into the same repository, do not time the same layers again.
- **Workspace.** ``tiers[].tensorrt.workspaceMiB`` (default 1024) bounds the builder's scratch memory.
- **int8.** From the QDQ graph of the int8 tier (explicit quantisation: the scales onnxruntime's static
  calibration wrote) when there is one; otherwise implicit int8 calibrated by TensorRT on the calibration
  rows, with a calibration cache kept in the repository and read back when it exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_repo_builder.dtypes import Array, TensorInfo

MIN_VERSION = (8, 6)
"""TensorRT 8.6 is the oldest that parses opset-18 ONNX and builds version-compatible plans."""
TIMING_CACHE = ".fulcrum-tensorrt-timing.cache"
"""The timing cache in the repository root (a file: Triton only loads directories)."""


@dataclass(frozen=True)
class GpuCheck:
    available: bool
    detail: str
    product: str | None = None
    """The GPU's name as GPU feature discovery labels nodes (``nvidia.com/gpu.product``: spaces become dashes)."""


def gpu_product(name: str) -> str:
    """``NVIDIA L4`` -> ``NVIDIA-L4``: the ``nvidia.com/gpu.product`` label value of a GPU name."""
    return re.sub(r"\s+", "-", name.strip())


def parse_smi(output: str) -> GpuCheck:
    """The first GPU of ``nvidia-smi -L`` output (``GPU 0: NVIDIA L4 (UUID: GPU-...)``)."""
    gpus = [line for line in output.splitlines() if line.startswith("GPU ")]
    if not gpus:
        return GpuCheck(False, "no GPU on the build node (nvidia-smi lists none)")
    name = gpus[0].partition(":")[2].split("(UUID")[0].strip()
    return GpuCheck(True, gpus[0], gpu_product(name) if name else None)


def detect_gpu() -> GpuCheck:
    """A GPU is there when ``nvidia-smi -L`` lists one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return GpuCheck(False, "no GPU on the build node (nvidia-smi not found)")
    try:
        result = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return GpuCheck(False, f"no usable GPU on the build node (nvidia-smi: {error})")
    if result.returncode != 0:
        return GpuCheck(False, "no GPU on the build node (nvidia-smi lists none)")
    return parse_smi(result.stdout)


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` -> ``(10, 3, 0, 26)`` (leading numeric parts only)."""
    parts = []
    for part in text.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def installed_version() -> str | None:
    """The ``tensorrt`` package's version, without importing it (None when it is not installed)."""
    from importlib import metadata

    for name in ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_cu12", "tensorrt-libs"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return None
    import tensorrt as trt  # an install without package metadata (e.g. NVIDIA's containers)

    return str(trt.__version__)


def version_problem(version: str | None) -> tuple[str, str] | None:
    """(reason, message) when this TensorRT cannot build tiers, else None."""
    if version is None:
        return ("TensorRTNotInstalled", "the tensorrt package is not installed on the build image")
    parsed = parse_version(version)
    if parsed[:2] < MIN_VERSION:
        wanted = ".".join(map(str, MIN_VERSION))
        return ("TensorRTTooOld", f"TensorRT {version} is older than {wanted}, the oldest the builder supports")
    return None


def network_flags(version: tuple[int, ...], explicit_batch_bit: int = 0) -> int:
    """``create_network`` flags: explicit batch on 8.x (a flag), nothing on 10+ (the only mode, flag removed)."""
    if version[:2] < MIN_VERSION:
        raise ValueError(f"TensorRT {'.'.join(map(str, version))} is not supported")
    return 0 if version[0] >= 10 else 1 << explicit_batch_bit


@dataclass(frozen=True)
class ShapeRange:
    """One input's optimisation profile: shapes with the batch dimension first."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def shape_ranges(
    inputs: Sequence[TensorInfo],
    *,
    max_batch_size: int,
    typical: Mapping[str, tuple[int, ...]],
    max_dims: Mapping[str, Sequence[int] | None] | None = None,
) -> dict[str, ShapeRange]:
    """The optimisation profile of every input (pure).

    ``typical``: each input's dims without the batch dimension as the validation data has them (the optimum
    of a ``-1`` dimension, and its maximum unless ``max_dims`` gives one). Fixed dims stay fixed.
    """
    ranges: dict[str, ShapeRange] = {}
    opt_batch = max(1, max_batch_size // 2)
    for tensor in inputs:
        seen = typical.get(tensor.name, ())
        bounds = (max_dims or {}).get(tensor.name)
        lo: list[int] = []
        opt: list[int] = []
        hi: list[int] = []
        for i, dim in enumerate(tensor.dims):
            if dim > 0:
                lo.append(dim)
                opt.append(dim)
                hi.append(dim)
                continue
            size = int(seen[i]) if i < len(seen) and seen[i] > 0 else 1
            top = int(bounds[i]) if bounds is not None and i < len(bounds) else size
            top = max(top, size)
            lo.append(1)
            opt.append(size)
            hi.append(top)
        ranges[tensor.name] = ShapeRange((1, *lo), (min(opt_batch, max_batch_size), *opt), (max_batch_size, *hi))
    return ranges


@dataclass(frozen=True)
class EngineSettings:
    precision: str  # fp32 | fp16 | int8
    workspace_bytes: int
    timing_cache: Path
    calibration_cache: Path | None = None
    """int8 without a QDQ graph: TensorRT's own calibration, cached here (read back when it exists)."""


def has_qdq(model: Any) -> bool:
    """Whether an ONNX model carries QuantizeLinear / DequantizeLinear nodes (explicit quantisation)."""
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node)


def build_engine(
    source: Path,
    out: Path,
    settings: EngineSettings,
    ranges: Mapping[str, ShapeRange],
    calibration: Mapping[str, Array] | None = None,
) -> str:
    """Build a serialised engine from ``source`` (ONNX) into ``out``; returns a line saying how.

    int8 from a QDQ ``source`` uses its scales; from a plain ``source``, TensorRT calibrates on
    ``calibration`` (or reads ``settings.calibration_cache``).
    """
    import tensorrt as trt

    from model_repo_builder import onnx_graph

    version = parse_version(str(trt.__version__))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit_bit = int(getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", 0))
    network = builder.create_network(network_flags(version, explicit_bit))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT {trt.__version__} could not parse {source.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    cache_bytes = settings.timing_cache.read_bytes() if settings.timing_cache.is_file() else b""
    timing_cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    how = f"TensorRT {trt.__version__} {settings.precision}"
    if settings.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if settings.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if has_qdq(onnx_graph.load(source)):
            how += " from the QDQ graph's scales"
        else:
            config.int8_calibrator = _calibrator(trt, calibration, settings.calibration_cache)
            how += " calibrated by TensorRT" + (
                " (calibration cache)" if settings.calibration_cache and settings.calibration_cache.is_file() else ""
            )
    profile = builder.create_optimization_profile()
    for name, shape in ranges.items():
        profile.set_shape(name, shape.min, shape.opt, shape.max)
    config.add_optimization_profile(profile)
    if settings.precision == "int8" and not has_qdq(onnx_graph.load(source)):
        config.set_calibration_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT {trt.__version__} could not build an engine from {source.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(engine))
    settings.timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return how


def _calibrator(trt: Any, data: Mapping[str, Array] | None, cache: Path | None) -> Any:
    """An entropy calibrator over ``data`` in batches of 32 (device buffers through torch), caching to ``cache``."""
    import torch

    batches: list[dict[str, Array]] = []
    if data:
        n = len(next(iter(data.values())))
        batches = [{k: np.ascontiguousarray(v[i : i + 32]) for k, v in data.items()} for i in range(0, n, 32)]
    if not batches and (cache is None or not cache.is_file()):
        raise RuntimeError("int8 without a QDQ graph needs calibration rows (accuracy.validationData)")

    class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self._batches = iter(batches)
            self._held: list[Any] = []

        def get_batch_size(self) -> int:
            return 32

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._held = [torch.from_numpy(batch[name]).cuda() for name in names]
            return [int(t.data_ptr()) for t in self._held]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache is not None and cache.is_file() else None

        def write_calibration_cache(self, value: bytes) -> None:
            if cache is not None:
                cache.write_bytes(bytes(value))

    return Calibrator()

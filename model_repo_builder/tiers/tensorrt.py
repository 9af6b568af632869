"""TensorRT tiers: an engine (``model.plan``) built from the fp32 ONNX file on the build node's GPU.

Without a GPU the tier is ``Unavailable`` with reason ``NoGPU``; without the ``tensorrt`` package it is
``Unavailable`` with reason ``TensorRTNotInstalled``. A plan only runs on the GPU model and TensorRT version
it was built with, so the build Job runs on the pool the tier is for.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuCheck:
    available: bool
    detail: str


def detect_gpu() -> GpuCheck:
    """A GPU is there when ``nvidia-smi -L`` lists one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return GpuCheck(False, "no GPU on the build node (nvidia-smi not found)")
    try:
        result = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return GpuCheck(False, f"no usable GPU on the build node (nvidia-smi: {error})")
    gpus = [line for line in result.stdout.splitlines() if line.startswith("GPU ")]
    if result.returncode != 0 or not gpus:
        return GpuCheck(False, "no GPU on the build node (nvidia-smi lists none)")
    return GpuCheck(True, gpus[0])


def tensorrt_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def build_engine(
    source: Path,
    out: Path,
    precision: str,
    *,
    input_shapes: dict[str, tuple[int, ...]],
    max_batch_size: int,
    calibration_cache: Path | None = None,
) -> None:
    """Build a serialised engine with an optimisation profile for batch 1..max_batch_size.

    ``input_shapes`` holds each input's dims without the batch dimension (no -1: TensorRT needs bounds).
    fp16 sets the FP16 builder flag; int8 uses ``INT8`` with the quantisation the ONNX file carries (QDQ).
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {source.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, dims in input_shapes.items():
        opt = max(1, max_batch_size // 2)
        profile.set_shape(name, (1, *dims), (opt, *dims), (max_batch_size, *dims))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT could not build an engine from {source.name} ({precision})")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(engine))

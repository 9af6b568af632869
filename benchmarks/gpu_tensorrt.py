"""TensorRT tiers of the ctr-ranker example on a GPU, against fp32 on the same GPU. NOT RUN YET.

Prepared for a session that has a GPU machine (run it through ``benchmarks/gpu_tensorrt.sh``). It:

1. builds the example with ``--target triton`` (so the ``fp16-trt`` tier, and any other tensorrt tier of the
   spec, goes through ``model_repo_builder.tiers.tensorrt.build_engine`` into ``model.plan``);
2. loads each plan with the TensorRT runtime (device buffers are torch CUDA tensors) and measures
   samples/s at batch 1 and at ``maxBatchSize`` (CUDA-synchronised wall time over ``--iterations`` calls
   after warm-up), and the plan's MaxAbsError against the onnxruntime CPU fp32 reference on the validation data;
3. measures the fp32 baseline on the same GPU: onnxruntime's CUDAExecutionProvider when ``onnxruntime-gpu``
   is installed, otherwise the exported fp32 ONNX is not runnable on the GPU and torch eager fp32 of the
   source program is used instead (the report says which);
4. prints a table and writes ``$OUT/gpu_tensorrt.json`` when ``OUT`` is set.

Needs: a GPU, ``tensorrt`` (Python API, 10.x), ``torch`` with CUDA, and the builder's packages
(onnx, onnxruntime, onnxconverter-common, pydantic, click, rich, pyyaml, tritonclient[grpc], fsspec).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import tensorrt as trt
import torch

from model_repo_builder.dtypes import Array
from model_repo_builder.pipeline import BuildOptions, build, load_spec
from model_repo_builder.runtime import run_batched, session

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "ctr-ranker" / "modeldeployment.yaml"


def _sync_time(fn: Any, iterations: int) -> float:
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iterations


def _trt_runner(plan: Path, feed: dict[str, Array]) -> tuple[Any, dict[str, Any]]:

    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan.read_bytes())
    context = engine.create_execution_context()
    stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    inputs = {k: torch.from_numpy(v).cuda() for k, v in feed.items()}
    outputs: dict[str, Any] = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            context.set_input_shape(name, tuple(inputs[name].shape))
            context.set_tensor_address(name, inputs[name].data_ptr())
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            dtype = torch.from_numpy(np.zeros(1, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype
            outputs[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, outputs[name].data_ptr())

    def run() -> None:
        context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()

    return run, outputs


def _baseline(exported: Path, feed: dict[str, Array]) -> tuple[str, Any]:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        sess = ort.InferenceSession(str(exported), providers=["CUDAExecutionProvider"])
        binding = sess.io_binding()
        for name, value in feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        for out in sess.get_outputs():
            binding.bind_output(out.name, "cuda")
        return "onnxruntime CUDAExecutionProvider fp32", lambda: sess.run_with_iobinding(binding)
    program = torch.export.load(str(SPEC.parent / "model.pt2")).module().cuda()
    args = [torch.from_numpy(feed[name]).cuda() for name in ("sparse", "dense")]

    def run() -> None:
        with torch.no_grad():
            program(*args)

    return "torch eager fp32 (onnxruntime-gpu not installed)", run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fulcrum-gpu-ctr-ranker"))
    parser.add_argument("--iterations", type=int, default=500)
    args = parser.parse_args()

    result = build(BuildOptions(spec_path=SPEC, out=args.out, target="triton", profile=False, force=True))
    for tier in result.manifest.tiers:
        print(f"{tier.name:<10} {tier.state:<12} {tier.reason}: {tier.message}")
    md = load_spec(SPEC)
    max_batch = md.spec.model.max_batch_size
    data = dict(np.load(SPEC.parent / "validation.npz"))
    exported = args.out / "fp32" / "1" / "model.onnx"
    reference = run_batched(session(exported), data, max_batch)

    report: dict[str, Any] = {"gpu": _gpu_name(), "maxBatchSize": max_batch, "tiers": {}}
    for batch in (1, max_batch):
        feed = {k: np.ascontiguousarray(v[:batch]) for k, v in data.items()}
        label, baseline = _baseline(exported, feed)
        base_s = _sync_time(baseline, args.iterations)
        report.setdefault("baseline", label)
        report["tiers"].setdefault("fp32-baseline", {})[f"batch{batch}SamplesPerSecond"] = batch / base_s
        for tier in result.manifest.tiers:
            if tier.backend != "tensorrt" or tier.state != "Ready" or tier.path is None:
                continue
            run, outputs = _trt_runner(args.out / tier.path / "1" / "model.plan", feed)
            seconds = _sync_time(run, args.iterations)
            row = report["tiers"].setdefault(tier.name, {})
            row[f"batch{batch}SamplesPerSecond"] = batch / seconds
            row[f"batch{batch}VsBaseline"] = base_s / seconds
            if batch == max_batch:
                errors = [
                    float(np.max(np.abs(outputs[name].float().cpu().numpy() - reference[name][:batch])))
                    for name in outputs
                ]
                row["maxAbsErrorVsFp32"] = max(errors)
    print(json.dumps(report, indent=2))
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "gpu_tensorrt.json").write_text(json.dumps(report, indent=2))


def _gpu_name() -> str:
    return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else "none"


if __name__ == "__main__":
    main()

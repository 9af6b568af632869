"""The fp32 tier: the export, graph-optimised offline by onnxruntime at a portable level."""

from __future__ import annotations

from pathlib import Path


def build_fp32(source: Path, out: Path) -> None:
    """Constant folding and redundant-node elimination (``ORT_ENABLE_BASIC``): the result still runs on every
    execution provider (the extended levels fuse into CPU-specific contrib ops)."""
    import onnxruntime as ort

    from model_repo_builder import onnx_graph

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    tmp = out.with_suffix(".opt.onnx")
    options.optimized_model_filepath = str(tmp)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    onnx_graph.save_single_file(onnx_graph.load(tmp), out)
    tmp.unlink(missing_ok=True)

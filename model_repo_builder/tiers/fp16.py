"""The fp16 tier: weights and activations in float16, IO types kept, ops that break in fp16 left in fp32."""

from __future__ import annotations

from pathlib import Path

# Control flow (Loop/If from EmbeddingBag, sequence ops...) and numerically fragile ops stay fp32. Added to
# onnxconverter-common's own DEFAULT_OP_BLOCK_LIST.
EXTRA_BLOCKED_OPS: tuple[str, ...] = (
    "Loop",
    "If",
    "Scan",
    "SequenceAt",
    "SequenceConstruct",
    "SequenceInsert",
    "SequenceEmpty",
    "SplitToSequence",
    "ConcatFromSequence",
    "Range",
    "CumSum",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "ReduceLogSumExp",
    "Softplus",
)


def blocked_ops() -> list[str]:
    from onnxconverter_common import float16

    return sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(EXTRA_BLOCKED_OPS))


def build_fp16(source: Path, out: Path) -> None:
    """Convert and check that onnxruntime loads the result (raises on failure)."""
    import onnxruntime as ort
    from onnxconverter_common import float16

    from model_repo_builder import onnx_graph

    model = onnx_graph.load(source)
    converted = float16.convert_float_to_float16(
        model, keep_io_types=True, op_block_list=blocked_ops(), disable_shape_infer=False
    )
    onnx_graph.save_single_file(converted, out)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])

"""The fp16 tier: weights and activations in float16, IO types kept, ops that break in fp16 left in fp32."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

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


def fix_cast_targets(model: Any) -> int:
    """Exported graphs carry ``Cast(to=FLOAT)`` nodes whose outputs the converter retypes to float16 without
    changing ``to``; onnxruntime then refuses the graph. Point those casts at FLOAT16. Returns how many."""
    fp32, fp16 = 1, 10
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    fixed = 0
    for node in model.graph.node:
        if node.op_type != "Cast" or not node.output or types.get(node.output[0]) != fp16:
            continue
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == fp32:
                attribute.i = fp16
                fixed += 1
    return fixed


def build_fp16(source: Path, out: Path) -> None:
    """Convert and check that onnxruntime loads the result (raises on failure)."""
    import onnxruntime as ort
    from onnxconverter_common import float16

    from model_repo_builder import onnx_graph

    model = onnx_graph.load(source)
    with warnings.catch_warnings():  # one warning per weight clipped to the fp16 range: summarised by accuracy
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=blocked_ops(), disable_shape_infer=False
        )
    fix_cast_targets(converted)
    onnx_graph.save_single_file(converted, out)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])

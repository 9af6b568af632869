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


CONTROL_FLOW = ("Loop", "If", "Scan")
_FLOAT, _FLOAT16 = 1, 10


def _subgraphs(node: Any) -> list[Any]:
    graphs = []
    for attribute in node.attribute:
        if attribute.HasField("g"):
            graphs.append(attribute.g)
        graphs.extend(attribute.graphs)
    return graphs


def _defined_and_used(graph: Any) -> tuple[set[str], set[str]]:
    """Names a (sub)graph defines and names it uses, nested subgraphs included."""
    defined = {v.name for v in graph.input} | {i.name for i in graph.initializer}
    used = {o.name for o in graph.output}
    for node in graph.node:
        defined.update(node.output)
        used.update(n for n in node.input if n)
        for sub in _subgraphs(node):
            d, u = _defined_and_used(sub)
            defined |= d
            used |= u
    return defined, used


def _rename_inputs(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for sub in _subgraphs(node):
            _rename_inputs(sub, old, new)
    for output in graph.output:
        if output.name == old:  # a body that passes an outer value straight through
            output.name = new


def fix_control_flow_outer_refs(model: Any) -> int:
    """Keep the fp32 bodies of blocked Loop / If / Scan nodes fed with fp32.

    Their subgraphs read outer values by name (EmbeddingBag's Loop reads the embedding table that way). The
    converter only guards a blocked node's explicit inputs, so such a value may have become float16 outside:
    feed the body a Cast back to float. Returns how many casts were added.
    """
    import onnx

    graph = model.graph
    types = {i.name: i.data_type for i in graph.initializer}
    types.update({v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info]})
    producer_types = {}
    for node in graph.node:
        if node.op_type == "Cast":
            for attribute in node.attribute:
                if attribute.name == "to":
                    producer_types[node.output[0]] = attribute.i
    added = 0
    index = 0
    while index < len(graph.node):
        node = graph.node[index]
        if node.op_type not in CONTROL_FLOW:
            index += 1
            continue
        outer: set[str] = set()
        for sub in _subgraphs(node):
            defined, used = _defined_and_used(sub)
            outer |= used - defined
        for name in sorted(outer):
            if types.get(name, producer_types.get(name)) != _FLOAT16:
                continue
            cast_name = f"{name}__fulcrum_fp32_{added}"
            cast = onnx.helper.make_node("Cast", [name], [cast_name], to=_FLOAT, name=f"fulcrum_fp32_cast_{added}")
            graph.node.insert(index, cast)
            index += 1
            for sub in _subgraphs(node):
                _rename_inputs(sub, name, cast_name)
            added += 1
        index += 1
    return added


def drop_noop_casts(model: Any) -> int:
    """Bypass top-level ``Cast`` nodes whose input already has the target type (exporters leave some).

    The converter would turn such a cast into a float16 one after a blocked node and then remove the pair as
    redundant, handing float32 to float16 consumers. Returns how many were bypassed.
    """
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    types = {i.name: i.data_type for i in graph.initializer}
    types.update({v.name: v.type.tensor_type.elem_type for v in [*graph.input, *inferred.graph.value_info]})
    outputs = {o.name for o in graph.output}
    replace: dict[str, str] = {}
    keep = []
    for node in graph.node:
        target = next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None
        source = replace.get(node.input[0], node.input[0]) if node.op_type == "Cast" else ""
        if target is not None and types.get(source) == target and node.output[0] not in outputs:
            replace[node.output[0]] = source
            continue
        keep.append(node)
    if not replace:
        return 0
    for node in keep:
        for i, name in enumerate(node.input):
            node.input[i] = replace.get(name, name)
        for sub in _subgraphs(node):
            for old, new in replace.items():
                _rename_inputs(sub, old, new)
    del graph.node[:]
    graph.node.extend(keep)
    return len(replace)


def build_fp16(source: Path, out: Path) -> None:
    """Convert and check that onnxruntime loads the result (raises on failure)."""
    import onnxruntime as ort
    from onnxconverter_common import float16

    from model_repo_builder import onnx_graph

    model = onnx_graph.load(source)
    drop_noop_casts(model)
    with warnings.catch_warnings():  # one warning per weight clipped to the fp16 range: summarised by accuracy
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=blocked_ops(), disable_shape_infer=False
        )
    fix_cast_targets(converted)
    fix_control_flow_outer_refs(converted)
    onnx_graph.save_single_file(converted, out)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])

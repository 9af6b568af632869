"""Reading and writing ONNX files: graph IO, single-file saving, opset (imports onnx)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from model_repo_builder.dtypes import ONNX_TO_TRITON, TensorInfo

OPSET = 18
"""The ONNX opset every exported model is pinned to (onnxruntime >= 1.14 and TensorRT >= 8.6 run it)."""

TWO_GIB = 2**31 - 1


def _dims(value: Any) -> tuple[int, ...]:
    shape = value.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in shape.dim)


def graph_io(model: onnx.ModelProto) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Inputs and outputs with the batch dimension (the first) stripped; initialisers are not inputs."""
    initialisers = {init.name for init in model.graph.initializer}

    def info(value: Any) -> TensorInfo:
        elem = value.type.tensor_type.elem_type
        dims = _dims(value)
        return TensorInfo(value.name, ONNX_TO_TRITON.get(elem, f"ONNX_TYPE_{elem}"), dims[1:])

    inputs = [info(v) for v in model.graph.input if v.name not in initialisers]
    outputs = [info(v) for v in model.graph.output]
    return inputs, outputs


def batch_dims(model: onnx.ModelProto) -> dict[str, int]:
    """First dimension of every graph input and output (-1 when dynamic)."""
    initialisers = {init.name for init in model.graph.initializer}
    values = [v for v in model.graph.input if v.name not in initialisers] + list(model.graph.output)
    return {v.name: (_dims(v)[0] if _dims(v) else 0) for v in values}


def load(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path), load_external_data=True)


def save_single_file(model: onnx.ModelProto, path: Path) -> None:
    """Save with every weight inside the file (Triton's onnxruntime backend wants one file per version)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() >= TWO_GIB:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="model.data")
    else:
        onnx.save(model, str(path), save_as_external_data=False)


def opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def op_types(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node}

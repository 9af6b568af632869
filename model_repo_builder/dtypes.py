"""Data type names: Triton (spec and config), ONNX tensor element types and numpy (pure, no onnx import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

# ONNX TensorProto.DataType numbers (stable in the ONNX spec) -> Triton names.
ONNX_TO_TRITON: dict[int, str] = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "BYTES",
    9: "BOOL",
    10: "FP16",
    11: "FP64",
    12: "UINT32",
    13: "UINT64",
    16: "BF16",
}

TRITON_TO_NUMPY: dict[str, type[np.generic]] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: name, Triton data type, dims *without* the batch dimension (-1 = dynamic)."""

    name: str
    data_type: str
    dims: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "dataType": self.data_type, "dims": list(self.dims)}


def numpy_dtype(triton_type: str) -> np.dtype[np.generic]:
    try:
        return np.dtype(TRITON_TO_NUMPY[triton_type])
    except KeyError as error:
        raise ValueError(f"data type {triton_type} has no numpy equivalent") from error

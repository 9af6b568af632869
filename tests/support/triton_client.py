"""Sending inference requests to a tritonserver over HTTP (tests)."""

from __future__ import annotations

import numpy as np
import tritonclient.http as http

from model_repo_builder.dtypes import ONNX_TO_TRITON, Array

_NUMPY_TO_TRITON = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float16): "FP16",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.bool_): "BOOL",
}
assert set(_NUMPY_TO_TRITON.values()) <= set(ONNX_TO_TRITON.values())


def infer(url: str, model: str, inputs: dict[str, Array], outputs: list[str], batch: int = 8) -> dict[str, Array]:
    """Run every sample through ``model``, ``batch`` samples a request; outputs concatenated."""
    client = http.InferenceServerClient(url)
    n = len(next(iter(inputs.values())))
    parts: dict[str, list[Array]] = {name: [] for name in outputs}
    for start in range(0, n, batch):
        request = []
        for name, array in inputs.items():
            chunk = np.ascontiguousarray(array[start : start + batch])
            tensor = http.InferInput(name, list(chunk.shape), _NUMPY_TO_TRITON[chunk.dtype])
            tensor.set_data_from_numpy(chunk)
            request.append(tensor)
        result = client.infer(model, request, outputs=[http.InferRequestedOutput(o) for o in outputs])
        for name in outputs:
            parts[name].append(result.as_numpy(name))
    client.close()
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}

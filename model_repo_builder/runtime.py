"""Running an ONNX model with onnxruntime on CPU, in batches (imports onnxruntime)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from model_repo_builder.dtypes import Array


def session(path: Path, threads: int = 0) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_batched(sess: Any, inputs: Mapping[str, Array], batch: int) -> dict[str, Array]:
    """Run every sample, ``batch`` at a time; outputs concatenated, keyed by output name."""
    names = [o.name for o in sess.get_outputs()]
    n = len(next(iter(inputs.values())))
    chunks: dict[str, list[Array]] = {name: [] for name in names}
    for start in range(0, n, batch):
        feed = {k: v[start : start + batch] for k, v in inputs.items()}
        for name, value in zip(names, sess.run(names, feed), strict=True):
            chunks[name].append(np.asarray(value))
    return {name: np.concatenate(parts) for name, parts in chunks.items()}

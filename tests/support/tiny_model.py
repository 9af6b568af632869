"""A tiny ONNX model (y = x @ W + b, dynamic batch) and its ModelDeployment, for tests of the build's plumbing
(sources, storage, Jobs) rather than of its numerics: it exports and builds in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_tiny_onnx(path: Path, seed: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.standard_normal((4, 2)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(2).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_manifest(
    name: str, uri: str, *, sha256: str | None = None, pool: dict[str, Any] | None = None
) -> dict[str, Any]:
    source: dict[str, Any] = {"uri": uri, "format": "onnx"}
    if sha256:
        source["sha256"] = sha256
    return {
        "apiVersion": "fulcrum.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"source": source, "maxBatchSize": 8},
            "tiers": [{"name": "fp32", "precision": "fp32", "backend": "onnxruntime"}],
            "slo": {"latencyMs": 50},
            "nodePools": [
                pool
                or {
                    "name": "local",
                    "nodeSelector": {"fulcrum.dev/pool": "local"},
                    "gpusPerReplica": 0,
                    "costPerHour": "0.05",
                    "replicaStartupSeconds": 10,
                }
            ],
        },
    }

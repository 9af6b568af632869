"""TensorRT's pure parts: shape ranges from the spec's dims, network flags by version, the version gate, GPU names.

Building an engine needs a GPU and the tensorrt package (benchmarks/gpu_tensorrt.sh); everything that decides
how it is built is computed here without either.
"""

from __future__ import annotations

import pytest

from model_repo_builder.dtypes import TensorInfo
from model_repo_builder.tiers import tensorrt as trt


def test_fixed_dims_stay_fixed_and_the_batch_ranges_to_max_batch_size() -> None:
    inputs = [TensorInfo("sparse", "INT64", (6,)), TensorInfo("dense", "FP32", (20,))]
    ranges = trt.shape_ranges(inputs, max_batch_size=64, typical={"sparse": (6,), "dense": (20,)})
    assert ranges["sparse"] == trt.ShapeRange((1, 6), (32, 6), (64, 6))
    assert ranges["dense"] == trt.ShapeRange((1, 20), (32, 20), (64, 20))


def test_dynamic_dims_range_from_one_to_max_dims_with_the_validation_size_as_optimum() -> None:
    inputs = [TensorInfo("tokens", "INT64", (-1,)), TensorInfo("image", "FP32", (3, -1, -1))]
    typical = {"tokens": (16,), "image": (3, 224, 224)}
    ranges = trt.shape_ranges(
        inputs, max_batch_size=8, typical=typical, max_dims={"tokens": [128], "image": [3, 512, 512]}
    )
    assert ranges["tokens"] == trt.ShapeRange((1, 1), (4, 16), (8, 128))  # never pinned to 1
    assert ranges["image"] == trt.ShapeRange((1, 3, 1, 1), (4, 3, 224, 224), (8, 3, 512, 512))
    # without maxDims the validation data's size is the largest, and a maxDims below it does not shrink it
    plain = trt.shape_ranges(inputs[:1], max_batch_size=1, typical=typical, max_dims={"tokens": [4]})
    assert plain["tokens"] == trt.ShapeRange((1, 1), (1, 16), (1, 16))


def test_versions_and_network_flags() -> None:
    assert trt.parse_version("10.3.0.26") == (10, 3, 0, 26)
    assert trt.parse_version("8.6.1.post1") == (8, 6, 1)
    assert trt.network_flags((10, 3)) == 0  # explicit batch is the only mode (the flag is gone)
    assert trt.network_flags((8, 6, 1), explicit_batch_bit=0) == 1  # 8.6 needs the EXPLICIT_BATCH flag
    with pytest.raises(ValueError, match="not supported"):
        trt.network_flags((8, 5))
    assert trt.version_problem("10.3.0") is None
    assert trt.version_problem("8.6.1") is None
    assert trt.version_problem(None) == (
        "TensorRTNotInstalled",
        "the tensorrt package is not installed on the build image",
    )
    reason, message = trt.version_problem("8.4.3") or ("", "")
    assert reason == "TensorRTTooOld" and "8.6" in message


def test_gpu_names_become_the_gpu_product_label() -> None:
    smi = "GPU 0: NVIDIA L4 (UUID: GPU-5e0c1f3e-aaaa-bbbb-cccc-000000000000)\nGPU 1: NVIDIA L4 (UUID: GPU-1)\n"
    check = trt.parse_smi(smi)
    assert check.available and check.product == "NVIDIA-L4"
    assert trt.gpu_product("NVIDIA H100 80GB HBM3") == "NVIDIA-H100-80GB-HBM3"
    assert not trt.parse_smi("No devices were found\n").available


def test_qdq_graphs_are_recognised() -> None:
    import onnx
    from onnx import TensorProto, helper

    def model(op: str) -> onnx.ModelProto:
        node = helper.make_node(op, ["x", "s", "z"] if "Linear" in op else ["x"], ["y"])
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
        return helper.make_model(graph)

    assert trt.has_qdq(model("QuantizeLinear"))
    assert not trt.has_qdq(model("Relu"))

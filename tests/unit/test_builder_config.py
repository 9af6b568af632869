"""Triton config generation through the ModelConfig protobuf, and IO checks against the graph."""

from __future__ import annotations

from typing import Any

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from model_repo_builder import triton_config as tc
from model_repo_builder.dtypes import TensorInfo

INPUTS = [TensorInfo("sparse", "INT64", (6,)), TensorInfo("dense", "FP32", (20,))]
OUTPUTS = [TensorInfo("score", "FP32", (1,))]
SERVING = tc.ServingOptions(
    max_batch_size=64, max_queue_delay_microseconds=250, preferred_batch_sizes=(16, 128), instances=2
)


def _config(backend: str = "onnxruntime", target: tc.Target = "triton", inputs: list[TensorInfo] = INPUTS) -> Any:
    files = tc.ModelFiles("model.plan" if backend == "tensorrt" else "model.onnx")
    return tc.model_config("fp32", backend, target, inputs=inputs, outputs=OUTPUTS, serving=SERVING, files=files)


def test_native_onnxruntime_config_round_trips() -> None:
    text = tc.to_text(_config())
    parsed = tc.parse(text)
    assert parsed.platform == "onnxruntime_onnx"
    assert parsed.backend == ""
    assert parsed.max_batch_size == 64
    assert [(i.name, tc.type_name(i.data_type), list(i.dims)) for i in parsed.input] == [
        ("sparse", "INT64", [6]),
        ("dense", "FP32", [20]),
    ]
    assert parsed.dynamic_batching.max_queue_delay_microseconds == 250
    assert list(parsed.dynamic_batching.preferred_batch_size) == [16]  # 128 > max_batch_size is dropped
    assert parsed.instance_group[0].count == 2
    assert parsed.instance_group[0].kind == mc.ModelInstanceGroup.KIND_AUTO
    warmup = parsed.model_warmup[0]
    assert warmup.batch_size == 1 and set(warmup.inputs) == {"sparse", "dense"}
    assert warmup.inputs["sparse"].zero_data
    assert tc.check_io(parsed, INPUTS, OUTPUTS) == []


def test_tensorrt_and_local_configs() -> None:
    trt = tc.parse(tc.to_text(_config("tensorrt")))
    assert trt.platform == "tensorrt_plan"
    assert trt.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert trt.default_model_filename == "model.plan"
    files = tc.ModelFiles("model.py", {tc.LOCAL_ONNX_PARAMETER: "model.onnx"})
    local = tc.model_config(
        "fp16", "onnxruntime", "local", inputs=INPUTS, outputs=OUTPUTS, serving=SERVING, files=files
    )
    assert local.backend == "python" and local.platform == ""
    assert local.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert local.parameters[tc.LOCAL_ONNX_PARAMETER].string_value == "model.onnx"


def test_a_queue_timeout_rejects_what_waited_too_long() -> None:
    assert not _config().dynamic_batching.HasField("default_queue_policy")  # no timeout unless the spec sets one
    serving = tc.ServingOptions(max_batch_size=64, queue_timeout_microseconds=15000)
    files = tc.ModelFiles("model.onnx")
    config = tc.model_config(
        "fp32", "onnxruntime", "triton", inputs=INPUTS, outputs=OUTPUTS, serving=serving, files=files
    )
    text = tc.to_text(config)
    assert "default_timeout_microseconds: 15000" in text
    policy = tc.parse(text).dynamic_batching.default_queue_policy
    assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
    assert policy.default_timeout_microseconds == 15000
    assert not policy.allow_timeout_override


def test_the_spec_sets_the_queue_timeout_of_every_tier() -> None:
    import copy

    from fulcrum.api import parse_model_deployment
    from model_repo_builder.pipeline import serving_options
    from tests.support.manifest_cases import BASE

    body = copy.deepcopy(BASE)
    assert serving_options(parse_model_deployment(body)).queue_timeout_microseconds is None
    body["spec"]["serving"] = {"dynamicBatching": {"queueTimeoutMicroseconds": 15000}}
    assert serving_options(parse_model_deployment(body)).queue_timeout_microseconds == 15000


def test_dynamic_dims_skip_warmup() -> None:
    config = _config(inputs=[TensorInfo("tokens", "INT64", (-1,))])
    assert len(config.model_warmup) == 0


def test_check_io_names_types_dims() -> None:
    parsed = tc.parse(tc.to_text(_config()))
    assert tc.check_io(parsed, [TensorInfo("sparse", "INT64", (6,))], OUTPUTS) == [
        "config inputs ['dense', 'sparse'] differ from the graph's ['sparse']"
    ]
    problems = tc.check_io(parsed, [TensorInfo("sparse", "INT32", (6,)), TensorInfo("dense", "FP32", (-1,))], OUTPUTS)
    assert problems == ["input sparse: config type INT64, graph type INT32"]
    problems = tc.check_io(parsed, INPUTS, [TensorInfo("score", "FP32", (1, 1))])
    assert problems == ["output score: config dims [1], graph dims [1, 1]"]


def test_types() -> None:
    assert tc.type_name(tc.triton_type("BYTES")) == "BYTES"
    assert tc.type_name(tc.triton_type("FP16")) == "FP16"
    with pytest.raises(tc.ConfigError):
        tc.triton_type("COMPLEX")
    with pytest.raises(tc.ConfigError):
        tc.model_config("x", "tvm", "triton", inputs=INPUTS, outputs=OUTPUTS, serving=SERVING, files=tc.ModelFiles("m"))


def test_serving_knobs_are_read_and_replaced_without_touching_the_rest() -> None:
    from google.protobuf import json_format

    from model_repo_builder.search import Knobs

    config = _config()
    assert tc.knobs_of(config) == Knobs(instances=2, max_queue_delay_us=250, preferred=(16,))
    changed = tc.with_knobs(config, Knobs(instances=3, max_queue_delay_us=0, preferred=(8, 64, 128)))
    assert tc.knobs_of(changed) == Knobs(3, 0, (8, 64))  # 128 > max_batch_size is dropped
    assert tc.knobs_of(config).instances == 2  # a copy: the original is untouched
    for field in ("input", "output", "model_warmup", "platform", "max_batch_size"):
        assert getattr(changed, field) == getattr(config, field)
    # the JSON Triton's model-control API takes as a config override parses back to the same message
    assert json_format.Parse(tc.to_json(changed), mc.ModelConfig()) == changed

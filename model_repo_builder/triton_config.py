"""Triton ``config.pbtxt`` through the ModelConfig protobuf that tritonclient ships (never string templates).

Targets:

- ``triton``: native backends. onnxruntime tiers -> ``platform: "onnxruntime_onnx"`` (instance kind left to
  Triton: GPU when the node has one, else CPU); tensorrt tiers -> ``platform: "tensorrt_plan"`` on KIND_GPU.
- ``local``: ``backend: "python"`` running onnxruntime in ``model.py`` on KIND_CPU, for the bundled CPU
  tritonserver of the nvidia-pytriton wheel.

Every config gets dynamic batching and an instance group from ``spec.serving`` and a warmup request
(batch 1, zero data: zeros are valid embedding indices). With ``serving.dynamicBatching.queueTimeoutMicroseconds``
the batcher's ``default_queue_policy`` rejects requests that waited longer than that (``timeout_action: REJECT``).
:func:`check_io` holds a config's inputs and outputs to the ONNX graph's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from model_repo_builder.dtypes import TensorInfo
from model_repo_builder.search import Knobs

Target = Literal["triton", "local"]
LOCAL_ONNX_PARAMETER = "onnx_file"


class ConfigError(ValueError):
    pass


def triton_type(name: str) -> int:
    key = "TYPE_STRING" if name == "BYTES" else f"TYPE_{name}"
    try:
        return int(mc.DataType.Value(key))
    except ValueError as error:
        raise ConfigError(f"data type {name!r} has no Triton equivalent") from error


def type_name(value: int) -> str:
    key = mc.DataType.Name(value)
    return "BYTES" if key == "TYPE_STRING" else key.removeprefix("TYPE_")


@dataclass(frozen=True)
class ServingOptions:
    max_batch_size: int
    max_queue_delay_microseconds: int = 500
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1
    warmup: bool = True
    queue_timeout_microseconds: int | None = None
    """Reject a request that waited longer than this in the queue (``default_queue_policy``); None: no timeout."""


@dataclass(frozen=True)
class ModelFiles:
    """What a model version directory holds, as far as the config is concerned."""

    default_model_filename: str
    parameters: dict[str, str] = field(default_factory=dict)


def model_config(
    name: str,
    backend: str,
    target: Target,
    *,
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    serving: ServingOptions,
    files: ModelFiles,
) -> Any:
    """The ModelConfig message of one tier."""
    config = mc.ModelConfig(name=name, max_batch_size=serving.max_batch_size)
    if target == "local":
        config.backend = "python"
        kind = mc.ModelInstanceGroup.KIND_CPU
    elif backend == "tensorrt":
        config.platform = "tensorrt_plan"
        kind = mc.ModelInstanceGroup.KIND_GPU
    elif backend == "onnxruntime":
        config.platform = "onnxruntime_onnx"
        kind = mc.ModelInstanceGroup.KIND_AUTO
    else:
        raise ConfigError(f"tiers[{name}].backend {backend!r} has no Triton config")
    config.default_model_filename = files.default_model_filename
    for key, value in files.parameters.items():
        config.parameters[key].string_value = value
    for tensor in inputs:
        config.input.add(name=tensor.name, data_type=triton_type(tensor.data_type), dims=list(tensor.dims))
    for tensor in outputs:
        config.output.add(name=tensor.name, data_type=triton_type(tensor.data_type), dims=list(tensor.dims))
    batching = config.dynamic_batching
    batching.max_queue_delay_microseconds = serving.max_queue_delay_microseconds
    preferred = [b for b in serving.preferred_batch_sizes if b <= serving.max_batch_size]
    batching.preferred_batch_size.extend(preferred)
    if serving.queue_timeout_microseconds is not None:
        # under overload Triton rejects what it cannot serve in time instead of making every request late
        policy = batching.default_queue_policy
        policy.timeout_action = mc.ModelQueuePolicy.REJECT
        policy.default_timeout_microseconds = serving.queue_timeout_microseconds
        policy.allow_timeout_override = False
    config.instance_group.add(count=serving.instances, kind=kind)
    if serving.warmup and all(-1 not in t.dims for t in inputs):  # a dynamic dim has no shape to warm up with
        warmup = config.model_warmup.add(name="warmup", batch_size=1, count=1)
        for tensor in inputs:
            warmup.inputs[tensor.name].CopyFrom(
                mc.ModelWarmup.Input(data_type=triton_type(tensor.data_type), dims=list(tensor.dims), zero_data=True)
            )
    return config


# --- serving knobs (the config search): separate from generation, which the served-name code also shapes ---


def knobs_of(config: Any) -> Knobs:
    """The serving knobs a config holds (instances of its first instance group, its dynamic batching)."""
    batching = config.dynamic_batching
    count = config.instance_group[0].count if config.instance_group else 1
    return Knobs(
        instances=max(1, int(count)),
        max_queue_delay_us=int(batching.max_queue_delay_microseconds),
        preferred=tuple(int(b) for b in batching.preferred_batch_size),
    )


def with_knobs(config: Any, knobs: Knobs) -> Any:
    """A copy of ``config`` serving with ``knobs`` (preferred sizes above max_batch_size dropped)."""
    changed = mc.ModelConfig()
    changed.CopyFrom(config)
    if not changed.instance_group:
        changed.instance_group.add(kind=mc.ModelInstanceGroup.KIND_AUTO)
    changed.instance_group[0].count = knobs.instances
    batching = changed.dynamic_batching
    batching.max_queue_delay_microseconds = knobs.max_queue_delay_us
    del batching.preferred_batch_size[:]
    batching.preferred_batch_size.extend(b for b in knobs.preferred if b <= changed.max_batch_size)
    return changed


def to_json(config: Any) -> str:
    """The JSON form Triton's model-control API takes as a config override (``load`` with ``config``)."""
    return str(json_format.MessageToJson(config, preserving_proto_field_name=True))


def to_text(config: Any) -> str:
    return str(text_format.MessageToString(config))


def parse(text: str) -> Any:
    return text_format.Parse(text, mc.ModelConfig())


def check_io(config: Any, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> list[str]:
    """Problems between a config's IO and the graph's (names, order-free; types; dims with -1 as a wildcard)."""
    problems: list[str] = []
    for what, declared, graph in (("input", config.input, inputs), ("output", config.output, outputs)):
        by_name = {t.name: t for t in graph}
        names = [d.name for d in declared]
        if sorted(names) != sorted(by_name):
            problems.append(f"config {what}s {sorted(names)} differ from the graph's {sorted(by_name)}")
            continue
        for d in declared:
            g = by_name[d.name]
            if type_name(d.data_type) != g.data_type:
                problems.append(f"{what} {d.name}: config type {type_name(d.data_type)}, graph type {g.data_type}")
            dims = list(d.dims)
            if len(dims) != len(g.dims) or any(a != b and -1 not in (a, b) for a, b in zip(dims, g.dims, strict=False)):
                problems.append(f"{what} {d.name}: config dims {dims}, graph dims {list(g.dims)}")
    return problems

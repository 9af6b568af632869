"""A tiny python-backend Triton model (y = 2x, with a configurable delay) for tests that need a real server
but not a real network: metrics parsing, scraping and load generation."""

from __future__ import annotations

from pathlib import Path

from model_repo_builder.repository import compile_source

CONFIG = """name: "{name}"
backend: "python"
max_batch_size: {max_batch_size}
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 4 ] }} ]
dynamic_batching {{ max_queue_delay_microseconds: 200 {queue_policy}}}
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
parameters {{ key: "delay_ms" value: {{ string_value: "{delay_ms}" }} }}
parameters {{ key: "factor" value: {{ string_value: "{factor}" }} }}
"""

MODEL_PY = """
import json
import os
import sys
import time

for path in os.environ.get("FULCRUM_SITE_PACKAGES", "").split(os.pathsep):
    if path and path not in sys.path:
        sys.path.append(path)

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.delay = float(params.get("delay_ms", {}).get("string_value", "0")) / 1000.0
        self.factor = float(params.get("factor", {}).get("string_value", "2"))

    def execute(self, requests):
        if self.delay:
            time.sleep(self.delay)
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            y = pb_utils.Tensor("y", (self.factor * x).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[y]))
        return responses
"""


def write_echo_repository(
    root: Path,
    name: str = "echo",
    delay_ms: float = 0.0,
    *,
    max_batch_size: int = 64,
    queue_timeout_microseconds: int | None = None,
    factor: float = 2.0,
) -> Path:
    """Write a model repository holding one echo model (y = factor * x); returns the repository root.

    ``queue_timeout_microseconds``: the queue policy the builder writes for ``serving.dynamicBatching
    .queueTimeoutMicroseconds`` (reject what waited longer). model.py is compiled as the builder compiles it.
    """
    model = root / name
    (model / "1").mkdir(parents=True, exist_ok=True)
    policy = (
        ""
        if queue_timeout_microseconds is None
        else "default_queue_policy { timeout_action: REJECT "
        f"default_timeout_microseconds: {queue_timeout_microseconds} allow_timeout_override: false }} "
    )
    config = CONFIG.format(
        name=name, delay_ms=delay_ms, max_batch_size=max_batch_size, queue_policy=policy, factor=factor
    )
    (model / "config.pbtxt").write_text(config)
    (model / "1" / "model.py").write_text(MODEL_PY)
    compile_source(model / "1" / "model.py")
    return root

"""A tiny python-backend Triton model (y = 2x, with a configurable delay) for tests that need a real server
but not a real network: metrics parsing, scraping and load generation."""

from __future__ import annotations

from pathlib import Path

CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 64
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 4 ] }} ]
dynamic_batching {{ max_queue_delay_microseconds: 200 }}
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
parameters {{ key: "delay_ms" value: {{ string_value: "{delay_ms}" }} }}
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

    def execute(self, requests):
        if self.delay:
            time.sleep(self.delay)
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            y = pb_utils.Tensor("y", (2.0 * x).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[y]))
        return responses
"""


def write_echo_repository(root: Path, name: str = "echo", delay_ms: float = 0.0) -> Path:
    """Write a model repository holding one echo model; returns the repository root."""
    model = root / name
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "config.pbtxt").write_text(CONFIG.format(name=name, delay_ms=delay_ms))
    (model / "1" / "model.py").write_text(MODEL_PY)
    return root

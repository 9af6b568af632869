"""Triton python-backend model that runs an ONNX file with onnxruntime on CPU (Fulcrum ``--target local``).

Copied verbatim into each tier's version directory by the builder. The ONNX file's name comes from the
config parameter ``onnx_file``. The python backend stub ignores PYTHONPATH, so the venv's site-packages come
from the ``FULCRUM_SITE_PACKAGES`` environment variable (set by ``fulcrum.local_triton``) or the config
parameter ``site_packages``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _add_site_packages(paths: str) -> None:
    for path in paths.split(os.pathsep):
        if path and path not in sys.path:
            sys.path.append(path)


# Before triton_python_backend_utils, which imports numpy.
_add_site_packages(os.environ.get("FULCRUM_SITE_PACKAGES", ""))

import triton_python_backend_utils as pb_utils  # noqa: E402  (provided by the python backend stub)


def _cpu_limit() -> int:
    """The container's CPU limit rounded up (cgroup v2 cpu.max or v1 cfs quota), 0 when unlimited or unknown.

    More threads than the CFS quota allows get the whole container throttled for the rest of each 100 ms period:
    a 1-CPU replica with one thread per core of a 2-core node answered its p99 in ~75 ms instead of ~15 ms.
    """
    candidates = (
        ("/sys/fs/cgroup/cpu.max", None),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
        ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us"),
    )
    for quota_file, period_file in candidates:
        try:
            with open(quota_file) as handle:
                fields = handle.read().split()
            if period_file is not None:
                with open(period_file) as handle:
                    fields.append(handle.read().strip())
        except OSError:
            continue
        if len(fields) < 2 or fields[0] == "max" or int(fields[0]) <= 0:
            return 0
        return max(1, -(-int(fields[0]) // int(fields[1])))
    return 0


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        parameters = config.get("parameters", {})
        _add_site_packages(parameters.get("site_packages", {}).get("string_value", ""))
        import numpy as np
        import onnxruntime as ort

        self._np = np
        name = parameters.get("onnx_file", {}).get("string_value", "model.onnx")
        path = os.path.join(args["model_repository"], args["model_version"], name)
        threads = int(parameters.get("intra_op_threads", {}).get("string_value", "0") or 0)
        options = ort.SessionOptions()
        threads = threads or _cpu_limit()  # 0: as many threads as the container may use (CPU limit, else cores)
        if threads > 0:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._inputs = [i["name"] for i in config["input"]]
        self._outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        np = self._np
        # Dynamic batching hands several requests at once: run them as one batch, then split.
        feeds = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self._inputs} for r in requests]
        sizes = [len(feed[self._inputs[0]]) for feed in feeds]
        batch = {n: np.concatenate([feed[n] for feed in feeds]) for n in self._inputs}
        try:
            results = self._session.run(self._outputs, batch)
        except Exception as error:  # one bad batch answers its requests with the error
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error))) for _ in requests]
        responses = []
        start = 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(n, np.ascontiguousarray(r[start : start + size]))
                for n, r in zip(self._outputs, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def finalize(self) -> None:
        self._session = None

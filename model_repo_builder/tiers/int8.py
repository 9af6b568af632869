"""The int8 tier: onnxruntime quantisation after its pre-processing (shape inference + optimisation).

Static QDQ quantisation (activations and weights int8, MinMax calibration) when calibration inputs are
given (``accuracy.validationData``); dynamic quantisation (int8 weights, activations quantised at run time)
otherwise.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from model_repo_builder.dtypes import Array


def _reader(inputs: Mapping[str, Array], samples: int, batch: int = 32) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            n = min(samples, *(len(a) for a in inputs.values()))
            self._batches = iter(
                [{k: np.ascontiguousarray(v[i : i + batch]) for k, v in inputs.items()} for i in range(0, n, batch)]
            )

        def get_next(self) -> dict[str, Array] | None:
            return next(self._batches, None)

    return Reader()


def build_int8(source: Path, out: Path, calibration: Mapping[str, Array] | None, samples: int = 512) -> str:
    """Quantise ``source`` into ``out``; returns the method used (``static-qdq`` or ``dynamic``, and a note
    when pre-processing had to be reduced or skipped)."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    prepared = out.with_suffix(".pre.onnx")
    note = ""
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
    except Exception:  # symbolic shape inference cannot follow some graphs (e.g. Loop with optional inputs)
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            note = " (pre-processed without symbolic shape inference)"
        except Exception:
            shutil.copyfile(source, prepared)
            note = " (pre-processing failed on this graph: quantised as exported)"
    try:
        if calibration:
            quantize_static(
                str(prepared),
                str(out),
                _reader(calibration, samples),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=False,
                extra_options={"ActivationSymmetric": True},
            )
            method = "static-qdq" + note
        else:
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8)
            method = "dynamic" + note
    finally:
        prepared.unlink(missing_ok=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    return method

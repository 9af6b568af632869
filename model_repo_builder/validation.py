"""Validation inputs: from ``accuracy.validationData`` (.npz, one array per input) or a seeded rule.

The seeded rule (used when the spec has no validation data), with ``numpy.random.default_rng(20240601)``
and inputs drawn in spec order:

- N = 256 samples; a dynamic (-1) dimension is 8;
- floating inputs: standard normal;
- BOOL inputs: fair coin;
- integer inputs: 0 or 1 uniformly (indices 0 and 1 are valid for any embedding table with two rows, so
  lookups stay in range without knowing the vocabulary).

Generated inputs are good for numeric comparisons, not for ranking metrics: give validation data for
TopKOverlap / Agreement checks that mean something, and for a meaningful int8 calibration.

The rows are split once per build (:func:`split`): int8 calibration takes the first rows, at most half of
them, and the accuracy gate of every tier uses only the rows after those, so no tier is judged on a row it
was calibrated on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_repo_builder.dtypes import Array, TensorInfo, numpy_dtype

SEED = 20240601
GENERATED_SAMPLES = 256
DYNAMIC_DIM = 8


class ValidationDataError(ValueError):
    pass


def generate(inputs: Sequence[TensorInfo], samples: int = GENERATED_SAMPLES, seed: int = SEED) -> dict[str, Array]:
    rng = np.random.default_rng(seed)
    arrays: dict[str, Array] = {}
    for tensor in inputs:
        shape = (samples, *(d if d > 0 else DYNAMIC_DIM for d in tensor.dims))
        dtype = numpy_dtype(tensor.data_type)
        if np.issubdtype(dtype, np.floating):
            arrays[tensor.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            arrays[tensor.name] = rng.integers(0, 2, shape).astype(np.bool_)
        elif np.issubdtype(dtype, np.integer):
            arrays[tensor.name] = rng.integers(0, 2, shape).astype(dtype)
        else:
            raise ValidationDataError(
                f"model.inputs[{tensor.name}]: cannot generate {tensor.data_type} inputs; give accuracy.validationData"
            )
    return arrays


def load_npz(path: Path, inputs: Sequence[TensorInfo], field: str = "accuracy.validationData") -> dict[str, Array]:
    """Arrays named after the inputs, cast to the input types, same sample count (never unpickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            found = {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        raise ValidationDataError(f"{field}: {path.name} is not a readable .npz file: {error}") from error
    missing = [t.name for t in inputs if t.name not in found]
    if missing:
        raise ValidationDataError(f"{field}: {path.name} has no arrays named {missing} (it has {sorted(found)})")
    arrays: dict[str, Array] = {}
    for tensor in inputs:
        array = found[tensor.name]
        expected = tuple(tensor.dims)
        if array.ndim != len(expected) + 1 or any(
            e > 0 and a != e for a, e in zip(array.shape[1:], expected, strict=True)
        ):
            raise ValidationDataError(
                f"{field}: array {tensor.name!r} has shape {list(array.shape)}, "
                f"expected [N, {', '.join(map(str, expected))}]"
            )
        arrays[tensor.name] = np.ascontiguousarray(array.astype(numpy_dtype(tensor.data_type), copy=False))
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise ValidationDataError(
            f"{field}: arrays must have the same, non-zero number of samples (found {sorted(counts)})"
        )
    return arrays


def take(arrays: Mapping[str, Array], n: int) -> dict[str, Array]:
    return {k: v[:n] for k, v in arrays.items()}


@dataclass(frozen=True)
class Split:
    """Row ranges ``[start, end)`` of the validation data: calibration (None: nothing calibrates) and gate."""

    calibration: tuple[int, int] | None
    gate: tuple[int, int]

    def calibration_rows(self, samples: int) -> tuple[int, int] | None:
        """The rows one int8 tier asking for ``samples`` calibrates on (a prefix of the calibration range)."""
        if self.calibration is None:
            return None
        start, end = self.calibration
        return (start, min(end, start + samples))


def split(total: int, calibration_samples: int | None) -> Split:
    """Calibration: the first ``min(calibration_samples, total // 2)`` rows; the gate: every row after them.

    ``calibration_samples`` is the most any tier asks for (None or 0: no tier calibrates, the gate uses every
    row). Half of the rows, at least, always stay for the gate.
    """
    if total < 1:
        raise ValidationDataError("the validation data has no rows")
    calibrate = min(calibration_samples or 0, total // 2)
    if calibrate <= 0:
        return Split(None, (0, total))
    return Split((0, calibrate), (calibrate, total))


def rows(arrays: Mapping[str, Array], span: tuple[int, int]) -> dict[str, Array]:
    start, end = span
    return {k: v[start:end] for k, v in arrays.items()}

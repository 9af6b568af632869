"""Validation inputs: the documented seeded rule and .npz loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_repo_builder import validation
from model_repo_builder.dtypes import TensorInfo

INPUTS = [TensorInfo("ids", "INT64", (6,)), TensorInfo("x", "FP32", (-1,)), TensorInfo("mask", "BOOL", (2,))]


def test_generated_inputs_follow_the_rule() -> None:
    arrays = validation.generate(INPUTS)
    again = validation.generate(INPUTS)
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)
    assert arrays["ids"].shape == (256, 6) and arrays["ids"].dtype == np.int64
    assert set(np.unique(arrays["ids"])) == {0, 1}
    assert arrays["x"].shape == (256, 8) and arrays["x"].dtype == np.float32
    assert arrays["mask"].dtype == np.bool_
    with pytest.raises(validation.ValidationDataError, match="BYTES"):
        validation.generate([TensorInfo("s", "BYTES", (1,))])


def test_npz_is_checked_and_cast(tmp_path: Path) -> None:
    path = tmp_path / "v.npz"
    np.savez(path, ids=np.zeros((4, 6), dtype=np.int32), x=np.ones((4, 3)), mask=np.ones((4, 2), dtype=bool))
    arrays = validation.load_npz(path, INPUTS)
    assert arrays["ids"].dtype == np.int64 and arrays["x"].dtype == np.float32
    np.savez(path, ids=np.zeros((4, 5)), x=np.ones((4, 3)), mask=np.ones((4, 2)))
    with pytest.raises(validation.ValidationDataError, match=r"'ids' has shape \[4, 5\], expected \[N, 6\]"):
        validation.load_npz(path, INPUTS)
    np.savez(path, ids=np.zeros((4, 6)))
    with pytest.raises(validation.ValidationDataError, match=r"no arrays named \['x', 'mask'\]"):
        validation.load_npz(path, INPUTS)
    np.savez(path, ids=np.zeros((4, 6)), x=np.ones((3, 3)), mask=np.ones((4, 2)))
    with pytest.raises(validation.ValidationDataError, match="same, non-zero number"):
        validation.load_npz(path, INPUTS)


@pytest.mark.parametrize(
    ("total", "samples"), [(512, 256), (512, 512), (512, 10_000), (3, 1), (1, 5), (256, None), (100, 0), (1000, 1)]
)
def test_gate_rows_and_calibration_rows_never_overlap(total: int, samples: int | None) -> None:
    split = validation.split(total, samples)
    gate = set(range(*split.gate))
    assert gate and max(gate) == total - 1  # the gate always has rows, up to the last
    if split.calibration is None:
        assert gate == set(range(total))
        return
    calibration = set(range(*split.calibration))
    assert calibration and not calibration & gate
    assert calibration | gate == set(range(total))
    assert len(gate) >= total / 2  # at least half the rows stay for the gate
    for asked in (1, 7, samples or 1, 10_000):  # each int8 tier calibrates on a prefix of the calibration rows
        rows = split.calibration_rows(asked)
        assert rows is not None and not set(range(*rows)) & gate


def test_the_example_split_is_fixed() -> None:
    split = validation.split(512, 256)
    assert (split.calibration, split.gate) == ((0, 256), (256, 512))
    arrays = {"x": np.arange(512)}
    assert validation.rows(arrays, split.gate)["x"][0] == 256

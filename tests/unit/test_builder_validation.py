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

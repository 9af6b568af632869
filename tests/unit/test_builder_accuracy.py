"""Accuracy metrics and checks against the fp32 reference."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from fulcrum.api import AccuracyCheck
from model_repo_builder import accuracy as acc


def test_identical_outputs_are_perfect() -> None:
    ref = np.linspace(0, 1, 50, dtype=np.float32).reshape(50, 1)
    assert acc.max_abs_error(ref, ref) == 0.0
    assert acc.mean_abs_error(ref, ref) == 0.0
    assert acc.cosine(ref, ref) == pytest.approx(1.0)
    assert acc.top_k_overlap(ref, ref, 10) == 1.0
    assert acc.agreement(ref, ref, 0.5) == 1.0


def test_errors() -> None:
    ref = np.array([[0.0], [1.0], [2.0], [3.0]])
    out = ref + np.array([[0.1], [-0.3], [0.0], [0.2]])
    assert acc.max_abs_error(ref, out) == pytest.approx(0.3)
    assert acc.mean_abs_error(ref, out) == pytest.approx(0.15)


def test_cosine_edge_cases() -> None:
    zeros = np.zeros((3, 2))
    assert acc.cosine(zeros, zeros) == 1.0
    assert acc.cosine(zeros, np.ones((3, 2))) == 0.0
    assert acc.cosine(np.ones((3, 2)), -np.ones((3, 2))) == pytest.approx(-1.0)


def test_top_k_overlap_over_samples_for_scores() -> None:
    ref = np.arange(10, dtype=np.float64).reshape(10, 1)  # top-3: 9, 8, 7
    out = ref.copy()
    out[9, 0] = -1.0  # the best item falls out of the tier's top-3 (now 8, 7, 6)
    assert acc.top_k_overlap(ref, out, 3) == pytest.approx(2 / 3)
    assert acc.top_k_overlap(ref, out, 100) == 1.0  # k capped at the number of items


def test_top_k_overlap_per_row_for_classes() -> None:
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    out = np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1]])
    assert acc.top_k_overlap(ref, out, 1) == pytest.approx(0.5)


def test_agreement_uses_threshold_inclusive() -> None:
    ref = np.array([0.2, 0.5, 0.7, 0.9])
    out = np.array([0.6, 0.49, 0.7, 0.9])
    assert acc.agreement(ref, out, 0.5) == pytest.approx(0.5)
    assert acc.agreement(ref, out, 0.1) == 1.0


def test_checks_from_spec_and_evaluate_worst_output() -> None:
    specs = [
        AccuracyCheck(metric="MeanAbsError", max=Decimal("0.01")),
        AccuracyCheck(metric="TopKOverlap", k=2, min=Decimal("0.9")),
        AccuracyCheck(metric="Agreement", min=Decimal("0.75")),
    ]
    checks = acc.checks_from_spec(specs)
    assert [(c.metric, c.bound, c.k, c.threshold) for c in checks] == [
        ("MeanAbsError", 0.01, 100, 0.5),
        ("TopKOverlap", 0.9, 2, 0.5),
        ("Agreement", 0.75, 100, 0.5),
    ]
    ref = {"a": np.array([[0.1], [0.2], [0.9], [0.8]]), "b": np.ones((4, 3))}
    good = {"a": ref["a"] + 0.001, "b": ref["b"]}
    evaluation = acc.evaluate(ref, good, checks)
    assert evaluation.passed
    assert set(evaluation.metrics) == set(acc.METRICS)
    bad = {"a": ref["a"], "b": ref["b"] + 0.05}  # output b is worse: the worst output decides
    evaluation = acc.evaluate(ref, bad, checks)
    assert not evaluation.passed
    assert evaluation.metrics["MeanAbsError"] == pytest.approx(0.05)
    assert evaluation.failures == ["MeanAbsError 0.05 (needs <= 0.01)"]


def test_nan_never_passes() -> None:
    check = acc.Check("Cosine", 0.9)
    assert not check.passes(float("nan"))
    evaluation = acc.evaluate({"y": np.ones((2, 1))}, {"y": np.full((2, 1), np.nan)}, [acc.Check("MaxAbsError", 1.0)])
    assert not evaluation.passed


def test_missing_output_fails() -> None:
    evaluation = acc.evaluate({"y": np.ones((2, 1))}, {}, [])
    assert evaluation.failures == ["outputs missing: ['y']"]

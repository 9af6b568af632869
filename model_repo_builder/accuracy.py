"""Accuracy of a tier against the fp32 reference (pure numpy).

Every metric is computed per output tensor and the worst value across outputs is kept:

- ``MaxAbsError``  max |tier - ref|;
- ``MeanAbsError`` mean |tier - ref|;
- ``Cosine``       cosine similarity of the flattened outputs (1.0 when both are all zeros);
- ``TopKOverlap``  for an output with one value per sample ([N] or [N, 1], e.g. a ranking score): the share of
  the reference's top-k samples that are also the tier's top-k; for [N, C] outputs (C > 1), the mean per-row
  share over the top-k classes. k is capped at the number of items;
- ``Agreement``    share of values on the same side of the threshold (``>= threshold``) in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from model_repo_builder.dtypes import Array

METRICS = ("MaxAbsError", "MeanAbsError", "Cosine", "TopKOverlap", "Agreement")
LOWER_IS_BETTER = frozenset({"MaxAbsError", "MeanAbsError"})
DEFAULT_K = 100
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Check:
    """One check: metric, bound (max for errors, min for similarities), k and threshold where they apply."""

    metric: str
    bound: float
    k: int = DEFAULT_K
    threshold: float = DEFAULT_THRESHOLD

    @property
    def upper(self) -> bool:
        return self.metric in LOWER_IS_BETTER

    def passes(self, value: float) -> bool:
        if not np.isfinite(value):
            return False
        return value <= self.bound if self.upper else value >= self.bound

    def describe(self, value: float) -> str:
        op = "<=" if self.upper else ">="
        return f"{self.metric} {value:.6g} (needs {op} {self.bound:g})"


def checks_from_spec(checks: Sequence[object]) -> list[Check]:
    """``fulcrum.api.AccuracyCheck`` list -> :class:`Check` list."""
    result = []
    for c in checks:
        bound: Decimal | None = getattr(c, "max", None)
        if bound is None:
            bound = getattr(c, "min", None)
        assert bound is not None
        result.append(
            Check(
                metric=str(getattr(c, "metric")),  # noqa: B009
                bound=float(bound),
                k=int(getattr(c, "effective_k")),  # noqa: B009
                threshold=float(getattr(c, "effective_threshold")),  # noqa: B009
            )
        )
    return result


def _as2d(a: Array) -> Array:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1)
    return a.reshape(a.shape[0], -1)


def max_abs_error(ref: Array, out: Array) -> float:
    return float(np.max(np.abs(_as2d(out) - _as2d(ref)))) if np.size(ref) else 0.0


def mean_abs_error(ref: Array, out: Array) -> float:
    return float(np.mean(np.abs(_as2d(out) - _as2d(ref)))) if np.size(ref) else 0.0


def cosine(ref: Array, out: Array) -> float:
    r, o = _as2d(ref).ravel(), _as2d(out).ravel()
    nr, no = float(np.linalg.norm(r)), float(np.linalg.norm(o))
    if nr == 0.0 and no == 0.0:
        return 1.0
    if nr == 0.0 or no == 0.0:
        return 0.0
    return float(np.dot(r, o) / (nr * no))


def _top(values: Array, k: int) -> set[int]:
    # stable: ties broken by index, so identical outputs overlap fully
    order = np.argsort(-values, kind="stable")
    return {int(i) for i in order[:k]}


def top_k_overlap(ref: Array, out: Array, k: int = DEFAULT_K) -> float:
    r, o = _as2d(ref), _as2d(out)
    if r.size == 0:
        return 1.0
    if r.shape[1] == 1:
        kk = max(1, min(k, r.shape[0]))
        return len(_top(r[:, 0], kk) & _top(o[:, 0], kk)) / kk
    kk = max(1, min(k, r.shape[1]))
    return float(np.mean([len(_top(r[i], kk) & _top(o[i], kk)) / kk for i in range(r.shape[0])]))


def agreement(ref: Array, out: Array, threshold: float = DEFAULT_THRESHOLD) -> float:
    r, o = _as2d(ref), _as2d(out)
    if r.size == 0:
        return 1.0
    return float(np.mean((r >= threshold) == (o >= threshold)))


def metric(name: str, ref: Array, out: Array, k: int = DEFAULT_K, threshold: float = DEFAULT_THRESHOLD) -> float:
    if name == "MaxAbsError":
        return max_abs_error(ref, out)
    if name == "MeanAbsError":
        return mean_abs_error(ref, out)
    if name == "Cosine":
        return cosine(ref, out)
    if name == "TopKOverlap":
        return top_k_overlap(ref, out, k)
    if name == "Agreement":
        return agreement(ref, out, threshold)
    raise ValueError(f"unknown accuracy metric {name!r} (one of {', '.join(METRICS)})")


def worst(name: str, values: Sequence[float]) -> float:
    return max(values) if name in LOWER_IS_BETTER else min(values)


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def evaluate(reference: Mapping[str, Array], outputs: Mapping[str, Array], checks: Sequence[Check]) -> Evaluation:
    """Every metric (worst across outputs; k / threshold from the spec's check when it has one) and the checks."""
    names = [n for n in reference if n in outputs]
    missing = sorted(set(reference) - set(outputs))
    params: dict[str, tuple[int, float]] = {m: (DEFAULT_K, DEFAULT_THRESHOLD) for m in METRICS}
    for check in checks:
        params[check.metric] = (check.k, check.threshold)
    values: dict[str, float] = {}
    for m in METRICS:
        k, threshold = params[m]
        values[m] = worst(m, [metric(m, reference[n], outputs[n], k, threshold) for n in names]) if names else 0.0
    failures = [f"outputs missing: {missing}"] if missing else []
    for check in checks:
        value = (
            worst(
                check.metric, [metric(check.metric, reference[n], outputs[n], check.k, check.threshold) for n in names]
            )
            if names
            else float("nan")
        )
        if not check.passes(value):
            failures.append(check.describe(value))
    return Evaluation(values, failures)

"""The recent request-rate trend: a least-squares slope over a short window, extrapolated only upward."""

from __future__ import annotations

from collections.abc import Sequence


def slope(history: Sequence[tuple[float, float]], now: float, window_seconds: float) -> float:
    """Least-squares slope (rps per second) of the samples taken in the last ``window_seconds``."""
    samples = [(t, r) for t, r in history if now - t <= window_seconds]
    if len(samples) < 2:
        return 0.0
    n = float(len(samples))
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var <= 0.0:
        return 0.0
    return sum((t - mean_t) * (r - mean_r) for t, r in samples) / var


def forecast(rate: float, rate_slope: float, horizon_seconds: float) -> float:
    """The rate expected ``horizon_seconds`` ahead: a rising trend is extrapolated, a falling one is not."""
    return rate + max(0.0, rate_slope) * max(0.0, horizon_seconds)

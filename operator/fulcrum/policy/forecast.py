"""What the load may do next, learnt from what it did: the trend, its usual swings, and bursts that recur.

Forecasts in requests per second ``h`` seconds ahead (``decide`` combines them):

- the **trend** ``rate + max(0, slope) x h`` (least-squares slopes over a long and a short window): ramps.
- the **swings** ``rate x G_q(h)``: a quantile ``q`` of the growth seen over ``h`` seconds (the rate at the end
  over the rate at the start, the highest over all horizons up to ``h``), from exponentially decayed histograms
  (:class:`Growth`), never above the highest rate seen lately: noise and wander.
- **recurring bursts** (:class:`Bursts`): a burst is a rise of at least ``BURST_RISE`` over the median rate of the
  last few minutes, two ticks in a row; it ends when the rate is back near where it started (one that lasts over
  half an hour is a new level, not a burst). A burst seen once may be a one-off (a
  flash sale); once bursts recur, the fleet keeps room for the highest of the last hours: ``baseline x that
  height``.

The accurate tier is sized for the trend and the usual swings; the envelope (the highest of all three) is what
the fleet must survive where it cannot grow in time: replicas start too slowly for a burst, a hot switch to a
faster tier does not. Pure and cheap: a few numbers per horizon, updated once per tick.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

HORIZONS: tuple[float, ...] = (30.0, 60.0, 120.0, 240.0, 480.0, 960.0)
"""Window lengths (seconds) whose growth is learnt; other horizons interpolate (log-linear) or clamp."""
BIN = 0.05
"""Width of a histogram bin in ln(growth): 5 % steps."""
BINS = 57
"""Bin 0 holds no growth (the rate did not rise); bin k holds growth in [e^(k-1) BIN, e^(k BIN)); up to 16x."""
RESCALE = 1e9


def slope(history: Sequence[tuple[float, float]], now: float, window_seconds: float, *, sure: bool = False) -> float:
    """Least-squares slope (rps per second) of the samples taken in the last ``window_seconds``.

    ``sure``: the slope minus its standard error (not below 0 when the slope is positive): only the part of a
    rise that the samples' scatter cannot explain, so noise is not extrapolated.
    """
    n = 0
    sum_t = sum_r = 0.0
    for t, r in reversed(history):
        if now - t > window_seconds:
            break
        n += 1
        sum_t += t
        sum_r += r
    if n < 2:
        return 0.0
    mean_t, mean_r = sum_t / n, sum_r / n
    var = cov = 0.0
    samples = history[len(history) - n :]
    for t, r in samples:
        dt = t - mean_t
        var += dt * dt
        cov += dt * (r - mean_r)
    if var <= 0.0:
        return 0.0
    fitted = cov / var
    if not sure:
        return fitted
    if n < 3:
        return 0.0
    residual = sum((r - mean_r - fitted * (t - mean_t)) ** 2 for t, r in samples)
    error = math.sqrt(residual / (n - 2) / var)
    if fitted > 0.0:
        return max(0.0, fitted - error)
    return min(0.0, fitted + error)


def forecast(rate: float, rate_slope: float, horizon_seconds: float) -> float:
    """The rate expected ``horizon_seconds`` ahead: a rising trend is extrapolated, a falling one is not."""
    return rate + max(0.0, rate_slope) * max(0.0, horizon_seconds)


def _bin(growth: float) -> int:
    if growth <= 1.0:
        return 0
    return min(BINS - 1, 1 + int(math.log(growth) / BIN))


@dataclass(frozen=True)
class Growth:
    """Exponentially decayed histograms of the growth over each horizon in :data:`HORIZONS`.

    A sample taken at time ``t`` weighs ``exp((t - reference) / memory)``: rather than decaying every weight at
    every tick, new samples weigh more (and everything is rescaled when the weights grow large).
    """

    reference: float = 0.0
    weights: tuple[tuple[float, ...], ...] = ()

    def add(self, samples: Sequence[tuple[int, float]], now: float, memory_seconds: float) -> Growth:
        """Fold in ``(horizon index, growth)`` samples taken at ``now``."""
        if not samples:
            return self
        reference = self.reference if self.weights else now
        rows = [list(row) for row in self.weights] if self.weights else [[0.0] * BINS for _ in HORIZONS]
        weight = math.exp(min(700.0, (now - reference) / memory_seconds))
        if weight > RESCALE:
            rows = [[w / weight for w in row] for row in rows]
            reference, weight = now, 1.0
        for index, growth in samples:
            rows[index][_bin(growth)] += weight
        return Growth(reference, tuple(tuple(row) for row in rows))

    def quantile(self, index: int, q: float, now: float, memory_seconds: float, prior: float) -> float:
        """The ``q`` quantile of the growth over ``HORIZONS[index]``; ``prior`` samples of no growth are added.

        The prior (in samples of the current weight) keeps a short history from defining the envelope.
        """
        return self.quantiles(index, (q,), now, memory_seconds, prior)[0]

    def quantiles(
        self, index: int, qs: Sequence[float], now: float, memory_seconds: float, prior: float
    ) -> list[float]:
        """Several quantiles of the growth over ``HORIZONS[index]`` at once (see :meth:`quantile`)."""
        if not self.weights:
            return [1.0 for _ in qs]
        row = self.weights[index]
        scale = math.exp(min(700.0, (now - self.reference) / memory_seconds))
        total = sum(row) + prior * scale
        cumulative = list(accumulate(reversed(row[1:])))  # weight in bins BINS-1, BINS-2, ..., 1
        out = []
        for q in qs:
            above = (1.0 - q) * total
            position = bisect_right(cumulative, above)
            if position >= len(cumulative):
                out.append(1.0)
                continue
            k = BINS - 1 - position
            seen = cumulative[position - 1] if position > 0 else 0.0
            weight = row[k]
            inside = (above - seen) / weight if weight > 0.0 else 0.0
            out.append(math.exp(BIN * (k - inside)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Sparse JSON form: per horizon, ``[[bin, weight], ...]`` of the non-empty bins."""
        if not self.weights:
            return {}
        return {
            "reference": self.reference,
            "horizons": {
                f"{h:g}": [[k, w] for k, w in enumerate(row) if w > 0.0]
                for h, row in zip(HORIZONS, self.weights, strict=True)
            },
        }

    @classmethod
    def from_dict(cls, data: Any) -> Growth:
        if not isinstance(data, dict) or not data.get("horizons"):
            return cls()
        rows = []
        for h in HORIZONS:
            row = [0.0] * BINS
            for k, w in data["horizons"].get(f"{h:g}", ()):
                if 0 <= int(k) < BINS:
                    row[int(k)] = float(w)
            rows.append(tuple(row))
        return cls(float(data.get("reference", 0.0)), tuple(rows))


def growth_samples(history: Sequence[tuple[float, float]], now: float, tick: float) -> list[tuple[int, float]]:
    """The growth over each horizon that ends at ``now``: this tick's rate over the rate ``h`` seconds ago.

    ``history`` holds (time, rate) oldest first and ends with this tick's sample. A horizon is sampled when a
    sample lies within half a tick of ``now - h``. The growth is taken point to point, not as the highest rate in
    the window: a fleet must serve the load at each moment, and a burst that lasts shows at every point of it,
    while the highest point of a noisy window would make noise look like a burst.
    """
    out: list[tuple[int, float]] = []
    n = len(history)
    if n < 2:
        return out
    rate = history[-1][1]
    times = [t for t, _ in history]
    for index, horizon in enumerate(HORIZONS):
        start = now - horizon
        i = bisect_left(times, start - 0.5 * tick)
        if i >= n - 1 or abs(times[i] - start) > 0.5 * tick:
            continue
        base = history[i][1]
        if base > 1e-6:
            out.append((index, min(rate / base, 1e6)))
    return out


BURST_RISE = 1.3
"""A burst starts when two ticks in a row are this many times the median rate of the last ``BURST_LOOKBACK`` s."""
BURST_END = 1.15
"""It ends when the rate is back under this many times the median it started from."""
BURST_LOOKBACK = 300.0
BURST_LONGEST = 1800.0
"""A rise that lasts longer is a new level, not a burst: it is not remembered."""
MAX_BURSTS = 16


@dataclass(frozen=True)
class Bursts:
    """Bursts seen lately: (start time, height over the rate before it), and the one going on, if any."""

    seen: tuple[tuple[float, float], ...] = ()
    current: tuple[float, float, float] | None = None
    """(start time, rate before it, height so far) of the burst going on."""

    def update(self, history: Sequence[tuple[float, float]], now: float, memory_seconds: float) -> Bursts:
        """Fold in this tick's rate (the last sample of ``history``)."""
        rate = history[-1][1]
        seen = tuple((t, h) for t, h in self.seen if now - t <= memory_seconds)
        current = self.current
        if current is not None:
            start, base, height = current
            if now - start > BURST_LONGEST:
                current = None  # a new level: forgotten
            elif rate < BURST_END * base:
                seen = (*seen, (start, height))[-MAX_BURSTS:]
                current = None
            else:
                current = (start, base, max(height, rate / base))
        elif len(history) >= 3:
            base = _median([r for t, r in history[:-2] if now - t <= BURST_LOOKBACK + 60.0])
            if base > 1e-6 and min(rate, history[-2][1]) >= BURST_RISE * base:
                current = (history[-2][0], base, max(rate, history[-2][1]) / base)
        return Bursts(seen, current)

    def recurring_height(self, now: float, memory_seconds: float, recur: int = 2) -> float:
        """How high bursts have gone lately, once they recur: the highest of the last ``memory_seconds`` (the one
        going on included) when there were at least ``recur``, else 1 (a burst seen once may be a one-off)."""
        heights = [h for t, h in self.seen if now - t <= memory_seconds]
        if self.current is not None:
            heights.append(self.current[2])
        return max(heights) if heights and len(heights) >= recur else 1.0

    def baseline(self, history: Sequence[tuple[float, float]], now: float) -> float:
        """The rate outside bursts: before the burst going on, else the median of the last few minutes or the
        rate now, the lower (a burst that just ended is not the baseline)."""
        if self.current is not None:
            return self.current[1]
        recent = [r for t, r in history if now - t <= BURST_LOOKBACK]
        return min(_median(recent), recent[-1]) if recent else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"seen": [list(b) for b in self.seen], "current": None if self.current is None else list(self.current)}

    @classmethod
    def from_dict(cls, data: Any) -> Bursts:
        if not isinstance(data, dict):
            return cls()
        seen = tuple((float(t), float(h)) for t, h in data.get("seen", ()))
        current = data.get("current")
        return cls(seen, None if not current else (float(current[0]), float(current[1]), float(current[2])))


def _median(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


__all__ = ["BINS", "HORIZONS", "Bursts", "Growth", "forecast", "growth_samples", "slope"]

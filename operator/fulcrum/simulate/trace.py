"""Traffic traces: CSV ``t_seconds,requests_per_second``, each rate holding until the next row's time."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

HEADER = ("t_seconds", "requests_per_second")

FloatArray = npt.NDArray[np.float64]


class TraceError(ValueError):
    """A trace file that cannot be used; the message names the file and the row."""


@dataclass(frozen=True)
class Trace:
    """Piecewise-constant request rate: ``rates[i]`` holds from ``times[i]`` until ``times[i + 1]``."""

    times: FloatArray
    rates: FloatArray
    end: float
    """When the last rate stops (the last row's time plus the median row spacing)."""

    @classmethod
    def from_points(cls, times: list[float], rates: list[float], end: float | None = None) -> Trace:
        t = np.asarray(times, dtype=np.float64)
        r = np.asarray(rates, dtype=np.float64)
        if len(t) == 0:
            raise TraceError("a trace needs at least one row")
        if end is None:
            spacing = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
            end = float(t[-1]) + spacing
        return cls(t, r, end)

    @property
    def duration(self) -> float:
        return self.end - float(self.times[0])

    def step_rates(self, step: float) -> FloatArray:
        """Mean rate over each step ``[k * step, (k + 1) * step)`` from the first row to the end (exact)."""
        start = float(self.times[0])
        steps = max(1, int(np.ceil((self.end - start) / step - 1e-9)))
        edges = np.append(self.times, self.end)
        cumulative = np.concatenate(([0.0], np.cumsum(self.rates * np.diff(edges))))
        bounds = np.minimum(start + step * np.arange(steps + 1), self.end)
        integral = np.interp(bounds, edges, cumulative)
        widths = np.diff(bounds)
        widths[widths <= 0] = step
        return np.asarray(np.diff(integral) / widths, dtype=np.float64)


def read_trace(path: Path) -> Trace:
    """Read a trace CSV; errors name the file and the line."""
    times: list[float] = []
    rates: list[float] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise TraceError(f"{path}: the header must be {','.join(HEADER)}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                t, r = float(row[0]), float(row[1])
            except (ValueError, IndexError) as exc:
                raise TraceError(f"{path}:{line}: expected two numbers, got {row!r}") from exc
            if r < 0 or (times and t <= times[-1]):
                raise TraceError(f"{path}:{line}: times must increase and rates be >= 0")
            times.append(t)
            rates.append(r)
    if not times:
        raise TraceError(f"{path}: no rows")
    return Trace.from_points(times, rates)


def write_trace(path: Path, times: list[float], rates: list[float]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for t, r in zip(times, rates, strict=True):
            writer.writerow([f"{t:g}", f"{r:.1f}"])

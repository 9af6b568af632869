"""Per-interval and whole-run statistics of a load run (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Interval:
    start: float
    offered_rps: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0  # not sent: too many requests already in flight (counted as misses)
    error_kinds: Counter[str] = field(default_factory=Counter)  # unknown-model, http-503, ClientConnectorError...

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] += 1

    @property
    def sent(self) -> int:
        return len(self.latencies_ms) + self.errors

    def summary(self, seconds: float, slo_ms: float | None) -> dict[str, float | int | None]:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        total = len(lat) + self.errors + self.dropped
        within = int((lat <= slo_ms).sum()) if slo_ms is not None and len(lat) else None
        return {
            "t": round(self.start, 3),
            "offeredRps": round(self.offered_rps, 3),
            "achievedRps": round(len(lat) / seconds, 3) if seconds > 0 else 0.0,
            "p50Ms": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
            "p99Ms": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
            "errors": self.errors,
            "dropped": self.dropped,
            "sloAttainment": round(within / total, 5) if within is not None and total else None,
        }


def run_summary(intervals: list[Interval], slo_ms: float | None) -> dict[str, float | int | dict[str, int] | None]:
    lat = np.asarray([x for i in intervals for x in i.latencies_ms], dtype=np.float64)
    errors = sum(i.errors for i in intervals)
    dropped = sum(i.dropped for i in intervals)
    total = len(lat) + errors + dropped
    within = int((lat <= slo_ms).sum()) if slo_ms is not None else None
    kinds: Counter[str] = Counter()
    for interval in intervals:
        kinds.update(interval.error_kinds)
    return {
        "requests": total,
        "ok": len(lat),
        "errors": errors,
        "errorKinds": dict(sorted(kinds.items())),
        "dropped": dropped,
        "p50Ms": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "p99Ms": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "sloAttainment": round(within / total, 5) if within is not None and total else None,
    }

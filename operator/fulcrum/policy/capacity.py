"""Capacity at the SLO: how many requests per second one replica of a tier on a pool serves in time.

A :class:`Curve` is one profile (a tier on a pool): latency quantiles at increasing open-loop rates up to
saturation. Between points the quantiles are linear in the rate; below the first point latency is taken
as the first point's (conservative); beyond the last point the replica is saturated (no capacity).

The capacity at the SLO is the highest rate whose latency at the SLO percentile stays at or under
``latencyMs x (1 - margin)``. A :class:`ProfileTable` holds the curves of the Ready tiers and memoises
capacities (pure: the same inputs always give the same numbers).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fulcrum.api import Profile, ProfilesFile, TierProfiles
from fulcrum.policy.quantiles import Quantiles, latency_at, monotone, share_within


@dataclass(frozen=True)
class Curve:
    """One tier's latency curve on one pool: ``rates[i]`` (rps per replica) with ``quantiles[i]``."""

    rates: tuple[float, ...]
    quantiles: tuple[Quantiles, ...]

    def __post_init__(self) -> None:
        if not self.rates or len(self.rates) != len(self.quantiles):
            raise ValueError("a curve needs at least one point and one quantile set per rate")
        if any(b <= a for a, b in zip(self.rates, self.rates[1:], strict=False)):
            raise ValueError("profile points must be in strictly increasing request rate")

    @classmethod
    def from_profile(cls, profile: Profile) -> Curve:
        """The curve of a measured profile, made physically plausible.

        Latency cannot fall as load rises, and noise on a shared machine (other processes taking the CPU) only
        ever adds latency. So a quantile measured higher at one rate than at a higher rate is taken to be noise:
        each quantile becomes the lower non-decreasing envelope over the rates (a spike does not cut the
        capacity there). Quantiles are then made non-decreasing within each point.
        """
        points = sorted(profile.points, key=lambda p: p.requests_per_second)
        rates: list[float] = []
        columns: list[list[float]] = [[], [], [], []]
        for point in points:
            q = point.latency_ms
            if rates and point.requests_per_second <= rates[-1]:
                continue  # duplicate rate: keep the first
            rates.append(point.requests_per_second)
            for column, value in zip(columns, (q.p50, q.p90, q.p95, q.p99), strict=True):
                column.append(value)
        fitted = [envelope(column) for column in columns]
        quantiles = [monotone(values) for values in zip(*fitted, strict=True)]
        return cls(tuple(rates), tuple(quantiles))

    @property
    def saturation_rps(self) -> float:
        """The highest rate measured: beyond it one replica is saturated."""
        return self.rates[-1]

    def scaled(self, speed: float) -> Curve:
        """The curve of a replica ``speed`` times as fast (rates scaled, latencies kept)."""
        return Curve(tuple(r * speed for r in self.rates), self.quantiles)

    def quantiles_at(self, rate: float) -> Quantiles:
        """Latency quantiles at a per-replica rate (clamped to the measured range)."""
        rates = self.rates
        if rate <= rates[0]:
            return self.quantiles[0]
        if rate >= rates[-1]:
            return self.quantiles[-1]
        hi = 1
        while rates[hi] < rate:
            hi += 1
        lo = hi - 1
        w = (rate - rates[lo]) / (rates[hi] - rates[lo])
        a, b = self.quantiles[lo], self.quantiles[hi]
        return (
            a[0] + w * (b[0] - a[0]),
            a[1] + w * (b[1] - a[1]),
            a[2] + w * (b[2] - a[2]),
            a[3] + w * (b[3] - a[3]),
        )

    def latency_at(self, rate: float, percentile: float) -> float:
        """Latency (ms) at ``percentile`` when one replica receives ``rate`` rps (rate within the curve)."""
        return latency_at(self.quantiles_at(rate), percentile)

    def share_within(self, rate: float, latency_ms: float) -> float:
        """Share of requests within ``latency_ms`` at a per-replica rate (rate within the curve)."""
        return share_within(self.quantiles_at(rate), latency_ms)

    def capacity(self, latency_ms: float, percentile: float) -> float:
        """Highest per-replica rate whose latency at ``percentile`` is at most ``latency_ms`` (0 if none)."""
        previous_rate = 0.0
        previous_latency: float | None = None
        for rate, quantiles in zip(self.rates, self.quantiles, strict=True):
            latency = latency_at(quantiles, percentile)
            if latency > latency_ms:
                if previous_latency is None:
                    return 0.0
                span = latency - previous_latency
                if span <= 0.0:  # pragma: no cover - monotone curves only step up
                    return previous_rate
                return previous_rate + (rate - previous_rate) * (latency_ms - previous_latency) / span
            previous_rate, previous_latency = rate, latency
        return previous_rate

    def effective_rate(self, latency_ms: float, percentile: float) -> float | None:
        """The per-replica rate at which the curve shows ``latency_ms`` at ``percentile``.

        None when the latency is below the curve's unloaded latency or above its saturated latency:
        then the observation says nothing about the replica's speed.
        """
        previous: tuple[float, float] | None = None
        for rate, quantiles in zip(self.rates, self.quantiles, strict=True):
            latency = latency_at(quantiles, percentile)
            if previous is None:
                if latency_ms <= latency:
                    return None
            elif latency_ms <= latency:
                r0, l0 = previous
                if latency <= l0:  # pragma: no cover - flat segment
                    return r0
                return r0 + (rate - r0) * (latency_ms - l0) / (latency - l0)
            previous = (rate, latency)
        return None


def envelope(values: Sequence[float]) -> list[float]:
    """The lower non-decreasing envelope: each value becomes the least of itself and every later one."""
    out = list(values)
    for k in range(len(out) - 2, -1, -1):
        out[k] = min(out[k], out[k + 1])
    return out


@dataclass
class ProfileTable:
    """The curves of the Ready tiers, keyed by (tier, node pool); capacities memoised per SLO."""

    curves: Mapping[tuple[str, str], Curve]
    _memo: dict[tuple[str, str, float, float], float] = field(default_factory=dict, repr=False, compare=False)
    candidates_memo: dict[Hashable, Any] = field(default_factory=dict, repr=False, compare=False)
    """The planner's candidates per (SLO, tiers, pools, corrections): the same table gives the same ones."""

    @classmethod
    def from_tiers(cls, tiers: Iterable[TierProfiles]) -> ProfileTable:
        """From ``PROFILES.json`` entries or the ``profiles`` of the Ready ``status.tiers``."""
        curves: dict[tuple[str, str], Curve] = {}
        for tier in tiers:
            for profile in tier.profiles:
                if profile.points:
                    curves[(tier.name, profile.node_pool)] = Curve.from_profile(profile)
        return cls(curves)

    @classmethod
    def from_file(cls, profiles: ProfilesFile) -> ProfileTable:
        return cls.from_tiers(profiles.tiers)

    @classmethod
    def from_mapping(cls, profiles: Mapping[str, Sequence[Profile]]) -> ProfileTable:
        """From ``{tier name: [profile, ...]}``."""
        return cls.from_tiers(TierProfiles(name=name, profiles=list(p)) for name, p in profiles.items())

    def only(self, tiers: Iterable[str]) -> ProfileTable:
        """The table restricted to some tiers (e.g. the Ready ones)."""
        keep = set(tiers)
        return ProfileTable({k: v for k, v in self.curves.items() if k[0] in keep})

    def curve(self, tier: str, pool: str) -> Curve | None:
        return self.curves.get((tier, pool))

    def capacity(self, tier: str, pool: str, latency_ms: float, percentile: float) -> float:
        """Per-replica capacity (rps) of a tier on a pool at a latency target and percentile; 0 if unknown."""
        key = (tier, pool, latency_ms, percentile)
        cached = self._memo.get(key)
        if cached is None:
            curve = self.curves.get((tier, pool))
            cached = 0.0 if curve is None else curve.capacity(latency_ms, percentile)
            self._memo[key] = cached
        return cached

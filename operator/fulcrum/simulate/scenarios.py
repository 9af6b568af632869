"""Seeded scenarios for judging a policy on traffic and fleets nobody picked by hand.

A scenario is a spec (tiers, pools, SLO, budget, scaling), profiles for every tier on every pool it runs on, and
a traffic trace, all drawn from one integer seed. The family is ``FAMILIES[seed % 5]``, so any run of
consecutive seeds is balanced, and the name ``<family>-<seed>`` (e.g. ``bursts-0137``) replays it exactly.

Traffic families (all with multiplicative AR(1) noise of 1-6 %, 20-300 s memory, on top):

- ``diurnal``: 24 h of a shop's day: a night trough, a lunch hump, an evening peak 3-35x the trough.
- ``flash-sale``: 4-8 h at a base rate; once, 2-10x within 1-10 minutes, held 10-60 minutes, back over 5-30.
- ``ramp``: 6-12 h rising slowly 2-9x, with short +20-60 % bursts (2-8 minutes, every 20-60 minutes).
- ``bursts``: 4-8 h at a base rate with random bursts of 2-10x lasting 1-15 minutes (one every 15-60 minutes
  on average, onsets of 10-120 s).
- ``noise``: 4-8 h of a level that wanders slowly (random walk) under heavy fast noise (5-15 %).

Crossed with: one to three pools (a reference GPU, a faster dearer GPU, a CPU pool) with replica start-up times
of 30-300 s; one to two faster tiers than the first, with speed-ups of 1.2-5x; a budget from tight (the oracle
needs a faster tier at the peak) to loose, or none; a queue timeout or none; SLOs of 10-100 ms at p99 or p99.9;
scale-down windows of 60-600 s and switch cooldowns of 120-900 s; objective Quality (85 %) or Cost. Memory
decides hot tiers as in the operator: fp32 files of 0.25-12 GiB (fp16 half, int8 a quarter), each loaded tier
taking twice its files (:func:`fulcrum.policy.hot.hot_tiers`) of the pool's ``memoryPerReplica`` (16-48 GiB on the
reference GPU, 40-80 GiB on the large one, 8-64 GiB of RAM on the CPU pool).

Profiles follow the queueing model of ``examples/profiles/make_profiles.py`` (``base + z_p x jitter / (1 - u)``):
p99 grows smoothly toward saturation. The hand-described cases of issue 16 are the named scenarios in
``ISSUE_CASES``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fulcrum.api import ModelDeploymentSpec, ProfilesFile, parse_spec
from fulcrum.policy.hot import hot_tiers
from fulcrum.simulate.trace import FloatArray, Trace

FAMILIES = ("diurnal", "flash-sale", "ramp", "bursts", "noise")
TUNING_SEEDS = range(0, 200)
"""The only seeds the policy's knobs were tuned on."""
HELD_OUT_SEEDS = range(1000, 1200)
"""The seeds the benchmark judges the policy on by default: never looked at while tuning."""
ROW_SECONDS = 10.0
"""Trace resolution: one row every 10 s, like the example traces."""
UTILISATIONS = (0.05, 0.2, 0.4, 0.55, 0.65, 0.75, 0.82, 0.88, 0.92, 0.95)
GIB = 2**30
POOL_MEMORY_GIB = {"gpu": (16, 24, 48), "gpu-xl": (40, 80), "cpu": (8, 16, 32, 64)}
"""memoryPerReplica choices per pool kind (GiB)."""
QUANTILE_Z = {"p50": math.log(2.0), "p90": math.log(10.0), "p95": math.log(20.0), "p99": math.log(100.0)}


@dataclass(frozen=True)
class Scenario:
    """One replayable case: what a policy is given and the traffic it meets."""

    name: str
    family: str
    seed: int | None
    summary: str
    """One line: the draws that matter (for the benchmark's worst-case list)."""
    spec: ModelDeploymentSpec
    profiles: ProfilesFile
    trace: Trace
    hot: dict[str, tuple[str, ...]]
    """Pool -> tiers each of its replicas loads together (what fits its memory); a switch among them is hot."""
    tier_bytes: dict[str, int]
    """Each tier's files in bytes (what :func:`fulcrum.policy.hot.hot_tiers` weighs against a pool's memory)."""

    def manifest(self) -> dict[str, Any]:
        """The spec as a ModelDeployment manifest (for ``fulcrum simulate --spec``)."""
        return {
            "apiVersion": "fulcrum.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name},
            "spec": self.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }


# --- traffic ---------------------------------------------------------------------------------------------------


def _times(hours: float) -> FloatArray:
    return ROW_SECONDS * np.arange(int(hours * 3600.0 / ROW_SECONDS), dtype=np.float64)


def _noise(rng: np.random.Generator, n: int, sigma: float, memory_seconds: float) -> FloatArray:
    """Multiplicative AR(1) noise around 1 with standard deviation ``sigma``."""
    phi = math.exp(-ROW_SECONDS / memory_seconds)
    shocks = rng.normal(0.0, sigma * math.sqrt(1.0 - phi * phi), n)
    out = np.empty(n)
    value = rng.normal(0.0, sigma)
    for i in range(n):  # a plain loop: lfilter would pull in scipy
        value = phi * value + shocks[i]
        out[i] = value
    return np.maximum(0.05, 1.0 + out)


def _smoothstep(x: FloatArray) -> FloatArray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _pulse(t: FloatArray, start: float, rise: float, hold: float, fall: float) -> FloatArray:
    """0 before ``start``, up to 1 over ``rise`` s (linear), 1 for ``hold`` s, back to 0 over ``fall`` s."""
    up = np.clip((t - start) / max(rise, 1e-9), 0.0, 1.0)
    down = np.clip((start + rise + hold + fall - t) / max(fall, 1e-9), 0.0, 1.0)
    return np.minimum(up, down)


def _bursts(
    rng: np.random.Generator,
    t: FloatArray,
    *,
    gap_minutes: tuple[float, float],
    amplitude: tuple[float, float],
    minutes: tuple[float, float],
    onset_seconds: tuple[float, float],
    log_amplitude: bool = True,
) -> tuple[FloatArray, int]:
    """A multiplier >= 1 with Poisson bursts; returns it and the number of bursts."""
    mean_gap = 60.0 * rng.uniform(*gap_minutes)
    end = float(t[-1]) if len(t) else 0.0
    factor = np.ones_like(t)
    count = 0
    start = rng.exponential(mean_gap)
    while start < end:
        if log_amplitude:
            height = math.exp(rng.uniform(math.log(amplitude[0]), math.log(amplitude[1])))
        else:
            height = rng.uniform(*amplitude)
        length = 60.0 * rng.uniform(*minutes)
        onset = rng.uniform(*onset_seconds)
        factor = np.maximum(factor, 1.0 + (height - 1.0) * _pulse(t, start, onset, length, onset))
        count += 1
        start += onset + length + rng.exponential(mean_gap)
    return factor, count


def _diurnal(rng: np.random.Generator) -> tuple[FloatArray, FloatArray, str]:
    t = _times(24.0)
    hour = t / 3600.0
    ratio = math.exp(rng.uniform(math.log(3.0), math.log(35.0)))
    peak_hour = rng.uniform(18.0, 22.0)
    lunch = rng.uniform(0.2, 0.6)
    width = rng.uniform(1.8, 3.5)
    shape = 1.0 / ratio + (1.0 - 1.0 / ratio) * np.maximum(
        np.exp(-(((hour - peak_hour) / width) ** 2)),
        lunch * np.exp(-(((hour - 12.5) / 1.8) ** 2)) + 0.3 * np.exp(-(((hour - 15.0) / 5.0) ** 2)),
    )
    return t, shape, f"day {ratio:.0f}x trough-to-peak at {peak_hour:.0f}h"


def _flash_sale(rng: np.random.Generator) -> tuple[FloatArray, FloatArray, str]:
    hours = rng.uniform(4.0, 8.0)
    t = _times(hours)
    amplitude = math.exp(rng.uniform(math.log(2.0), math.log(10.0)))
    rise = math.exp(rng.uniform(math.log(60.0), math.log(600.0)))
    hold = 60.0 * rng.uniform(10.0, 60.0)
    fall = 60.0 * rng.uniform(5.0, 30.0)
    start = rng.uniform(0.2, 0.55) * hours * 3600.0
    shape = 1.0 + (amplitude - 1.0) * _pulse(t, start, rise, hold, fall)
    return t, shape, f"{hours:.0f} h, {amplitude:.1f}x in {rise:.0f} s held {hold / 60:.0f} min"


def _ramp(rng: np.random.Generator) -> tuple[FloatArray, FloatArray, str]:
    hours = rng.uniform(6.0, 12.0)
    t = _times(hours)
    growth = math.exp(rng.uniform(math.log(2.0), math.log(9.0)))
    trend = 1.0 + (growth - 1.0) * _smoothstep((t / (hours * 3600.0) - 0.1) / 0.8)
    bursts, count = _bursts(
        rng,
        t,
        gap_minutes=(20.0, 60.0),
        amplitude=(1.2, 1.6),
        minutes=(2.0, 8.0),
        onset_seconds=(20.0, 90.0),
        log_amplitude=False,
    )
    return t, trend * bursts, f"{hours:.0f} h ramp {growth:.1f}x with {count} bursts of +20-60 %"


def _random_bursts(rng: np.random.Generator) -> tuple[FloatArray, FloatArray, str]:
    hours = rng.uniform(4.0, 8.0)
    t = _times(hours)
    bursts, count = _bursts(
        rng, t, gap_minutes=(15.0, 60.0), amplitude=(2.0, 10.0), minutes=(1.0, 15.0), onset_seconds=(10.0, 120.0)
    )
    return t, bursts, f"{hours:.0f} h, {count} bursts of 2-10x for 1-15 min"


def _wander(rng: np.random.Generator) -> tuple[FloatArray, FloatArray, str]:
    hours = rng.uniform(4.0, 8.0)
    t = _times(hours)
    walk = np.cumsum(rng.normal(0.0, 0.25 * math.sqrt(ROW_SECONDS / 3600.0), len(t)))
    walk = np.clip(walk - walk.min(), 0.0, math.log(4.0))
    sigma = rng.uniform(0.05, 0.15)
    memory = rng.uniform(20.0, 300.0)
    return t, np.exp(walk) * _noise(rng, len(t), sigma, memory), f"{hours:.0f} h wander, {sigma:.0%} noise"


SHAPES: dict[str, Callable[[np.random.Generator], tuple[FloatArray, FloatArray, str]]] = {
    "diurnal": _diurnal,
    "flash-sale": _flash_sale,
    "ramp": _ramp,
    "bursts": _random_bursts,
    "noise": _wander,
}


# --- fleets and profiles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pool:
    name: str
    speed: float
    """Throughput of a replica relative to the reference GPU pool."""
    latency: float
    """Unloaded latency relative to the reference GPU pool."""
    cost: float
    startup: int
    cpu: bool
    memory_gib: int = 0
    """memoryPerReplica: GPU memory on a GPU pool, RAM on a CPU pool (0: not stated, every tier is loaded)."""


@dataclass(frozen=True)
class _Tier:
    name: str
    precision: str
    backend: str
    speed: float
    """Throughput relative to the first tier on the same pool."""


def _profile(saturation: float, base: float, jitter: float, rng: np.random.Generator | None) -> list[dict[str, Any]]:
    points = []
    for u in UTILISATIONS:
        wobble = 1.0 if rng is None else 1.0 + rng.uniform(-0.02, 0.02)
        latency = {name: round((base + z * jitter / (1.0 - u)) * wobble, 4) for name, z in QUANTILE_Z.items()}
        points.append({"requestsPerSecond": round(u * saturation, 3), "latencyMs": latency})
    return points


def _profiles(
    tiers: list[_Tier],
    pools: list[_Pool],
    *,
    slo_ms: float,
    capacity: float,
    base_share: float,
    utilisation: float,
    rng: np.random.Generator | None,
) -> dict[str, Any]:
    """Profiles of every tier on every pool it runs on (TensorRT tiers not on CPU pools).

    The first tier on the reference pool saturates at ``capacity`` rps, is unloaded at ``base_share`` of the SLO
    and reaches the SLO at p99 at ``utilisation`` of saturation; faster tiers and pools scale the throughput and
    shrink the latency by the square root of their speed.
    """
    base = base_share * slo_ms
    jitter = (slo_ms - base) * (1.0 - utilisation) / QUANTILE_Z["p99"]
    out = []
    for tier in tiers:
        entries = []
        for pool in pools:
            if pool.cpu and tier.backend == "tensorrt":
                continue
            shrink = pool.latency / math.sqrt(tier.speed)
            entries.append(
                {
                    "nodePool": pool.name,
                    "points": _profile(capacity * tier.speed * pool.speed, base * shrink, jitter * shrink, rng),
                }
            )
        out.append({"name": tier.name, "profiles": entries})
    return {"tiers": out}


def _spec(
    tiers: list[_Tier],
    pools: list[_Pool],
    *,
    slo_ms: int,
    percentile: Any,
    budget: float | None,
    max_replicas: int,
    stabilization: int,
    cooldown: int,
    objective: str,
    queue_timeout_us: int | None,
) -> ModelDeploymentSpec:
    spec: dict[str, Any] = {
        "model": {"source": {"uri": "file:model.onnx", "format": "onnx"}},
        "tiers": [{"name": t.name, "precision": t.precision, "backend": t.backend} for t in tiers],
        "slo": {"latencyMs": slo_ms, "percentile": percentile},
        "nodePools": [
            {
                "name": p.name,
                "gpusPerReplica": 0 if p.cpu else 1,
                "costPerHour": f"{p.cost:.2f}",
                "replicaStartupSeconds": p.startup,
                **({"memoryPerReplica": f"{p.memory_gib}Gi"} if p.memory_gib else {}),
            }
            for p in pools
        ],
        "scaling": {
            "minReplicas": 1,
            "maxReplicas": max_replicas,
            "scaleDownStabilizationSeconds": stabilization,
            "tierSwitchCooldownSeconds": cooldown,
            "objective": objective,
        },
    }
    if budget is not None:
        spec["budget"] = {"maxCostPerHour": f"{budget:.2f}"}
    if queue_timeout_us is not None:
        spec["serving"] = {"dynamicBatching": {"queueTimeoutMicroseconds": queue_timeout_us}}
    return parse_spec(spec)


def _peak_cost(peak: float, tier: _Tier, pools: list[_Pool], capacity_at_slo: Callable[[_Tier, _Pool], float]) -> float:
    """What the cheapest pool costs per hour to serve ``peak`` rps on ``tier`` (inf if no pool runs it)."""
    costs = [
        math.ceil(peak / capacity_at_slo(tier, pool)) * pool.cost
        for pool in pools
        if capacity_at_slo(tier, pool) > 0.0 and not (pool.cpu and tier.backend == "tensorrt")
    ]
    return min(costs, default=math.inf)


def generated(seed: int) -> Scenario:
    """The scenario of one seed (deterministic across machines: numpy's PCG64)."""
    family = FAMILIES[seed % len(FAMILIES)]
    rng = np.random.default_rng([16, seed])
    t, shape, shape_summary = SHAPES[family](rng)
    noise = _noise(rng, len(t), rng.uniform(0.01, 0.06), rng.uniform(20.0, 300.0))
    # the fleet
    pools = [_Pool("gpu", 1.0, 1.0, round(rng.uniform(0.5, 1.5), 2), int(rng.uniform(30, 300)), False)]
    if rng.random() < 0.5:
        speed = rng.uniform(2.0, 4.0)
        pools.append(
            _Pool(
                "gpu-xl",
                speed,
                0.8,
                round(pools[0].cost * speed * rng.uniform(0.9, 1.4), 2),
                int(rng.uniform(30, 300)),
                False,
            )
        )
    if rng.random() < 0.5:
        speed = rng.uniform(0.1, 0.3)
        pools.append(
            _Pool(
                "cpu",
                speed,
                1.4,
                round(max(0.02, pools[0].cost * speed * rng.uniform(0.8, 1.3)), 2),
                int(rng.uniform(30, 300)),
                True,
            )
        )
    speedups = sorted(float(s) for s in rng.uniform(1.2, 5.0, 1 if rng.random() < 0.4 else 2))
    tiers = [_Tier("fp32", "fp32", "onnxruntime", 1.0)]
    if len(speedups) == 2:
        tiers.append(_Tier("fp16", "fp16", "tensorrt", speedups[0]))
    tiers.append(_Tier("int8", "int8", "onnxruntime", speedups[-1]))
    # the SLO and the profiles' shape
    slo_ms = int(rng.choice([10, 15, 25, 40, 60, 100]))
    percentile: Any = 99 if rng.random() < 0.7 else "99.9"
    base_share = rng.uniform(0.15, 0.4)
    utilisation = rng.uniform(0.6, 0.9)
    capacity = float(math.exp(rng.uniform(math.log(200.0), math.log(3000.0))))
    profiles = ProfilesFile.model_validate(
        _profiles(
            tiers, pools, slo_ms=slo_ms, capacity=capacity, base_share=base_share, utilisation=utilisation, rng=rng
        )
    )
    # the load: the first tier on the reference pool needs 3-40 replicas at the peak
    peak_replicas = math.exp(rng.uniform(math.log(3.0), math.log(40.0)))
    rates = shape * noise
    rates *= peak_replicas * capacity * utilisation / float(np.max(_minute_means(rates)))

    def at_slo(tier: _Tier, pool: _Pool) -> float:
        return capacity * tier.speed * pool.speed * _utilisation_at_slo(pool, tier, base_share, utilisation)

    peak = float(np.max(_minute_means(rates)))
    top = _peak_cost(peak, tiers[0], pools, at_slo)
    fastest = min(_peak_cost(peak, tier, pools, at_slo) for tier in tiers)
    draw = rng.random()
    budget: float | None
    if draw < 0.15:
        budget, budget_kind = None, "no budget"
    elif draw < 0.55 and fastest * 1.1 < top:
        budget = min(top * 0.97, fastest * rng.uniform(1.1, 1.8))
        budget_kind = f"tight budget {budget:.2f}/h (fp32 peak {top:.2f})"
    else:
        budget = top * rng.uniform(1.05, 3.0)
        budget_kind = f"loose budget {budget:.2f}/h (fp32 peak {top:.2f})"
    timeout_us = None
    if rng.random() < 0.5:
        # the first tier's p99 at the lowest profiled load: base + (SLO - base) x (1 - u) / 0.95
        unloaded_p99 = slo_ms * (base_share + (1.0 - base_share) * (1.0 - utilisation) / (1.0 - UTILISATIONS[0]))
        timeout_us = max(1000, int(1000.0 * (slo_ms - unloaded_p99) * rng.uniform(0.8, 1.2)))
    objective = "Quality" if rng.random() < 0.85 else "Cost"
    stabilization = int(rng.choice([60, 120, 300, 600]))
    cooldown = int(rng.choice([120, 300, 600, 900]))
    # memory: what decides which tiers a replica loads together (hot tiers)
    sizes = _tier_sizes(rng, tiers)
    pools = [replace(p, memory_gib=int(rng.choice(POOL_MEMORY_GIB[p.name]))) for p in pools]
    spec = _spec(
        tiers,
        pools,
        slo_ms=slo_ms,
        percentile=percentile,
        budget=budget,
        max_replicas=400,
        stabilization=stabilization,
        cooldown=cooldown,
        objective=objective,
        queue_timeout_us=timeout_us,
    )
    hot = hot_sets(spec, tiers, pools, sizes)
    startups = "/".join(f"{p.startup}" for p in pools)
    summary = (
        f"{shape_summary}; pools {'/'.join(p.name for p in pools)} start {startups} s; tiers x"
        f"{'/'.join(f'{t.speed:.1f}' for t in tiers)}; {budget_kind}; "
        f"{'queue timeout' if timeout_us else 'no timeout'}; {objective}"
    )
    trace = Trace.from_points(t.tolist(), np.round(rates, 1).tolist(), float(t[-1]) + ROW_SECONDS)
    return Scenario(f"{family}-{seed:04d}", family, seed, summary, spec, profiles, trace, hot, sizes)


def _tier_sizes(rng: np.random.Generator, tiers: list[_Tier]) -> dict[str, int]:
    """Each tier's files in bytes: fp32 0.25-12 GiB (log-uniform), fp16 half of it, int8 a quarter."""
    fp32 = math.exp(rng.uniform(math.log(0.25), math.log(12.0))) * GIB
    share = {"fp32": 1.0, "fp16": 0.5, "int8": 0.25}
    return {t.name: int(fp32 * share[t.precision]) for t in tiers}


def hot_sets(
    spec: ModelDeploymentSpec, tiers: list[_Tier], pools: list[_Pool], sizes: dict[str, int]
) -> dict[str, tuple[str, ...]]:
    """Pool -> the tiers each of its replicas loads together, by the operator's own rule
    (:func:`fulcrum.policy.hot.hot_tiers`: each tier takes twice its files' size of the pool's memoryPerReplica);
    pools that load one tier or none are left out (no hot switching there)."""
    hot = {}
    by_name = {p.name: p for p in spec.node_pools}
    for pool in pools:
        runs = {t.name: sizes[t.name] for t in tiers if not (pool.cpu and t.backend == "tensorrt")}
        loaded = hot_tiers(spec, by_name[pool.name], dict[str, int | None](runs))
        if len(loaded) > 1:
            hot[pool.name] = loaded
    return hot


def _utilisation_at_slo(pool: _Pool, tier: _Tier, base_share: float, utilisation: float) -> float:
    """Utilisation at which p99 reaches the SLO on a (tier, pool), from the profile model (no wobble)."""
    shrink = pool.latency / math.sqrt(tier.speed)
    base = base_share * shrink
    if base >= 1.0:
        return 0.0
    jitter = (1.0 - base_share) * (1.0 - utilisation) * shrink
    return max(0.0, min(0.95, 1.0 - jitter / (1.0 - base)))


def _minute_means(rates: FloatArray) -> FloatArray:
    per = int(60.0 / ROW_SECONDS)
    n = len(rates) // per * per
    return rates[:n].reshape(-1, per).mean(axis=1) if n else rates


# --- the cases of issue 16 -------------------------------------------------------------------------------------

ISSUE_TIERS = [
    _Tier("fp32", "fp32", "onnxruntime", 1.0),
    _Tier("fp16", "fp16", "tensorrt", 3.0),
    _Tier("int8", "int8", "onnxruntime", 3.3),
]
ISSUE_POOLS = [
    _Pool("l4", 1.0, 1.0, 0.85, 90, False, 24),
    _Pool("a100", 3.3, 0.8, 3.40, 180, False, 80),
    _Pool("cpu", 0.19, 1.4, 0.20, 30, True, 32),
]

ISSUE_SIZES = {"fp32": 2 * GIB, "fp16": GIB, "int8": GIB // 2}


def _issue_case(name: str, t: FloatArray, shape: FloatArray, summary: str, seed: int) -> Scenario:
    rng = np.random.default_rng([16, 1_000_000 + seed])
    rates = shape * _noise(rng, len(t), 0.02, 60.0)
    profiles = ProfilesFile.model_validate(
        _profiles(ISSUE_TIERS, ISSUE_POOLS, slo_ms=25, capacity=700.0, base_share=0.2, utilisation=0.85, rng=None)
    )
    spec = _spec(
        ISSUE_TIERS,
        ISSUE_POOLS,
        slo_ms=25,
        percentile=99,
        budget=7.0,
        max_replicas=40,
        stabilization=300,
        cooldown=600,
        objective="Quality",
        queue_timeout_us=None,
    )
    trace = Trace.from_points(t.tolist(), np.round(rates, 1).tolist(), float(t[-1]) + ROW_SECONDS)
    full = f"{summary}; pools l4/a100/cpu start 90/180/30 s; tiers x1.0/3.0/3.3; budget 7.00/h; no timeout; Quality"
    hot = hot_sets(spec, ISSUE_TIERS, ISSUE_POOLS, ISSUE_SIZES)  # 2 GiB of fp32: every tier fits everywhere
    return Scenario(name, "issue", None, full, spec, profiles, trace, hot, ISSUE_SIZES)


def _issue_flash_sale() -> Scenario:
    t = _times(4.0)
    shape = 1000.0 * (1.0 + 9.0 * _pulse(t, 5400.0, 60.0, 900.0, 600.0))
    return _issue_case("issue-flash-sale", t, shape, "4 h flash sale, 10x in 60 s held 15 min", 1)


def _issue_day() -> Scenario:
    t = _times(24.0)
    hour = t / 3600.0
    shape = 150.0 + 5050.0 * np.maximum(
        np.exp(-(((hour - 20.0) / 2.6) ** 2)),
        0.45 * np.exp(-(((hour - 12.5) / 1.8) ** 2)) + 0.3 * np.exp(-(((hour - 15.0) / 5.0) ** 2)),
    )
    return _issue_case("issue-day", t, shape, "24 h day, 150 to 5200 rps", 2)


def _issue_ramp_bursts() -> Scenario:
    t = _times(12.0)
    trend = 800.0 + 6200.0 * np.clip(t / (12 * 3600.0), 0.0, 1.0)
    rng = np.random.default_rng([16, 2_000_003])
    factor = np.ones_like(t)
    start = rng.uniform(600.0, 1800.0)
    while start < t[-1]:
        factor = np.maximum(factor, 1.0 + 0.4 * _pulse(t, start, 30.0, 300.0, 30.0))
        start += rng.uniform(1200.0, 2400.0)
    return _issue_case("issue-ramp-bursts", t, trend * factor, "12 h ramp 800 to 7000 rps, 5-min +40 % bursts", 3)


def _issue_random_bursts() -> Scenario:
    t = _times(6.0)
    rng = np.random.default_rng([16, 2_000_004])
    factor = np.ones_like(t)
    start = rng.uniform(300.0, 1200.0)
    while start < t[-1]:
        height = rng.uniform(3.0, 5.0)
        factor = np.maximum(factor, 1.0 + (height - 1.0) * _pulse(t, start, 30.0, 60.0 * rng.uniform(2.0, 8.0), 30.0))
        start += rng.uniform(900.0, 1500.0)
    return _issue_case("issue-random-bursts", t, 600.0 * factor, "6 h of 3-5x bursts for 2-8 min every ~20 min", 4)


ISSUE_CASES: dict[str, Callable[[], Scenario]] = {
    "issue-flash-sale": _issue_flash_sale,
    "issue-day": _issue_day,
    "issue-ramp-bursts": _issue_ramp_bursts,
    "issue-random-bursts": _issue_random_bursts,
}


def named(name: str) -> Scenario:
    """A scenario by name: ``<family>-<seed>`` or one of ``ISSUE_CASES``."""
    if name in ISSUE_CASES:
        return ISSUE_CASES[name]()
    family, _, number = name.rpartition("-")
    if not number.isdigit() or family not in FAMILIES:
        known = ", ".join([*FAMILIES, *ISSUE_CASES])
        raise ValueError(f"unknown scenario {name!r}: expected <family>-<seed> or an issue case ({known})")
    seed = int(number)
    if FAMILIES[seed % len(FAMILIES)] != family:
        raise ValueError(f"seed {seed} is a {FAMILIES[seed % len(FAMILIES)]} scenario, not {family}")
    return generated(seed)


__all__ = ["FAMILIES", "HELD_OUT_SEEDS", "ISSUE_CASES", "TUNING_SEEDS", "Scenario", "generated", "hot_sets", "named"]

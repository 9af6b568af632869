"""Write the example traces (CSV ``t_seconds,requests_per_second``, one row every 10 s). Seeded: the output is
committed and the same every run.

- ``diurnal.csv``: 24 h of a ranking service. Two daily humps (lunch, evening peak at 20:00) over a night
  trough: 3 000 rps at 04:00, about 21 000 rps at 20:00. Multiplicative AR(1) noise (sigma 2 %, 1-minute
  memory).
- ``flash-sale.csv``: 6 h at about 5 000 rps; at 02:00 the rate rises 10x within one minute, holds 30 minutes,
  and falls back over 10 minutes. Same noise.
- ``black-friday.csv``: 24 h of the diurnal shape times a slow ramp: the multiplier climbs from 1 to 2.2 between
  05:00 and 17:00, holds until 22:00, and falls back to 1.3 by midnight.
- ``bursts.csv``: 6 h at about 8 000 rps with random bursts (Poisson, one every 20 minutes on average) of
  1.3-2x lasting 2-10 minutes with 30-120 s ramps (campaign pushes, cache flushes upstream).

Run: ``python examples/traces/make_traces.py``.
"""

# ruff: noqa: S311 - seeded pseudo-random numbers make example data, not secrets

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

STEP = 10
HERE = Path(__file__).parent


def noise(rng: random.Random, n: int, sigma: float = 0.02, memory_s: float = 60.0) -> list[float]:
    phi = math.exp(-STEP / memory_s)
    value = 0.0
    out = []
    for _ in range(n):
        value = phi * value + math.sqrt(1 - phi * phi) * rng.gauss(0.0, sigma)
        out.append(1.0 + value)
    return out


def diurnal_shape(t: float) -> float:
    hour = (t / 3600.0) % 24.0
    night = 3000.0
    lunch = 9000.0 * math.exp(-(((hour - 12.5) / 1.8) ** 2))
    evening = 18000.0 * math.exp(-(((hour - 20.0) / 2.6) ** 2))
    day = 5000.0 * math.exp(-(((hour - 15.0) / 5.0) ** 2))
    return night + lunch + evening + day


def smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def black_friday_multiplier(t: float) -> float:
    hour = t / 3600.0
    if hour < 5:
        return 1.0
    if hour < 17:
        return 1.0 + 1.2 * smoothstep((hour - 5) / 12)
    if hour < 22:
        return 2.2
    return 2.2 - 0.9 * smoothstep((hour - 22) / 2)


def flash_sale(t: float) -> float:
    start, rise, hold, fall = 7200.0, 60.0, 1800.0, 600.0
    if t < start:
        m = 1.0
    elif t < start + rise:
        m = 1.0 + 9.0 * (t - start) / rise
    elif t < start + rise + hold:
        m = 10.0
    elif t < start + rise + hold + fall:
        m = 10.0 - 9.0 * (t - start - rise - hold) / fall
    else:
        m = 1.0
    return 5000.0 * m


def bursts(rng: random.Random, duration: float) -> Callable[[float], float]:
    events = []
    t = rng.expovariate(1 / 1200.0)
    while t < duration:
        events.append((t, rng.uniform(1.3, 2.0), rng.uniform(120, 600), rng.uniform(30, 120)))
        t += rng.expovariate(1 / 1200.0)

    def rate(x: float) -> float:
        m = 1.0
        for start, amplitude, length, ramp in events:
            if start <= x < start + length + ramp:
                up = min(1.0, (x - start) / ramp)
                down = min(1.0, (start + length + ramp - x) / ramp)
                m = max(m, 1.0 + (amplitude - 1.0) * min(up, down))
        return 8000.0 * m

    return rate


def write(name: str, duration: float, rate: Callable[[float], float], rng: random.Random) -> None:
    n = int(duration // STEP)
    wobble = noise(rng, n)
    path = HERE / name
    with path.open("w") as handle:
        handle.write("t_seconds,requests_per_second\n")
        for i in range(n):
            handle.write(f"{i * STEP},{rate(i * STEP) * wobble[i]:.1f}\n")
    print(f"wrote {path} ({n} rows)")


def main() -> None:
    write("diurnal.csv", 86400, diurnal_shape, random.Random(1))
    write("flash-sale.csv", 6 * 3600, flash_sale, random.Random(2))
    write("black-friday.csv", 86400, lambda t: diurnal_shape(t) * black_friday_multiplier(t), random.Random(3))
    write("bursts.csv", 6 * 3600, bursts(random.Random(4), 6 * 3600), random.Random(5))


if __name__ == "__main__":
    main()

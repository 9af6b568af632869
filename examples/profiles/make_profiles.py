"""Write ``ctr-ranker.json``: example latency profiles of a CTR ranker (fp32 / fp16 / int8 on l4 / a100 / cpu).

These are synthetic, made from a stated model, until the builder's profiler measures real ones
(``fulcrum build`` writes them into ``manifest.json``; ``status.tiers[].profiles`` carries them).

Model of one Triton replica with dynamic batching, per (tier, pool):

    latency_p(rate) = base_ms + (-ln(1 - p)) * jitter_ms / (1 - rate / capacity_rps)

``base_ms`` is the unloaded compute + batching delay, the second term is queueing delay with an exponential
tail that grows as 1 / (1 - utilisation) (M/M/1-like). Points are taken at utilisations 5 %..95 %; the last
point is where the replica saturates. ``capacity_rps`` / ``base_ms`` are of the order published for small
MLP rankers: TensorRT fp16 about 3x fp32 on the same GPU, int8 (onnxruntime) about 3.3x, an A100 about 3.3x
an L4, a 4-vCPU node about a fifth of an L4 in fp32; fp16 (TensorRT) does not run on the CPU pool. A small
deterministic wobble (seeded) keeps the curves from being perfectly smooth.

Run: ``python examples/profiles/make_profiles.py`` (deterministic; the output is committed).
"""

# ruff: noqa: S311 - seeded pseudo-random numbers make example data, not secrets

from __future__ import annotations

import json
import math
import random
from pathlib import Path

UTILISATIONS = (0.05, 0.2, 0.4, 0.55, 0.65, 0.75, 0.82, 0.88, 0.92, 0.95)
QUANTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}

# tier -> pool -> (capacity_rps, base_ms, jitter_ms)
MODEL: dict[str, dict[str, tuple[float, float, float]]] = {
    "fp32": {"l4": (2400.0, 5.0, 1.0), "a100": (8000.0, 3.5, 0.8), "cpu": (450.0, 7.0, 2.0)},
    "fp16": {"l4": (7200.0, 2.5, 0.5), "a100": (24000.0, 2.0, 0.4)},
    "int8": {"l4": (8000.0, 2.5, 0.5), "a100": (26000.0, 2.0, 0.4), "cpu": (1500.0, 4.0, 1.1)},
}


def profile(capacity: float, base: float, jitter: float, rng: random.Random) -> list[dict[str, object]]:
    points = []
    for u in UTILISATIONS:
        wobble = 1.0 + rng.uniform(-0.03, 0.03)
        latency = {
            name: round((base + -math.log(1.0 - p / 100.0) * jitter / (1.0 - u)) * wobble, 3)
            for name, p in QUANTILES.items()
        }
        points.append({"requestsPerSecond": round(u * capacity, 1), "latencyMs": latency})
    return points


def main() -> None:
    rng = random.Random(20261129)
    tiers = [
        {
            "name": tier,
            "profiles": [{"nodePool": pool, "points": profile(*params, rng)} for pool, params in pools.items()],
        }
        for tier, pools in MODEL.items()
    ]
    out = Path(__file__).with_name("ctr-ranker.json")
    out.write_text(json.dumps({"tiers": tiers}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Check the simulator against reality: the bundled CPU tritonserver, 1 and 2 replicas, open-loop step load.

Run (needs the ``local`` extra and a repository from ``fulcrum build --target local``)::

    fulcrum build --spec examples/ctr-ranker/modeldeployment.yaml --out /tmp/ctr-repo --target local
    python benchmarks/sim_vs_real.py --repo /tmp/ctr-repo [--model fp32] [--slo-ms 25] [--json OUT.json]

1. Calibrate: one server, constant open-loop rates doubling until it saturates, through the same HTTP path the
   step runs use; each rate gives a profile point (p50/p90/p95/p99). This is the profile the simulator gets.
2. Step load: ``0.3, 0.6, 1.2, 0.45`` x the single server's saturation rate, ``--segment`` seconds each, against
   one server and against two (round robin).
3. Predict every interval with the simulator's serving model (``serve_step``, backlog carried across intervals)
   from the calibrated profile, and compare with the measurement: SLO attainment (absolute error) and p99
   (relative error), per interval and over the run.

The two servers share the machine's cores (and the load generator), so "2 replicas" is not two machines' worth
of capacity here: that gap is part of what this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from fulcrum import local_triton
from fulcrum.api import BuildManifest, LatencyQuantiles, Profile, ProfilePoint
from fulcrum.loadgen.generator import Schedule, run_load
from fulcrum.loadgen.stats import Interval
from fulcrum.policy import Curve
from fulcrum.simulate.serving import serve_step


def drive(urls: list[str], model: str, rates: list[float], segment: float, seed: int) -> list[Interval]:
    schedule = Schedule(times=[i * segment for i in range(len(rates))], rates=rates, end=len(rates) * segment)

    async def endpoints() -> list[str]:
        return urls

    fetch: Callable[[], Awaitable[list[str]]] = endpoints
    _, intervals = asyncio.run(
        run_load(schedule, fetch, model=model, interval_seconds=segment, max_in_flight=2048, seed=seed)
    )
    return intervals


def quantiles(interval: Interval) -> tuple[float, float, float, float]:
    lat = np.asarray(interval.latencies_ms, dtype=np.float64)
    if not len(lat):
        return (0.0, 0.0, 0.0, 0.0)
    q = np.percentile(lat, [50, 90, 95, 99])
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))


def calibrate(url: str, model: str, segment: float, start_rps: float, max_points: int, repeats: int) -> Profile:
    """Constant rates growing x1.6; each rate runs ``repeats`` segments and keeps the median of each quantile,
    so a burst of noise from other processes on the machine does not make one point. A rate saturates the
    server when it completes less than 90 % of what was offered, or requests fail or are dropped."""
    points: list[ProfilePoint] = []
    rate = start_rps
    for i in range(max_points):
        intervals = drive([url], model, [rate] * repeats, segment, seed=100 + i)
        achieved = float(np.median([len(x.latencies_ms) / segment for x in intervals]))
        q = np.median(np.asarray([quantiles(x) for x in intervals]), axis=0)
        failed = sum(x.errors + x.dropped for x in intervals)
        saturated = achieved < 0.9 * rate or failed > 0
        print(
            f"  calibrate {rate:8.1f} rps: achieved {achieved:8.1f}, p50 {q[0]:7.2f} p99 {q[3]:8.2f} ms"
            f"{'  (saturated)' if saturated else ''}",
            flush=True,
        )
        if saturated:
            break
        points.append(
            ProfilePoint(
                requests_per_second=rate,
                latency_ms=LatencyQuantiles(p50=q[0], p90=q[1], p95=q[2], p99=q[3]),
            )
        )
        rate *= 1.6
    if not points:
        raise SystemExit("the server saturated at the first calibration rate; lower --start-rps")
    return Profile(node_pool="local", points=points)


def manifest_profile(repo: Path, model: str) -> Profile:
    manifest = BuildManifest.model_validate_json((repo / "manifest.json").read_text())
    tier = next(t for t in manifest.tiers if t.name == model)
    profile = next(p for p in tier.profiles if p.points)
    print(f"  profile of {model} on {profile.node_pool} from the build manifest ({len(profile.points)} points)")
    return profile


def compare(curve: Curve, replicas: int, intervals: list[Interval], segment: float, slo_ms: float) -> dict[str, Any]:
    rows = []
    backlog = 0.0
    measured_in, predicted_in, total = 0.0, 0.0, 0.0
    for interval in intervals:
        outcome = serve_step(
            curve, replicas, interval.offered_rps, backlog, seconds=segment, slo_ms=slo_ms, percentile=99.0
        )
        backlog = outcome.backlog
        lat = np.asarray(interval.latencies_ms, dtype=np.float64)
        count = len(lat) + interval.errors + interval.dropped
        within = float((lat <= slo_ms).sum())
        measured = within / count if count else 1.0
        predicted = outcome.in_time / outcome.requests if outcome.requests else 1.0
        p99 = float(np.percentile(lat, 99)) if len(lat) else float("nan")
        rows.append(
            {
                "offeredRps": round(interval.offered_rps, 1),
                "measuredAttainment": round(measured, 4),
                "predictedAttainment": round(predicted, 4),
                "attainmentError": round(predicted - measured, 4),
                "measuredP99Ms": round(p99, 2),
                "predictedP99Ms": round(outcome.latency_ms, 2),
                "p99RelativeError": round((outcome.latency_ms - p99) / p99, 3) if p99 > 0 else None,
            }
        )
        measured_in += within
        predicted_in += outcome.in_time / outcome.requests * count if outcome.requests else count
        total += count
    run = {
        "measuredAttainment": round(measured_in / total, 4),
        "predictedAttainment": round(predicted_in / total, 4),
    }
    run["attainmentError"] = round(run["predictedAttainment"] - run["measuredAttainment"], 4)
    return {"replicas": replicas, "intervals": rows, "run": run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--model", default="fp32")
    parser.add_argument("--slo-ms", type=float, default=25.0)
    parser.add_argument("--segment", type=float, default=20.0, help="Seconds per rate of the step load.")
    parser.add_argument("--calibration-segment", type=float, default=10.0, help="Seconds per calibration run.")
    parser.add_argument("--start-rps", type=float, default=50.0)
    parser.add_argument("--max-points", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="Segments per calibration rate (median kept).")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--manifest-profile",
        action="store_true",
        help="Predict from the build's own profile (REPO/manifest.json, pool local) instead of calibrating.",
    )
    args = parser.parse_args()
    servers = [local_triton.start(args.repo) for _ in range(2)]
    try:
        for server in servers:
            server.wait_ready(180.0)
        urls = [s.http_url for s in servers]
        print(f"servers ready: {', '.join(urls)}", flush=True)
        profile = (
            manifest_profile(args.repo, args.model)
            if args.manifest_profile
            else calibrate(urls[0], args.model, args.calibration_segment, args.start_rps, args.max_points, args.repeats)
        )
        curve = Curve.from_profile(profile)
        saturation = curve.saturation_rps
        steps = [f * saturation for f in (0.3, 0.6, 1.2, 0.45)]
        results = []
        for replicas in (1, 2):
            print(f"step load on {replicas} replica(s): {[round(r) for r in steps]} rps", flush=True)
            intervals = drive(urls[:replicas], args.model, steps, args.segment, seed=7)
            results.append(compare(curve, replicas, intervals, args.segment, args.slo_ms))
    finally:
        for server in servers:
            server.stop()
    report = {"profile": profile.to_wire(), "sloMs": args.slo_ms, "results": results}
    for result in results:
        print(f"\n{result['replicas']} replica(s)")
        columns = ("offered", "att meas", "att pred", "err", "p99 meas", "p99 pred", "rel err")
        print(" ".join(f"{c:>9s}" for c in columns))
        for row in result["intervals"]:
            print(
                f"{row['offeredRps']:9.1f} {row['measuredAttainment']:9.4f} {row['predictedAttainment']:9.4f} "
                f"{row['attainmentError']:+7.4f} {row['measuredP99Ms']:9.2f} {row['predictedP99Ms']:9.2f} "
                f"{row['p99RelativeError'] if row['p99RelativeError'] is not None else float('nan'):+8.3f}"
            )
        print(f"run: {result['run']}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

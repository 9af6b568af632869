"""Precision tiers of the ctr-ranker example on this CPU, side by side, as ratios to fp32.

    python benchmarks/tiers.py [--rounds 5] [--rate 2000] [--seconds 2] [--json]

Builds the example (``--target local``, no profile; a second run reuses the build), then measures every
onnxruntime tier in interleaved rounds (the tier order rotates each round, so drift in a shared machine's
load hits every tier alike) and reports medians over the rounds:

- size: bytes of the tier's model.onnx;
- p99 @ rate: p99 latency (ms) of single-sample requests arriving open-loop (Poisson) at ``--rate`` per second,
  batched like Triton with the spec's dynamic batching (the builder's profiler);
- saturation throughput: samples per second of back-to-back onnxruntime calls at the largest batch
  (``maxBatchSize``), i.e. the most one model instance can do;
- batch-1 latency: median ms of one single-sample call.

Ratios are tier / fp32: below 1 is smaller / faster for size and latency, above 1 is faster for throughput.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from model_repo_builder import profile as prof
from model_repo_builder.pipeline import BuildOptions, build, load_spec
from model_repo_builder.runtime import session

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "ctr-ranker" / "modeldeployment.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=2000.0, help="open-loop request rate for the p99 column")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each open-loop measurement")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "fulcrum-bench-ctr-ranker")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    result = build(BuildOptions(spec_path=SPEC, out=args.out, target="local", profile=False))
    md = load_spec(SPEC)
    serving = md.spec.serving
    batching = prof.Batching(
        max_batch_size=md.spec.model.max_batch_size,
        max_queue_delay_s=serving.dynamic_batching.max_queue_delay_microseconds / 1e6,
        preferred_batch_sizes=tuple(serving.dynamic_batching.preferred_batch_sizes or ()),
        instances=serving.instances_per_replica,
    )
    data = dict(np.load(SPEC.parent / "validation.npz"))
    tiers = [t for t in result.manifest.tiers if t.state == "Ready" and t.backend == "onnxruntime" and t.path]
    files = {t.name: args.out / str(t.path) / "1" / "model.onnx" for t in tiers}
    runners = {name: prof.onnxruntime_runner(path, data, batching.instances) for name, path in files.items()}
    sessions = {name: session(path, 1) for name, path in files.items()}
    one = {k: v[:1] for k, v in data.items()}

    samples: dict[str, dict[str, list[float]]] = {n: {"p99": [], "throughput": [], "batch1": []} for n in files}
    names = list(files)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            run = runners[name]
            samples[name]["throughput"].append(prof.estimate_capacity(run, batching, seconds=1.0))
            point = prof.measure_point(run, batching, args.rate, args.seconds, seed=r)
            samples[name]["p99"].append(point.p99)
            timings = []
            for _ in range(200):
                start = time.perf_counter()
                sessions[name].run(None, one)
                timings.append((time.perf_counter() - start) * 1000)
            samples[name]["batch1"].append(statistics.median(timings))

    rows = {}
    for name in names:
        rows[name] = {
            "sizeBytes": files[name].stat().st_size,
            "p99Ms": statistics.median(samples[name]["p99"]),
            "saturationSamplesPerSecond": statistics.median(samples[name]["throughput"]),
            "batch1Ms": statistics.median(samples[name]["batch1"]),
            "accuracy": next(t.accuracy for t in tiers if t.name == name),
        }
    base = rows["fp32"]
    for row in rows.values():
        row["ratios"] = {
            "size": row["sizeBytes"] / base["sizeBytes"],
            "p99": row["p99Ms"] / base["p99Ms"],
            "saturationThroughput": row["saturationSamplesPerSecond"] / base["saturationSamplesPerSecond"],
            "batch1": row["batch1Ms"] / base["batch1Ms"],
        }
    unavailable = {t.name: f"{t.state}/{t.reason}" for t in result.manifest.tiers if t.name not in rows}
    if args.json:
        print(
            json.dumps(
                {"rate": args.rate, "rounds": args.rounds, "tiers": rows, "notBenchmarked": unavailable}, indent=2
            )
        )
        return
    print(
        f"ctr-ranker tiers on this CPU: {args.rounds} interleaved rounds, medians; p99 at {args.rate:g} rps open loop"
    )
    print(f"{'tier':<8}{'size KiB':>10}{'x fp32':>8}{'p99 ms':>9}{'x fp32':>8}{'sat. samples/s':>16}{'x fp32':>8}"
          f"{'batch-1 ms':>12}{'x fp32':>8}  MeanAbsError")  # fmt: skip
    for name, row in rows.items():
        ratio = row["ratios"]
        print(
            f"{name:<8}{row['sizeBytes'] / 1024:>10.1f}{ratio['size']:>8.2f}{row['p99Ms']:>9.2f}{ratio['p99']:>8.2f}"
            f"{row['saturationSamplesPerSecond']:>16.0f}{ratio['saturationThroughput']:>8.2f}"
            f"{row['batch1Ms']:>12.3f}{ratio['batch1']:>8.2f}  {row['accuracy'].get('MeanAbsError', 0):.2g}"
        )
    for name, state in unavailable.items():
        print(f"{name:<8} not benchmarked: {state}")


if __name__ == "__main__":
    main()

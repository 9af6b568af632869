"""Precision tiers of the ctr-ranker example on this CPU, side by side: the spec's serving config against the
config the build's search picks, served by the real (bundled) tritonserver; and the tiers in process, as
ratios to fp32.

    python benchmarks/tiers.py [--rounds 3] [--seconds 1.5] [--in-process-rounds 3] [--json]

1. **Capacity within the SLO, in tritonserver.** Builds the example (``--target local``, no measure stage;
   a second run reuses the build), starts the bundled tritonserver in explicit model-control mode on it and,
   for each tier, runs the build's config search (:mod:`model_repo_builder.search`, the spec's settings) to
   find its config. The search's own figures are the best of a few noisy measurements, so both configs are
   then measured again in ``--rounds`` interleaved rounds (the order rotates each round, so drift in a shared
   machine's load hits both alike): capacity within the SLO is the most requests per second, single-sample
   requests arriving open-loop (Poisson), whose latency at the SLO's percentile stayed within its latencyMs,
   as the build measures it. Medians over the rounds; the ratio is searched / default.
2. **In process** (``--in-process-rounds 0`` skips it): every onnxruntime tier behind the builder's Triton-like
   batcher with the spec's batching: model size, p99 at ``--rate`` open loop, saturation throughput at
   ``maxBatchSize`` and batch-1 latency, as ratios to fp32 (below 1 smaller / faster for size and latency,
   above 1 faster for throughput).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from model_repo_builder import profile as prof
from model_repo_builder import triton_config
from model_repo_builder.measure_stage import MeasureSettings, capacity_of, search_config
from model_repo_builder.pipeline import BuildOptions, build, load_spec
from model_repo_builder.runtime import session
from model_repo_builder.triton_control import bundled_server

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "ctr-ranker" / "modeldeployment.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved re-measurements of both configs")
    parser.add_argument("--seconds", type=float, default=1.5, help="duration of each open-loop point in tritonserver")
    parser.add_argument("--search-seconds", type=float, default=1.0, help="duration of each point of the search")
    parser.add_argument("--in-process-rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=2000.0, help="open-loop rate of the in-process p99 column")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "fulcrum-bench-ctr-ranker")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    result = build(BuildOptions(spec_path=SPEC, out=args.out, target="local", profile=False))
    md = load_spec(SPEC)
    data = dict(np.load(SPEC.parent / "validation.npz"))
    tiers = [t for t in result.manifest.tiers if t.state == "Ready" and t.backend == "onnxruntime" and t.path]
    report: dict[str, Any] = {
        "slo": {"latencyMs": md.spec.slo.latency_ms, "percentile": float(md.spec.slo.percentile)},
        "triton": served(args, md, tiers, data),
        "notBenchmarked": {t.name: f"{t.state}/{t.reason}" for t in result.manifest.tiers if t not in tiers},
    }
    if args.in_process_rounds:
        report["inProcess"] = in_process(args, md, tiers, data)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print_report(report, args)


def served(args: argparse.Namespace, md: Any, tiers: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    spec = md.spec
    settings = MeasureSettings(
        node_pool="local",
        slo_ms=float(spec.slo.latency_ms),
        percentile=float(spec.slo.percentile),
        checks=[],
        max_batch_size=spec.model.max_batch_size,
        search_candidates=spec.serving.config_search.max_candidates,
        search_seconds=args.search_seconds,
        max_instances=os.cpu_count() or 1,  # as the build does on the bundled server
    )
    measure_settings = dataclasses.replace(settings, search_seconds=args.seconds)
    seeds = itertools.count(1)
    rows: dict[str, Any] = {}
    configs: dict[str, dict[str, Any]] = {}
    with bundled_server(args.out) as server:
        for tier in tiers:
            name = str(tier.path)
            config = triton_config.parse((args.out / name / "config.pbtxt").read_text())
            outputs = [o.name for o in config.output]
            start = triton_config.knobs_of(config)
            began = time.perf_counter()
            outcome = search_config(
                server, name, config=config, inputs=data, outputs=outputs, settings=settings, seeds=seeds
            )
            seconds = time.perf_counter() - began
            configs[tier.name] = {"default": (config, start), "searched": (config, outcome.best)}
            rows[tier.name] = {
                "default": {"config": start.describe(), "samples": []},
                "searched": {"config": outcome.best.describe(), "samples": []},
                "search": {
                    "seconds": round(seconds, 1),
                    "candidates": [(k.describe(), None if c is None else round(c, 1)) for k, c in outcome.measured],
                },
            }
            server.unload(name)
        for r in range(args.rounds):
            for tier in tiers:
                order = ["default", "searched"] if (r + tiers.index(tier)) % 2 == 0 else ["searched", "default"]
                for which in order:
                    config, knobs = configs[tier.name][which]
                    outputs = [o.name for o in config.output]
                    capacity = capacity_of(
                        server, str(tier.path), config=triton_config.with_knobs(config, knobs), inputs=data,
                        outputs=outputs, settings=measure_settings, seeds=seeds,
                    )  # fmt: skip
                    rows[tier.name][which]["samples"].append(capacity or 0.0)
                server.unload(str(tier.path))
    for row in rows.values():
        for which in ("default", "searched"):
            row[which]["capacity"] = statistics.median(row[which]["samples"])
        base = row["default"]["capacity"]
        row["ratio"] = row["searched"]["capacity"] / base if base else None
    return rows


def in_process(args: argparse.Namespace, md: Any, tiers: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    serving = md.spec.serving
    batching = prof.Batching(
        max_batch_size=md.spec.model.max_batch_size,
        max_queue_delay_s=serving.dynamic_batching.max_queue_delay_microseconds / 1e6,
        preferred_batch_sizes=tuple(serving.dynamic_batching.preferred_batch_sizes or ()),
        instances=serving.instances_per_replica,
    )
    files = {t.name: args.out / str(t.path) / "1" / "model.onnx" for t in tiers}
    runners = {name: prof.onnxruntime_runner(path, data, batching.instances) for name, path in files.items()}
    sessions = {name: session(path, 1) for name, path in files.items()}
    one = {k: v[:1] for k, v in data.items()}
    samples: dict[str, dict[str, list[float]]] = {n: {"p99": [], "throughput": [], "batch1": []} for n in files}
    names = list(files)
    for r in range(args.in_process_rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run = runners[name]
            samples[name]["throughput"].append(prof.estimate_capacity(run, batching, seconds=1.0))
            samples[name]["p99"].append(prof.measure_point(run, batching, args.rate, 2.0, seed=r).p99)
            timings = []
            for _ in range(200):
                start = time.perf_counter()
                sessions[name].run(None, one)
                timings.append((time.perf_counter() - start) * 1000)
            samples[name]["batch1"].append(statistics.median(timings))
    rows: dict[str, Any] = {}
    for name in names:
        rows[name] = {
            "sizeBytes": files[name].stat().st_size,
            "p99Ms": statistics.median(samples[name]["p99"]),
            "saturationSamplesPerSecond": statistics.median(samples[name]["throughput"]),
            "batch1Ms": statistics.median(samples[name]["batch1"]),
        }
    base = rows["fp32"]
    for row in rows.values():
        row["ratios"] = {
            "size": row["sizeBytes"] / base["sizeBytes"],
            "p99": row["p99Ms"] / base["p99Ms"],
            "saturationThroughput": row["saturationSamplesPerSecond"] / base["saturationSamplesPerSecond"],
            "batch1": row["batch1Ms"] / base["batch1Ms"],
        }
    return rows


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    slo = report["slo"]
    print(
        f"ctr-ranker in the bundled tritonserver (CPU): capacity within p{slo['percentile']:g} <= "
        f"{slo['latencyMs']} ms, requests/s, median of {args.rounds} interleaved rounds ({args.seconds:g} s points)"
    )
    header = f"{'tier':<6}{'default config':<46}{'rps':>7}  {'searched config':<46}{'rps':>7}"
    print(f"{header}{'x default':>10}{'search s':>10}")
    for name, row in report["triton"].items():
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
        print(
            f"{name:<6}{row['default']['config']:<46}{row['default']['capacity']:>7.0f}  "
            f"{row['searched']['config']:<46}{row['searched']['capacity']:>7.0f}{ratio:>10}"
            f"{row['search']['seconds']:>10.1f}"
        )
    print("  the search's own figures (one measurement each; the spec's config and the winner, when they differ, the")
    print("  mean of two), in the order measured:")
    for name, row in report["triton"].items():
        found = ", ".join(f"{c} -> {'-' if v is None else f'{v:.0f}'}" for c, v in row["search"]["candidates"])
        print(f"  search {name}: {found}")
    if "inProcess" in report:
        rounds = args.in_process_rounds
        print(f"\nin process (onnxruntime + the builder's batcher), {rounds} rounds, medians; p99 at {args.rate:g} rps")
        print(f"{'tier':<8}{'size KiB':>10}{'x fp32':>8}{'p99 ms':>9}{'x fp32':>8}{'sat. samples/s':>16}{'x fp32':>8}"
              f"{'batch-1 ms':>12}{'x fp32':>8}")  # fmt: skip
        for name, row in report["inProcess"].items():
            ratio = row["ratios"]
            print(
                f"{name:<8}{row['sizeBytes'] / 1024:>10.1f}{ratio['size']:>8.2f}{row['p99Ms']:>9.2f}"
                f"{ratio['p99']:>8.2f}{row['saturationSamplesPerSecond']:>16.0f}{ratio['saturationThroughput']:>8.2f}"
                f"{row['batch1Ms']:>12.3f}{ratio['batch1']:>8.2f}"
            )
    for name, state in report["notBenchmarked"].items():
        print(f"{name:<8} not benchmarked: {state}")


if __name__ == "__main__":
    main()

"""TensorRT tiers of the ctr-ranker example on a GPU, measured as the build Job measures them: through Triton.

Run it through ``benchmarks/gpu_tensorrt.sh`` (which prepares the project's Python, TensorRT and a Triton
container); by hand:

    python benchmarks/gpu_tensorrt.py --triton-url 127.0.0.1:8000 --triton-repository /srv/triton-models

1. Writes a variant of the example for one GPU pool (``gpu``) with the tiers fp32 (onnxruntime), fp16-trt and
   int8-trt (TensorRT; int8 from the QDQ graph calibrated on the validation data's calibration rows).
2. Builds it like the build Job's init container (``--target triton --no-profile``): export, onnxruntime
   tiers, TensorRT engines (shape ranges from the spec's dims, timing cache, workspace from the spec).
3. Measures it like the Job's main container (``--triton-url``): every tier loaded into the Triton server on
   the GPU, gated on the held-out validation rows, its serving config searched, and profiled with the config
   that serves.
4. Prints, per tier, the capacity within the SLO (the most requests/s whose p99 stayed within latencyMs, read
   from the search's best candidate) and its ratio to onnxruntime fp32 on the same GPU, with accuracy and where
   it was gated; writes ``$OUT/gpu_tensorrt.json`` when ``OUT`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import yaml

from fulcrum.api import BuildManifest
from model_repo_builder import search
from model_repo_builder.pipeline import BuildOptions, build

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ctr-ranker"
TIERS = [
    {"name": "fp32", "precision": "fp32", "backend": "onnxruntime"},
    {"name": "fp16-trt", "precision": "fp16", "backend": "tensorrt"},
    {"name": "int8-trt", "precision": "int8", "backend": "tensorrt", "calibration": {"samples": 256}},
]


def gpu_spec(work: Path) -> Path:
    document = yaml.safe_load((EXAMPLE / "modeldeployment.yaml").read_text())
    spec = document["spec"]
    spec["model"]["source"]["uri"] = f"file://{EXAMPLE / 'model.pt2'}"
    spec["accuracy"]["validationData"]["uri"] = f"file://{EXAMPLE / 'validation.npz'}"
    spec["tiers"] = TIERS
    spec["nodePools"] = [{"name": "gpu", "gpusPerReplica": 1, "costPerHour": "1.00"}]
    work.mkdir(parents=True, exist_ok=True)
    path = work / "modeldeployment.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def capacity(tier: Any, slo_ms: float) -> tuple[float | None, str]:
    """The chosen config's capacity within the SLO (the search's figure; else read off the profile's p99)."""
    if not tier.profiles:
        return None, "-"
    profile = tier.profiles[-1]
    config = profile.config
    described = "-" if config is None else f"x{config.instances} {config.max_queue_delay_microseconds}us"
    if profile.search is not None:
        chosen = [c.requests_per_second for c in profile.search.candidates if c.config == config]
        if chosen and chosen[0] is not None:
            return chosen[0], described
    points = [search.Point(p.requests_per_second, p.latency_ms.p99) for p in profile.points]
    return search.capacity_within_slo(points, slo_ms), described


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triton-url", required=True, help="the Triton server on the GPU (explicit model control)")
    parser.add_argument("--triton-repository", type=Path, required=True, help="the folder that server serves")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fulcrum-gpu-ctr-ranker"))
    parser.add_argument("--profile-seconds", type=float, default=2.0)
    parser.add_argument("--search-seconds", type=float, default=1.5)
    args = parser.parse_args()

    spec_path = gpu_spec(args.work)
    out = args.work / "repo"
    common = {"spec_path": spec_path, "out": out, "target": "triton", "node_pool": "gpu"}
    built = build(BuildOptions(**common, profile=False, force=True), _progress)  # the Job's init container
    print(
        f"built in {sum(built.timings.values()):.0f} s: " + ", ".join(f"{k} {v:.1f}s" for k, v in built.timings.items())
    )
    measured = build(
        BuildOptions(
            **common,
            triton_url=args.triton_url,
            triton_repository=args.triton_repository,
            profile_duration=args.profile_seconds,
            search_seconds=args.search_seconds,
        ),
        _progress,
    )  # the Job's main container
    manifest: BuildManifest = measured.manifest
    slo = yaml.safe_load(spec_path.read_text())["spec"]["slo"]
    rows: dict[str, Any] = {}
    for tier in manifest.tiers:
        rps, config = capacity(tier, float(slo["latencyMs"]))
        rows[tier.name] = {
            "state": f"{tier.state}/{tier.reason}",
            "capacityWithinSlo": rps,
            "config": config,
            "meanAbsError": tier.accuracy.get("MeanAbsError"),
            "gatedOn": tier.validation.gated_on if tier.validation else "",
            "searchSeconds": tier.profiles[-1].search.seconds if tier.profiles and tier.profiles[-1].search else None,
            "message": tier.message,
        }
    base = rows.get("fp32", {}).get("capacityWithinSlo")
    for row in rows.values():
        row["vsOnnxruntimeFp32"] = row["capacityWithinSlo"] / base if base and row["capacityWithinSlo"] else None
    report = {
        "gpu": manifest.gpu_product,
        "slo": slo,
        "timings": {k: round(v, 1) for k, v in measured.timings.items()},
        "tiers": rows,
    }
    print(f"\nctr-ranker on {manifest.gpu_product}: capacity within p{slo['percentile']} <= {slo['latencyMs']} ms")
    print(f"{'tier':<10}{'state':<24}{'config':<18}{'rps':>10}{'x ort fp32':>12}{'MeanAbsErr':>12}  gated on")
    for name, row in rows.items():
        shown = _fmt(row["capacityWithinSlo"], ".0f")
        ratio = _fmt(row["vsOnnxruntimeFp32"], ".2f")
        error = _fmt(row["meanAbsError"], ".2g")
        print(f"{name:<10}{row['state']:<24}{row['config']:<18}{shown:>10}{ratio:>12}{error:>12}  {row['gatedOn']}")
    for name, row in rows.items():
        if not row["state"].startswith("Ready"):
            print(f"  {name}: {row['message']}")
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "gpu_tensorrt.json").write_text(json.dumps(report, indent=2))


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _progress(stage: str, message: str, seconds: float | None) -> None:
    if seconds is not None:
        print(f"  {stage}: {seconds:.1f}s", flush=True)


if __name__ == "__main__":
    main()

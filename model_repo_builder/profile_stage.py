"""In-process profiles (``--profile-server onnxruntime``): onnxruntime behind a Triton-like batcher, no server.

This measures the model and the batching alone, on the build machine's CPU: quick, for development and for
the benchmarks. It cannot run TensorRT plans and gates nothing on a device: profiles that the operator should
believe come from :mod:`model_repo_builder.measure_stage` (Triton itself).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from fulcrum.api import BuildManifest
from model_repo_builder import profile as prof
from model_repo_builder.dtypes import Array
from model_repo_builder.measure_stage import to_profile, todo

Stage = Callable[[str, str], AbstractContextManager[None]]
"""``stage(name, message)``: a context manager that reports and times one stage."""


def profile_in_process(
    manifest: BuildManifest,
    *,
    out: Path,
    node_pool: str,
    inputs: dict[str, Array],
    batching: prof.Batching,
    duration: float,
    max_points: int | None,
    stage: Stage,
) -> BuildManifest:
    """A profile for ``node_pool`` on every Ready onnxruntime tier that lacks one (TensorRT tiers are left)."""
    measured: dict[str, list[prof.PointResult]] = {}
    for tier in todo(manifest, node_pool):
        if tier.backend != "onnxruntime":
            continue
        with stage(f"profile:{tier.name}", f"profiling tier {tier.name} in process ({node_pool})"):
            run = prof.onnxruntime_runner(out / str(tier.path) / "1" / "model.onnx", inputs, batching.instances)
            measured[tier.name] = prof.profile(run, batching, duration=duration, max_points=max_points)
    tiers = [
        t.model_copy(update={"profiles": [*t.profiles, to_profile(node_pool, measured[t.name])]})
        if t.name in measured
        else t
        for t in manifest.tiers
    ]
    return manifest.model_copy(update={"tiers": tiers})

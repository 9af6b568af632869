"""The profile stage: a latency profile for ``--node-pool`` on every Ready onnxruntime tier that lacks one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Literal

from fulcrum.api import BuildManifest, LatencyQuantiles, Profile, ProfilePoint
from model_repo_builder import profile as prof
from model_repo_builder.dtypes import Array

Stage = Callable[[str, str], AbstractContextManager[None]]
"""``stage(name, message)``: a context manager that reports and times one stage."""


def to_profile(node_pool: str, points: Sequence[prof.PointResult]) -> Profile:
    return Profile(
        node_pool=node_pool,
        points=[
            ProfilePoint(
                requests_per_second=round(p.offered_rps, 2),
                latency_ms=LatencyQuantiles(
                    p50=round(p.p50, 3), p90=round(p.p90, 3), p95=round(p.p95, 3), p99=round(p.p99, 3)
                ),
            )
            for p in points
        ],
    )


def profile_missing(
    manifest: BuildManifest,
    *,
    out: Path,
    node_pool: str,
    data: Callable[[], dict[str, Array]],
    batching: prof.Batching,
    server: Literal["onnxruntime", "tritonserver"],
    duration: float,
    max_points: int | None,
    stage: Stage,
) -> BuildManifest:
    """``data()`` gives the request inputs (called only when there is something to profile)."""
    from model_repo_builder import onnx_graph

    todo = [
        t
        for t in manifest.tiers
        if t.state == "Ready"
        and t.backend == "onnxruntime"
        and t.path is not None
        and not any(p.node_pool == node_pool for p in t.profiles)
    ]
    if not todo:
        return manifest
    inputs = data()
    measured: dict[str, list[prof.PointResult]] = {}
    if server == "tritonserver":
        from model_repo_builder import profile_triton

        _, graph_out = onnx_graph.graph_io(onnx_graph.load(out / str(todo[0].path) / "1" / "model.onnx"))
        with ExitStack() as stack:
            with stage("tritonserver", f"starting the bundled tritonserver on {out}"):
                address = stack.enter_context(profile_triton.local_server(out))
            for tier in todo:
                with stage(f"profile:{tier.name}", f"profiling tier {tier.name} in tritonserver ({node_pool})"):
                    send = profile_triton.http_sender(address, str(tier.path), inputs, [t.name for t in graph_out])
                    measured[tier.name] = profile_triton.profile_model(send, duration=duration, max_points=max_points)
    else:
        for tier in todo:
            with stage(f"profile:{tier.name}", f"profiling tier {tier.name} on {node_pool}"):
                run = prof.onnxruntime_runner(out / str(tier.path) / "1" / "model.onnx", inputs, batching.instances)
                measured[tier.name] = prof.profile(run, batching, duration=duration, max_points=max_points)
    tiers = [
        t.model_copy(update={"profiles": [*t.profiles, to_profile(node_pool, measured[t.name])]})
        if t.name in measured
        else t
        for t in manifest.tiers
    ]
    return manifest.model_copy(update={"tiers": tiers})

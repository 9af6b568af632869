"""The measure stage: every Ready tier gated, searched and profiled through the Triton that will serve it.

For each Ready tier without a profile for the pool (``--node-pool``), against one :class:`TritonServer`:

1. **Gate.** The tier is loaded with its config and the gate rows of the validation data are sent through
   Triton in batches of ``maxBatchSize``; its outputs are checked against the fp32 reference (computed on
   the CPU at build time, kept in the repository). A tier that fails is ``Failed`` /
   ``AccuracyCheckFailed``; one that Triton cannot load or run (a TensorRT plan from another TensorRT, a
   backend the image lacks) is ``Failed`` / ``ServingFailed`` with Triton's message. Its directory is removed.
2. **Config search** (unless off): :mod:`model_repo_builder.search` over instances, max queue delay and
   preferred batch sizes, each candidate loaded with a config override and measured open-loop for its
   capacity within the SLO; the best is written to the tier's ``config.pbtxt`` (what serves).
3. **Profile.** The open-loop latency curve with the config that serves, recorded with that config and the
   search's candidates.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fulcrum.api import (
    BuildManifest,
    ConfigSearchResult,
    ManifestTier,
    Profile,
    SearchCandidate,
    ServingConfig,
    ValidationSplit,
)
from model_repo_builder import accuracy as acc
from model_repo_builder import profile as prof
from model_repo_builder import search, triton_config, validation
from model_repo_builder.dtypes import Array
from model_repo_builder.repository import directory_size
from model_repo_builder.search import Knobs
from model_repo_builder.triton_control import TritonError, TritonServer, http_sender

Stage = Callable[[str, str], AbstractContextManager[None]]
REFERENCE_FILE = ".fulcrum-reference.npz"
"""The fp32 reference outputs on the gate rows, kept in the repository root for later measure stages."""


@dataclass(frozen=True)
class MeasureSettings:
    node_pool: str
    slo_ms: float
    percentile: float
    checks: list[acc.Check]
    max_batch_size: int
    duration: float = 3.0
    """Seconds of each profile point."""
    max_points: int | None = None
    search: bool = True
    search_candidates: int = 6
    search_seconds: float = 1.0
    """Seconds of each open-loop point of the search."""
    max_instances: int = 4
    clients: int = 32
    start: Knobs | None = None
    """The spec's serving config, where the search starts (None: the tier's config.pbtxt)."""


def save_reference(out: Path, reference: dict[str, Array]) -> None:
    with (out / REFERENCE_FILE).open("wb") as handle:
        np.savez(handle, **reference)


def load_reference(out: Path) -> dict[str, Array] | None:
    path = out / REFERENCE_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def todo(manifest: BuildManifest, node_pool: str) -> list[ManifestTier]:
    """Ready tiers with a model directory and no profile for ``node_pool`` yet."""
    return [
        t
        for t in manifest.tiers
        if t.state == "Ready" and t.path is not None and not any(p.node_pool == node_pool for p in t.profiles)
    ]


def serving_config(knobs: search.Knobs) -> ServingConfig:
    return ServingConfig(
        instances=knobs.instances,
        max_queue_delay_microseconds=knobs.max_queue_delay_us,
        preferred_batch_sizes=list(knobs.preferred),
    )


def to_profile(
    node_pool: str,
    points: Sequence[prof.PointResult],
    config: ServingConfig | None = None,
    searched: ConfigSearchResult | None = None,
) -> Profile:
    from fulcrum.api import LatencyQuantiles, ProfilePoint

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
        config=config,
        search=searched,
    )


def capacity_of(
    server: TritonServer,
    name: str,
    *,
    config: Any,
    inputs: dict[str, Array],
    outputs: Sequence[str],
    settings: MeasureSettings,
    seeds: Iterator[int],
    scale: float | None = None,
) -> float | None:
    """Capacity within the SLO of ``name`` served with ``config`` (None: Triton would not load it).

    ``scale``: a capacity measured before (another candidate's) to start from; else a closed-loop estimate.
    """
    try:
        server.load(name, triton_config.to_json(config))
    except TritonError:
        return None
    send = http_sender(server.address, name, inputs, outputs)

    def point(rate: float) -> search.Point:
        result = prof.open_loop(
            send, rate, settings.search_seconds, next(seeds), workers=settings.clients, percentile=settings.percentile
        )
        return search.Point(result.offered_rps, result.tail_ms, result.saturated)

    try:
        if scale:
            send()  # warm
            upper = 2 * scale
        else:
            upper = prof.closed_loop_capacity(send, clients=16, seconds=settings.search_seconds)
        capacity, _ = search.find_capacity(point, upper, settings.slo_ms)
    except Exception:  # every request failed (tritonclient raises its own types): this config cannot serve
        return None
    return capacity


def search_config(
    server: TritonServer,
    name: str,
    *,
    config: Any,
    inputs: dict[str, Array],
    outputs: Sequence[str],
    settings: MeasureSettings,
    seeds: Iterator[int],
) -> search.Outcome:
    """The config search of one loaded-by-name model: each candidate's capacity within the SLO, the best kept.

    The first candidate (the spec's config) is scaled by a closed-loop estimate; later ones start from the best
    capacity found so far.
    """
    start = settings.start or triton_config.knobs_of(config)
    knob_axes = search.axes(
        start, max_batch_size=settings.max_batch_size, slo_ms=settings.slo_ms, max_instances=settings.max_instances
    )
    found: list[float] = []

    def measure(knobs: search.Knobs) -> float | None:
        capacity = capacity_of(
            server,
            name,
            config=triton_config.with_knobs(config, knobs),
            inputs=inputs,
            outputs=outputs,
            settings=settings,
            seeds=seeds,
            scale=max(found, default=None),
        )
        if capacity:
            found.append(capacity)
        return capacity

    return search.coordinate_search(start, knob_axes, measure, max_candidates=settings.search_candidates)


def measure_on_triton(
    manifest: BuildManifest,
    *,
    out: Path,
    server: TritonServer,
    data: dict[str, Array],
    reference: dict[str, Array],
    settings: MeasureSettings,
    stage: Stage,
) -> BuildManifest:
    """Gate, search and profile every tier of :func:`todo`; returns the manifest with the results."""
    tiers = {t.name: t for t in manifest.tiers}
    seeds = itertools.count(1)
    for tier in todo(manifest, settings.node_pool):
        tiers[tier.name] = _measure_tier(tier, out=out, server=server, data=data, reference=reference,
                                         settings=settings, stage=stage, seeds=seeds)  # fmt: skip
    return manifest.model_copy(update={"tiers": [tiers[t.name] for t in manifest.tiers]})


def _failed(tier: ManifestTier, out: Path, reason: str, message: str, **update: Any) -> ManifestTier:
    shutil.rmtree(out / str(tier.path), ignore_errors=True)
    return tier.model_copy(update={"state": "Failed", "reason": reason, "message": message, "path": None, **update})


def _measure_tier(
    tier: ManifestTier,
    *,
    out: Path,
    server: TritonServer,
    data: dict[str, Array],
    reference: dict[str, Array],
    settings: MeasureSettings,
    stage: Stage,
    seeds: Iterator[int],
) -> ManifestTier:
    model_dir = out / str(tier.path)
    name = model_dir.name
    config = triton_config.parse((model_dir / "config.pbtxt").read_text())
    outputs = [o.name for o in config.output]
    total = len(next(iter(data.values())))
    split = tier.validation or ValidationSplit(gate_rows=[0, total])
    gate_span = (split.gate_rows[0], split.gate_rows[1])
    server.stage(model_dir)
    try:
        with stage(f"gate:{tier.name}", f"gating tier {tier.name} through {server.description}"):
            server.load(name, triton_config.to_json(config))
            served = server.infer(name, validation.rows(data, gate_span), outputs, settings.max_batch_size)
    except TritonError as error:
        server.unload(name)
        message = f"{server.description} could not serve it: {str(error)[:600]}"
        return _failed(tier, out, "ServingFailed", message)
    evaluation = acc.evaluate(reference, served, settings.checks)
    gated = split.model_copy(update={"gated_on": server.description})
    if not evaluation.passed:
        server.unload(name)
        message = f"{tier.message}; failed on {server.description}: {', '.join(evaluation.failures)}"
        return _failed(tier, out, "AccuracyCheckFailed", message, accuracy=evaluation.metrics, validation=gated)

    current = triton_config.knobs_of(config)
    chosen = current
    searched: ConfigSearchResult | None = None
    if settings.search:
        with stage(f"search:{tier.name}", f"searching serving configs of tier {tier.name}"):
            began = time.perf_counter()
            outcome = search_config(
                server, name, config=config, inputs=data, outputs=outputs, settings=settings, seeds=seeds
            )
            searched = ConfigSearchResult(
                candidates=[
                    SearchCandidate(config=serving_config(k), requests_per_second=None if c is None else round(c, 1))
                    for k, c in outcome.measured
                ],
                seconds=round(time.perf_counter() - began, 1),
            )
        chosen = outcome.best
        if chosen != current:
            config = triton_config.with_knobs(config, chosen)
            (model_dir / "config.pbtxt").write_text(triton_config.to_text(config))
    with stage(f"profile:{tier.name}", f"profiling tier {tier.name} in {server.description} ({settings.node_pool})"):
        try:
            server.load(name, triton_config.to_json(config))
            send = http_sender(server.address, name, data, outputs)
            points = profile_model(send, duration=settings.duration, max_points=settings.max_points,
                                   clients=settings.clients)  # fmt: skip
        except Exception as error:  # a tier that fails under load is the tier's state, not the build's
            message = f"{server.description} failed it under load: {str(error)[:600]}"
            return _failed(tier, out, "ServingFailed", message)
        finally:
            server.unload(name)
    profile = to_profile(settings.node_pool, points, serving_config(chosen), searched)
    update: dict[str, Any] = {
        "accuracy": evaluation.metrics,
        "validation": gated,
        "profiles": [*tier.profiles, profile],
    }
    if tier.size_bytes is not None:  # the searched config.pbtxt may differ in length
        update["size_bytes"] = directory_size(model_dir)
    return tier.model_copy(update=update)


def profile_model(
    send: Callable[[], None],
    *,
    duration: float,
    max_points: int | None,
    fractions: Sequence[float] = prof.DEFAULT_FRACTIONS,
    clients: int = 32,
) -> list[prof.PointResult]:
    """The open-loop curve of a served model: rates at ``fractions`` of a closed-loop estimate, to saturation."""
    capacity = prof.closed_loop_capacity(send, clients=8, seconds=1.0)
    return prof.profile_curve(
        lambda rate, seed: prof.open_loop(send, rate, duration, seed, workers=clients),
        capacity,
        fractions=fractions,
        max_points=max_points,
    )

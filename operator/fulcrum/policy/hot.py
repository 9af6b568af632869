"""Hot tiers: which Ready tiers each replica of a pool loads together (pure; imports only ``fulcrum.api``).

A replica that has several tiers loaded serves the ModelDeployment's model name through a routing model, so
a switch among them is a routing change inside the running replicas (milliseconds) instead of new pods.

The rule: the candidates are the Ready tiers (``serving.hotTiers`` narrows them; ``[]`` turns hot tiers off), in
spec order, most accurate first. When the pool's memory per replica is known, each candidate is kept only if
it fits beside the ones kept before it; a tier takes :data:`LOAD_FACTOR` times its size on disk (the weights,
plus as much again for the runtime's workspace and the second copy Triton holds while it reloads a model). A
tier whose size is unknown is not loaded beside others on such a pool: nothing says it fits. Without a known
memory every candidate is loaded. A tier left out is served cold: a switch to it starts new pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fulcrum.api import ModelDeploymentSpec, NodePool

LOAD_FACTOR = 2
"""Memory a loaded tier takes, as a multiple of its files' size."""


@dataclass(frozen=True)
class LeftOut:
    """A Ready tier a pool's replicas do not load with the hot ones, and why."""

    tier: str
    reason: str  # DoesNotFit | SizeUnknown | NotListed
    message: str


@dataclass(frozen=True)
class HotLayout:
    """What each replica of one pool loads together, and the Ready tiers it leaves out."""

    tiers: tuple[str, ...]
    left_out: tuple[LeftOut, ...] = ()
    memory_bytes: int | None = None

    @property
    def hot(self) -> bool:
        """Whether switching among this pool's tiers is hot (two or more loaded together)."""
        return len(self.tiers) > 1


def hot_tiers(spec: ModelDeploymentSpec, pool: NodePool, tier_bytes: Mapping[str, int | None]) -> tuple[str, ...]:
    """The Ready tiers (keys of ``tier_bytes``, in spec order) each replica of ``pool`` loads together.

    ``tier_bytes``: each Ready tier's size on ``pool`` in bytes, None when unknown. A result of length <= 1
    means no hot switching on that pool.
    """
    return hot_layout(spec, pool, tier_bytes).tiers


def hot_layout(spec: ModelDeploymentSpec, pool: NodePool, tier_bytes: Mapping[str, int | None]) -> HotLayout:
    """:func:`hot_tiers` with the reasons for every Ready tier it leaves out (for status)."""
    ready = [t.name for t in spec.tiers if t.name in tier_bytes]
    listed = spec.serving.hot_tiers
    left_out: list[LeftOut] = []
    candidates = ready
    if listed is not None:
        candidates = [name for name in ready if name in listed]
        for name in ready:
            if name not in listed:
                left_out.append(LeftOut(name, "NotListed", f"{name} is not in spec.serving.hotTiers"))
    memory = spec.pool_memory_bytes(pool)
    if memory is None:
        return HotLayout(tuple(candidates), tuple(left_out), None)
    kept: list[str] = []
    used = 0
    for name in candidates:
        size = tier_bytes[name]
        if size is None:
            left_out.append(
                LeftOut(name, "SizeUnknown", f"the build did not record the size of {name}, so it is loaded alone")
            )
            continue
        need = LOAD_FACTOR * size
        if used + need > memory:
            beside = f" beside {', '.join(kept)} ({_size(used)})" if kept else ""
            left_out.append(
                LeftOut(
                    name,
                    "DoesNotFit",
                    f"{name} takes {_size(need)} ({LOAD_FACTOR}x its {_size(size)} of files); {_size(memory)} "
                    f"per replica on pool {pool.name} leaves {_size(max(0, memory - used))}{beside}",
                )
            )
            continue
        kept.append(name)
        used += need
    return HotLayout(tuple(kept), tuple(sorted(left_out, key=lambda x: ready.index(x.tier))), memory)


def _size(n: int) -> str:
    """Bytes for people: 1.5 GiB, 300 MiB, 12 KiB, 800 B."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g} {unit}"
    return f"{n} B"

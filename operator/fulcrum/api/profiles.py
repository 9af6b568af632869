"""Latency profiles: how a tier performs on a node pool under increasing open-loop load.

The same shape appears in a build's ``manifest.json``, in ``status.tiers[].profiles`` and in the
``PROFILES.json`` that ``fulcrum simulate`` reads.
"""

from __future__ import annotations

from pydantic import Field

from fulcrum.api.base import StatusModel


class LatencyQuantiles(StatusModel):
    """Latency quantiles in milliseconds at one request rate."""

    p50: float = Field(ge=0, description="Median latency in milliseconds.")
    p90: float = Field(ge=0, description="90th percentile latency in milliseconds.")
    p95: float = Field(ge=0, description="95th percentile latency in milliseconds.")
    p99: float = Field(ge=0, description="99th percentile latency in milliseconds.")


class ProfilePoint(StatusModel):
    """Latency measured at one offered request rate."""

    requests_per_second: float = Field(ge=0, description="Offered open-loop request rate of one replica.")
    latency_ms: LatencyQuantiles = Field(description="Latency quantiles at that rate.")


class ServingConfig(StatusModel):
    """Triton's serving knobs of one tier: what a profile was measured with."""

    instances: int = Field(ge=1, description="Model instances per replica (instance_group count).")
    max_queue_delay_microseconds: int = Field(ge=0, description="Dynamic batching: longest wait to form a batch.")
    preferred_batch_sizes: list[int] = Field(default_factory=list, description="Dynamic batching: preferred sizes.")


class SearchCandidate(StatusModel):
    """One config the build's search measured."""

    config: ServingConfig = Field(description="The config measured.")
    requests_per_second: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Most requests per second it served within the SLO (for the spec's config and the chosen one, when they "
            "differ, the mean of two measurements); absent: it did not load."
        ),
    )


class ConfigSearchResult(StatusModel):
    """What the build's config search measured for one tier on one pool."""

    candidates: list[SearchCandidate] = Field(description="Each config measured, in the order measured.")
    seconds: float = Field(ge=0, description="How long the search took.")


class Profile(StatusModel):
    """One tier's latency curve on one node pool, rates increasing up to saturation."""

    node_pool: str = Field(description="Node pool the profile was measured for.")
    points: list[ProfilePoint] = Field(description="Points in increasing request rate.")
    config: ServingConfig | None = Field(default=None, description="The serving config measured (the one that serves).")
    search: ConfigSearchResult | None = Field(default=None, description="The config search that chose config.")


class TierProfiles(StatusModel):
    """All profiles of one tier (PROFILES.json entry)."""

    name: str = Field(description="Tier name.")
    profiles: list[Profile] = Field(default_factory=list, description="One profile per node pool.")


class ProfilesFile(StatusModel):
    """The ``PROFILES.json`` file read by ``fulcrum simulate``."""

    tiers: list[TierProfiles] = Field(description="Profiles per tier.")

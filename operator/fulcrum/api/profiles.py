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


class Profile(StatusModel):
    """One tier's latency curve on one node pool, rates increasing up to saturation."""

    node_pool: str = Field(description="Node pool the profile was measured for.")
    points: list[ProfilePoint] = Field(description="Points in increasing request rate.")


class TierProfiles(StatusModel):
    """All profiles of one tier (PROFILES.json entry)."""

    name: str = Field(description="Tier name.")
    profiles: list[Profile] = Field(default_factory=list, description="One profile per node pool.")


class ProfilesFile(StatusModel):
    """The ``PROFILES.json`` file read by ``fulcrum simulate``."""

    tiers: list[TierProfiles] = Field(description="Profiles per tier.")

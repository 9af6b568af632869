"""``DIR/manifest.json``, written by a build and read by the operator (format in DESIGN.md)."""

from __future__ import annotations

from pydantic import Field

from fulcrum.api.base import StatusModel
from fulcrum.api.profiles import Profile
from fulcrum.api.status import TierState


class ManifestSource(StatusModel):
    uri: str = Field(description="The model source URI as given in the spec.")
    sha256: str = Field(description="SHA-256 of the model file that was built.")


class ManifestTier(StatusModel):
    name: str
    precision: str
    backend: str
    state: TierState
    reason: str = ""
    message: str = ""
    accuracy: dict[str, float] = Field(default_factory=dict)
    profiles: list[Profile] = Field(default_factory=list)
    path: str | None = Field(default=None, description="Triton model directory, relative to the repository root.")


class BuildManifest(StatusModel):
    model: str
    source: ManifestSource
    tiers: list[ManifestTier]

    def ready_tiers(self) -> list[ManifestTier]:
        return [t for t in self.tiers if t.state == "Ready"]

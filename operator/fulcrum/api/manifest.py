"""``DIR/manifest.json``, written by a build and read by the operator (format in DESIGN.md)."""

from __future__ import annotations

from pydantic import Field

from fulcrum.api.base import StatusModel
from fulcrum.api.profiles import Profile
from fulcrum.api.status import TierState, ValidationSplit


class ManifestSource(StatusModel):
    uri: str = Field(description="The model source URI as given in the spec.")
    sha256: str = Field(description="SHA-256 of the model file that was built.")


class ManifestTensor(StatusModel):
    """An input or output as every tier of the build serves it (without the batch dimension)."""

    name: str
    data_type: str = Field(description="Triton data type name: FP32, INT64, BYTES...")
    dims: list[int]


class ManifestTier(StatusModel):
    name: str
    precision: str
    backend: str
    state: TierState
    reason: str = ""
    message: str = ""
    accuracy: dict[str, float] = Field(default_factory=dict)
    validation: ValidationSplit | None = None
    profiles: list[Profile] = Field(default_factory=list)
    path: str | None = Field(default=None, description="Triton model directory, relative to the repository root.")
    size_bytes: int | None = Field(default=None, description="Size of the tier's model directory, bytes.")


class BuildManifest(StatusModel):
    model: str
    source: ManifestSource
    tiers: list[ManifestTier]
    inputs: list[ManifestTensor] | None = Field(
        default=None, description="What every tier takes; the served model name routes requests with this IO."
    )
    outputs: list[ManifestTensor] | None = Field(default=None, description="What every tier returns.")
    max_batch_size: int | None = Field(default=None, description="The tiers' max_batch_size.")
    gpu_product: str | None = Field(
        default=None,
        description="The GPU the build ran on, as the nvidia.com/gpu.product node label names it (TensorRT plans "
        "run only on it).",
    )

    def ready_tiers(self) -> list[ManifestTier]:
        return [t for t in self.tiers if t.state == "Ready"]

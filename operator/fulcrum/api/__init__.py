"""The ModelDeployment API (``fulcrum.dev/v1alpha1``): spec, status, manifest and profile models.

Both the operator and the builder parse specs with these models; the CRD is generated from them.
"""

from fulcrum.api.manifest import BuildManifest, ManifestSource, ManifestTier
from fulcrum.api.profiles import LatencyQuantiles, Profile, ProfilePoint, ProfilesFile, TierProfiles
from fulcrum.api.resource import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ModelDeployment,
    format_validation_error,
    parse_model_deployment,
    parse_spec,
)
from fulcrum.api.spec import (
    SLO,
    AccuracyCheck,
    AccuracySpec,
    Budget,
    Calibration,
    ModelDeploymentSpec,
    ModelSource,
    ModelSpec,
    NodePool,
    Repository,
    Scaling,
    Serving,
    TensorSpec,
    Tier,
)
from fulcrum.api.status import (
    BuildStatus,
    Condition,
    LastDecision,
    ModelDeploymentStatus,
    Observed,
    TierStatus,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "SLO",
    "VERSION",
    "AccuracyCheck",
    "AccuracySpec",
    "Budget",
    "BuildManifest",
    "BuildStatus",
    "Calibration",
    "Condition",
    "LastDecision",
    "LatencyQuantiles",
    "ManifestSource",
    "ManifestTier",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelSource",
    "ModelSpec",
    "NodePool",
    "Observed",
    "Profile",
    "ProfilePoint",
    "ProfilesFile",
    "Repository",
    "Scaling",
    "Serving",
    "TensorSpec",
    "Tier",
    "TierProfiles",
    "TierStatus",
    "format_validation_error",
    "parse_model_deployment",
    "parse_spec",
]

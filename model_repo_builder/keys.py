"""Content addressing: a build is keyed by what determines its output, so the same build twice reuses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

BUILDER_FORMAT = 3
"""Bumped when the builder's output for the same inputs changes (so old results are not reused)."""


def content_key(
    *,
    model_sha256: str,
    source_format: str,
    target: str,
    model_io: Mapping[str, Any],
    tiers: list[Mapping[str, Any]],
    accuracy: Mapping[str, Any],
    validation_sha256: str | None,
    serving: Mapping[str, Any],
    opset: int,
    search: Mapping[str, Any] | None = None,
    platform: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 of the canonical JSON of every input of a build. ``search``: the config search's settings and the
    SLO it optimises for (None when it is off): the config a tier serves with depends on them. ``platform`` is
    what the build runs on (the operator passes the node pool and the serving image: TensorRT engines and
    profiles belong to them); without it (``fulcrum build`` on a workstation) profiles are per node pool and
    added to a reused build when missing."""
    document = {
        "builderFormat": BUILDER_FORMAT,
        "model": {"sha256": model_sha256, "format": source_format, **model_io},
        "target": target,
        "tiers": tiers,
        "accuracy": accuracy,
        "validationData": validation_sha256,
        "serving": serving,
        "opset": opset,
        "search": search,
        "platform": dict(platform) if platform else None,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()

"""Helm values that install ``charts/fulcrum`` on a dev cluster (``fulcrum dev chart-values``).

Beyond the chart's defaults a dev cluster needs its images (built here, pulled by ``local-0`` from its registry),
the ``local`` build target (python-backend models: what the CPU tritonserver serves), where its object store is
(the chart's default storage is ``s3``; ``fulcrum dev up`` starts SeaweedFS on the cluster's host address, which
pods on ``local-0`` and host processes both reach, and uploads the examples' files to it), and the operator placed
on ``local-0`` (kwok's fake nodes accept any pod and run none).
"""

from __future__ import annotations

from typing import Any

from fulcrum.dev.config import LOCAL_POOL, POOL_LABEL
from fulcrum.dev.images import BuiltImage


def image_values(images: dict[str, BuiltImage]) -> dict[str, Any]:
    """The operator's image as repository and tag, the builder's and Triton's as references."""
    return {
        "image": {"repository": images["fulcrum"].repository, "tag": images["fulcrum"].tag},
        "build": {"image": images["fulcrum-builder"].ref},
        "triton": {"image": images["tritonserver-cpu"].ref},
    }


def node_values() -> dict[str, Any]:
    """The operator on the real node: kwok's nodes accept any pod and run none."""
    return {"nodeSelector": {POOL_LABEL: LOCAL_POOL}}


def merged(*documents: dict[str, Any]) -> dict[str, Any]:
    """Values merged as Helm merges several ``-f`` files: later documents win, maps merge key by key."""
    out: dict[str, Any] = {}
    for document in documents:
        for key, value in document.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out

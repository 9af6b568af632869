"""Helm values that install ``charts/fulcrum`` on a dev cluster (``fulcrum dev chart-values``).

Beyond the chart's defaults a dev cluster needs its images (built here, pulled by ``local-0`` from its registry),
the ``local`` build target (python-backend models: what the CPU tritonserver serves), a repository storage, and
the operator placed on ``local-0`` (kwok's fake nodes accept any pod and run none).
The storage here is a directory of the host that the single node mounts (hostPath), writable by the build
Jobs (uid 1000); it also holds the examples' model files under ``sources/``, where build Jobs read them as
``file:///models/sources/<example>/<file>`` (a pod does not see the host's checkout).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fulcrum.dev.config import LOCAL_POOL, POOL_LABEL
from fulcrum.dev.images import BuiltImage
from fulcrum.resources.settings import MODELS_MOUNT

SOURCES = "sources"
EXAMPLE_FILES = {"ctr-ranker": ("model.pt2", "validation.npz")}


def image_values(images: dict[str, BuiltImage]) -> dict[str, Any]:
    """The operator's image as repository and tag, the builder's and Triton's as references."""
    return {
        "image": {"repository": images["fulcrum"].repository, "tag": images["fulcrum"].tag},
        "build": {"image": images["fulcrum-builder"].ref},
        "triton": {"image": images["tritonserver-cpu"].ref},
    }


def hostpath_values(repository: Path) -> dict[str, Any]:
    return {"repository": {"kind": "hostPath", "hostPath": str(repository)}, "build": {"target": "local"}}


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


def example_source(example: str, name: str) -> str:
    """The URI of an example's file as build Jobs see it in a hostPath repository."""
    return f"file://{MODELS_MOUNT}/{SOURCES}/{example}/{name}"


def prepare_hostpath_repository(repository: Path, examples: Path) -> Path:
    """Create the repository directory (world-writable: build Jobs run as uid 1000, Triton reads) and copy the
    examples' model files into ``sources/``."""
    repository.mkdir(parents=True, exist_ok=True)
    repository.chmod(0o777)
    for example, files in EXAMPLE_FILES.items():
        target = repository / SOURCES / example
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            if not (target / name).exists():
                shutil.copy2(examples / example / name, target / name)
        for path in (repository / SOURCES, target):
            path.chmod(0o755)
    return repository

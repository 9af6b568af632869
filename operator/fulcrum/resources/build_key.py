"""Content addresses of builds: the same model and tier spec on the same kind of pool build once.

The key covers everything that changes what the builder produces (model source and digest, IO, batching,
tiers, accuracy checks and validation data, the pool's hardware) and nothing that does not (SLO, budget,
scaling, prices, names of the ModelDeployment or namespace), so an SLO change never rebuilds and a tier
change always does. The storage the repository is written to is part of the key: a build record is only
reused where its files are.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fulcrum.api import ModelDeploymentSpec, NodePool

KEY_VERSION = "1"


def build_inputs(spec: ModelDeploymentSpec, pool: NodePool, target: str, storage: str) -> dict[str, Any]:
    """The canonical document a build key hashes (``storage``: where the repository is written)."""
    wire = spec.to_wire()
    return {
        "version": KEY_VERSION,
        "target": target,
        "storage": storage,
        "model": wire["model"],
        "tiers": wire["tiers"],
        "accuracy": wire["accuracy"],
        "serving": {k: v for k, v in wire["serving"].items() if k in ("dynamicBatching", "instancesPerReplica")},
        "pool": {"name": pool.name, "gpusPerReplica": pool.gpus_per_replica, "nodeSelector": dict(pool.node_selector)},
    }


def build_key(spec: ModelDeploymentSpec, pool: NodePool, target: str, storage: str) -> str:
    canonical = json.dumps(build_inputs(spec, pool, target, storage), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]

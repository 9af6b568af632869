"""Content addresses of builds: the same model and tier spec on the same kind of pool build once.

The key covers everything that changes what the builder produces (model source and digest, IO, batching,
tiers, accuracy checks and validation data, the pool's hardware) and nothing that does not (budget, scaling,
prices, names of the ModelDeployment or namespace), so a tier change always rebuilds. The storage the
repository is written to is part of the key: a build record is only reused where its files are.

Named inputs (kept apart so each reads on its own):

- ``servingImage``: the Triton image the pool serves with. The build gates and profiles every tier through
  it, and a TensorRT plan only loads in the TensorRT version it was built for, so a new image is a new build;
- ``gpuProduct``: the GPU the pool's nodes carry, from its ``nodeSelector`` on ``nvidia.com/gpu.product``
  (the label GPU feature discovery sets; absent: unknown, the pool's other selectors stand for it). A plan
  only runs on the GPU model it was built on;
- ``search``: with ``serving.configSearch.enabled`` the SLO is a build input too (the config each tier serves
  with is the one with the most capacity within it), so an SLO change rebuilds; with the search off it does not;
- ``cpu``: the CPU request and limit of ``serving.resources``, when set: the build's Triton sidecar profiles under
  them (absent otherwise, so a key without them stays what it was).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fulcrum.api import ModelDeploymentSpec, NodePool

KEY_VERSION = "2"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def gpu_product(pool: NodePool) -> str | None:
    """The GPU model a pool's nodes carry, when its nodeSelector names one."""
    return pool.node_selector.get(GPU_PRODUCT_LABEL) if pool.gpus_per_replica > 0 else None


def build_inputs(
    spec: ModelDeploymentSpec, pool: NodePool, target: str, storage: str, *, serving_image: str
) -> dict[str, Any]:
    """The canonical document a build key hashes (``storage``: where the repository is written)."""
    wire = spec.to_wire()
    search = spec.serving.config_search
    inputs: dict[str, Any] = {
        "version": KEY_VERSION,
        "target": target,
        "storage": storage,
        "model": wire["model"],
        "tiers": wire["tiers"],
        "accuracy": wire["accuracy"],
        "serving": {k: v for k, v in wire["serving"].items() if k in ("dynamicBatching", "instancesPerReplica")},
        "pool": {"name": pool.name, "gpusPerReplica": pool.gpus_per_replica, "nodeSelector": dict(pool.node_selector)},
        "servingImage": serving_image,
        "gpuProduct": gpu_product(pool),
        "search": {"configSearch": search.to_wire(), "slo": wire["slo"]} if search.enabled else None,
    }
    cpu = {kind: v["cpu"] for kind, v in (wire["serving"].get("resources") or {}).items() if v and "cpu" in v}
    if cpu:
        inputs["cpu"] = cpu
    return inputs


def build_key(spec: ModelDeploymentSpec, pool: NodePool, target: str, storage: str, *, serving_image: str) -> str:
    inputs = build_inputs(spec, pool, target, storage, serving_image=serving_image)
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]

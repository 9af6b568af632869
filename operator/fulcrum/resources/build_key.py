"""Keys of builds: the same model and tier spec on the same kind of pool build once.

The key covers everything that changes what the builder produces (model source and digest, IO, batching,
tiers, accuracy checks and validation data, the pool's hardware) and nothing that does not (budget, scaling,
prices, the ModelDeployment's name), so a tier change always rebuilds. The storage the repository is written to
is part of the key: a build record is only reused where its files are.

Named inputs (kept apart so each reads on its own):

- ``servingImage``: the Triton image the pool serves with. The build gates and profiles every tier through
  it, and a TensorRT plan only loads in the TensorRT version it was built for, so a new image is a new build;
- ``gpuProduct``: the GPU the pool's nodes carry, from its ``nodeSelector`` on ``nvidia.com/gpu.product``
  (the label GPU feature discovery sets; absent: unknown, the pool's other selectors stand for it). A plan
  only runs on the GPU model it was built on;
- ``search``: with ``serving.configSearch.enabled`` the SLO is a build input too (the config each tier serves
  with is the one with the most capacity within it), so an SLO change rebuilds; with the search off it does not;
- ``scope``: namespaces share a build only for the same bytes. A spec whose every file is pinned by ``sha256``
  (the model, and the validation data if any) and that names nothing of its own namespace has an unscoped key,
  shared by every namespace. Otherwise the key is scoped to the namespace: its build Job fetches the files, and
  the builder's content key (computed from their bytes) finds an identical build already published and reuses
  it;
- ``rebuild``: the ``fulcrum.dev/rebuild`` annotation of the ModelDeployment, when set (a new value, a new build);
- ``cpu``: the CPU request and limit of ``serving.resources``, when set: the build's Triton sidecar profiles under
  them (absent otherwise, so a key without them stays what it was).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fulcrum.api import ModelDeploymentSpec, NodePool

KEY_VERSION = "3"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
REBUILD_ANNOTATION = "fulcrum.dev/rebuild"
"""On a ModelDeployment, any value starts a build of its own (e.g. after fixing the credentials that made one
fail: a failed build is otherwise final for its key)."""


def gpu_product(pool: NodePool) -> str | None:
    """The GPU model a pool's nodes carry, when its nodeSelector names one."""
    return pool.node_selector.get(GPU_PRODUCT_LABEL) if pool.gpus_per_replica > 0 else None


def pinned(spec: ModelDeploymentSpec) -> bool:
    """Whether every file the build reads is pinned by its sha256."""
    validation = spec.accuracy.validation_data
    return spec.model.source.sha256 is not None and (validation is None or validation.sha256 is not None)


def build_scope(spec: ModelDeploymentSpec, namespace: str, *, own_namespace: bool) -> str:
    """ "" when the build may be shared by every namespace, else ``namespace``.

    ``own_namespace``: the build runs in the ModelDeployment's namespace (its spec names a Secret or claim
    there), so it is that namespace's alone."""
    return "" if pinned(spec) and not own_namespace else namespace


def build_inputs(
    spec: ModelDeploymentSpec,
    pool: NodePool,
    target: str,
    storage: str,
    *,
    serving_image: str,
    scope: str = "",
    rebuild: str = "",
) -> dict[str, Any]:
    """The canonical document a build key hashes (``storage``: where the repository is written; ``scope``: the
    namespace the build belongs to, empty when shared; ``rebuild``: the REBUILD_ANNOTATION's value)."""
    wire = spec.to_wire()
    search = spec.serving.config_search
    extra = {"rebuild": rebuild} if rebuild else {}
    inputs: dict[str, Any] = {
        **extra,
        "version": KEY_VERSION,
        "target": target,
        "storage": storage,
        "scope": scope,
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


def build_key(
    spec: ModelDeploymentSpec,
    pool: NodePool,
    target: str,
    storage: str,
    *,
    serving_image: str,
    scope: str = "",
    rebuild: str = "",
) -> str:
    inputs = build_inputs(spec, pool, target, storage, serving_image=serving_image, scope=scope, rebuild=rebuild)
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]

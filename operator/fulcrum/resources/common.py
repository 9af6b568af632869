"""Pieces shared by the manifest builders: owner references, pod security, scheduling, GPU resources."""

from __future__ import annotations

from typing import Any

from fulcrum.api import NodePool
from fulcrum.resources.settings import OperatorSettings

Manifest = dict[str, Any]

SCRATCH_DIR = "/tmp"  # noqa: S108 - an emptyDir mounted there in every pod (the root filesystem is read-only)


def owner_reference(owner: Manifest) -> Manifest:
    """A controller owner reference: the child is garbage-collected with its ModelDeployment."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_security_context(settings: OperatorSettings) -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_user,
        "fsGroup": settings.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def scheduling(pool: NodePool) -> Manifest:
    """nodeSelector and tolerations of a pool."""
    out: Manifest = {}
    if pool.node_selector:
        out["nodeSelector"] = dict(sorted(pool.node_selector.items()))
    if pool.tolerations:
        out["tolerations"] = [t.to_wire() for t in pool.tolerations]
    return out


def gpu_resources(pool: NodePool, base: Manifest | None = None) -> Manifest:
    """Container resources with ``nvidia.com/gpu`` set from the pool (requests must equal limits for GPUs)."""
    resources: Manifest = {k: dict(v) for k, v in (base or {}).items() if v}
    if pool.gpus_per_replica > 0:
        gpus = str(pool.gpus_per_replica)
        resources.setdefault("limits", {})["nvidia.com/gpu"] = gpus
        resources.setdefault("requests", {})["nvidia.com/gpu"] = gpus
    return {k: {name: str(q) for name, q in v.items()} for k, v in resources.items()}

"""Node manifests of the kwok pools (``local-0`` is a real kubelet and registers itself). Pure."""

from __future__ import annotations

from typing import Any

from fulcrum.dev.config import GPU_RESOURCE, POOL_LABEL, ClusterConfig, Pool

GPU_TAINT = {"key": GPU_RESOURCE, "effect": "NoSchedule"}


def _base_labels(name: str, pool: str) -> dict[str, str]:
    return {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        POOL_LABEL: pool,
    }


def _resources(cpu: str, memory: str, gpus: int, pods: int) -> dict[str, str]:
    res = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    if gpus:
        res[GPU_RESOURCE] = str(gpus)
    return res


def kwok_node(pool: Pool, name: str) -> dict[str, Any]:
    """A fake node kwok keeps Ready (it manages nodes labelled ``type=kwok``)."""
    labels = _base_labels(name, pool.name) | {"type": "kwok", "node.kubernetes.io/instance-type": pool.name}
    spec: dict[str, Any] = {}
    if pool.gpus:
        labels["nvidia.com/gpu.present"] = "true"
        spec["taints"] = [GPU_TAINT]
    resources = _resources(pool.cpu, pool.memory, pool.gpus, 110)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
        },
        "spec": spec,
        "status": {"capacity": resources, "allocatable": resources},
    }


def kwok_nodes(cfg: ClusterConfig) -> list[dict[str, Any]]:
    return [kwok_node(pool, name) for pool in cfg.pools for name in pool.node_names()]

"""Node manifests: kwok pool nodes and the local node ``local-0``. Pure."""

from __future__ import annotations

from typing import Any

from fulcrum.dev.config import GPU_RESOURCE, LOCAL_NODE, LOCAL_POOL, POOL_LABEL, ClusterConfig, Pool

GPU_TAINT = {"key": GPU_RESOURCE, "effect": "NoSchedule"}
KUBELET_VERSION = "v1.32.13"


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


def local_node(cfg: ClusterConfig) -> dict[str, Any]:
    """``local-0``: the node agent's node; GPU-tainted only when it advertises GPUs."""
    spec: dict[str, Any] = {"podCIDR": str(cfg.pod_subnet), "podCIDRs": [str(cfg.pod_subnet)]}
    if cfg.local_gpus:
        spec["taints"] = [GPU_TAINT]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": LOCAL_NODE, "labels": _base_labels(LOCAL_NODE, LOCAL_POOL)},
        "spec": spec,
    }


def local_node_status(cfg: ClusterConfig, now: str, kubelet_port: int) -> dict[str, Any]:
    resources = _resources(cfg.local_cpu, cfg.local_memory, cfg.local_gpus, 110)
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "fulcrum dev node agent is posting ready status",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    others = [
        {
            "type": t,
            "status": "False",
            "reason": f"KubeletHas{r}",
            "message": "ok",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for t, r in (
            ("MemoryPressure", "SufficientMemory"),
            ("DiskPressure", "NoDiskPressure"),
            ("PIDPressure", "SufficientPID"),
        )
    ]
    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [ready, *others],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": LOCAL_NODE},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "architecture": "amd64",
            "operatingSystem": "linux",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "containerRuntimeVersion": "fulcrum-local://1",
            "osImage": "host",
            "kernelVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }

"""A table of ModelDeployment manifests, valid and invalid, shared by the unit test (pydantic) and the
e2e test (the real kube-apiserver with the generated CRD): both must give the same verdict on each.

Each case patches a valid base manifest. In a patch, a dict merges into the base, a list or scalar
replaces, and ``DELETE`` removes the key. ``error`` is a substring both sides must report (CEL rules
carry the same message as the pydantic validators); ``None`` means only the verdict is compared.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

DELETE = object()

BASE: dict[str, Any] = {
    "apiVersion": "fulcrum.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "ctr-ranker"},
    "spec": {
        "model": {
            "source": {"uri": "file://./model.onnx", "format": "onnx"},
            "maxBatchSize": 128,
        },
        "tiers": [
            {"name": "fp32", "precision": "fp32", "backend": "onnxruntime"},
            {"name": "fp16", "precision": "fp16"},
            {"name": "int8", "precision": "int8", "calibration": {"samples": 256}},
        ],
        "accuracy": {"checks": [{"metric": "MeanAbsError", "max": "0.01"}]},
        "slo": {"latencyMs": 25, "percentile": 99},
        "budget": {"maxCostPerHour": "12.50"},
        "nodePools": [
            {
                "name": "l4",
                "nodeSelector": {"fulcrum.dev/pool": "l4"},
                "gpusPerReplica": 1,
                "costPerHour": "0.85",
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
            {"name": "cpu", "gpusPerReplica": 0, "costPerHour": "0.20"},
        ],
    },
}


@dataclass(frozen=True)
class Case:
    id: str
    patch: dict[str, Any]
    valid: bool
    error: str | None = None


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is DELETE:
                out.pop(key, None)
            else:
                out[key] = _merge(base.get(key), value)
        return out
    return copy.deepcopy(patch)


def manifest(case: Case, name: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = _merge(copy.deepcopy(BASE), case.patch)
    if name is not None and "name" not in case.patch.get("metadata", {}):
        obj["metadata"]["name"] = name
    return obj


def _spec(patch: dict[str, Any]) -> dict[str, Any]:
    return {"spec": patch}


TORCH_IO = {
    "inputs": [
        {"name": "dense", "dataType": "FP32", "dims": [13]},
        {"name": "sparse", "dataType": "INT64", "dims": [26]},
    ],
    "outputs": [{"name": "score", "dataType": "FP32", "dims": [1]}],
}

CASES: list[Case] = [
    # ---- valid ------------------------------------------------------------------------------------------
    Case("base", {}, True),
    Case(
        "minimal",
        {
            "spec": {
                "budget": DELETE,
                "accuracy": DELETE,
                "model": {"source": {"uri": "s3://b/m.onnx", "format": "onnx"}, "maxBatchSize": DELETE},
                "tiers": [{"name": "fp32", "precision": "fp32"}],
                "slo": {"latencyMs": 10, "percentile": DELETE},
                "nodePools": [{"name": "cpu", "costPerHour": "0.2"}],
            }
        },
        True,
    ),
    Case(
        "torchscript-with-io",
        _spec({"model": {"source": {"uri": "https://example.com/m.pt", "format": "torchscript"}, **TORCH_IO}}),
        True,
    ),
    Case(
        "torch-export-with-io",
        _spec({"model": {"source": {"uri": "pvc://models/ranker.pt2", "format": "torch-export"}, **TORCH_IO}}),
        True,
    ),
    Case("sha256", _spec({"model": {"source": {"sha256": "a" * 64}}}), True),
    Case("percentile-decimal-string", _spec({"slo": {"percentile": "99.9"}}), True),
    Case("percentile-50", _spec({"slo": {"percentile": 50}}), True),
    Case("percentile-string-int", _spec({"slo": {"percentile": "95"}}), True),
    Case("no-budget", _spec({"budget": DELETE}), True),
    Case("budget-zero", _spec({"budget": {"maxCostPerHour": "0"}}), True),
    Case(
        "tensorrt-with-gpu-pool",
        _spec(
            {
                "tiers": [
                    {"name": "fp32", "precision": "fp32"},
                    {"name": "fp16-trt", "precision": "fp16", "backend": "tensorrt"},
                ]
            }
        ),
        True,
    ),
    Case(
        "all-metrics",
        _spec(
            {
                "accuracy": {
                    "checks": [
                        {"metric": "MaxAbsError", "max": "0.1"},
                        {"metric": "MeanAbsError", "max": "0.01"},
                        {"metric": "Cosine", "min": "0.999"},
                        {"metric": "TopKOverlap", "k": 100, "min": "0.9"},
                        {"metric": "Agreement", "min": "0.99", "threshold": "0.5"},
                    ]
                }
            }
        ),
        True,
    ),
    Case("validation-data", _spec({"accuracy": {"validationData": {"uri": "file:val.npz"}}}), True),
    Case(
        "scaling-full",
        _spec(
            {
                "scaling": {
                    "minReplicas": 0,
                    "maxReplicas": 1000,
                    "scaleDownStabilizationSeconds": 0,
                    "tierSwitchCooldownSeconds": 0,
                    "objective": "Cost",
                }
            }
        ),
        True,
    ),
    Case("scaling-min-equals-max", _spec({"scaling": {"minReplicas": 3, "maxReplicas": 3}}), True),
    Case(
        "serving-full",
        _spec(
            {
                "serving": {
                    "image": "nvcr.io/nvidia/tritonserver:24.10-py3",
                    "dynamicBatching": {
                        "maxQueueDelayMicroseconds": 100,
                        "preferredBatchSizes": [8, 16],
                        "queueTimeoutMicroseconds": 15000,
                    },
                    "instancesPerReplica": 2,
                    "configSearch": {"enabled": False, "maxCandidates": 3},
                    "resources": {"requests": {"cpu": 2, "memory": "8Gi"}, "limits": {"memory": "8Gi"}},
                }
            }
        ),
        True,
    ),
    Case("model-name", _spec({"serving": {"modelName": "Ranker_v2-eu"}}), True),
    Case("model-name-underscore-first", _spec({"serving": {"modelName": "_ranker"}}), True),
    Case("hot-tiers", _spec({"serving": {"hotTiers": ["fp32", "int8"]}}), True),
    Case("hot-tiers-off", _spec({"serving": {"hotTiers": []}}), True),
    Case(
        "pool-memory",
        _spec({"nodePools": [{"name": "l4", "costPerHour": "0.85", "memoryPerReplica": "22.5Gi"}]}),
        True,
    ),
    Case(
        "tier-named-like-md-with-model-name",
        {"metadata": {"name": "fp32"}, "spec": {"serving": {"modelName": "ranker"}}},
        True,
    ),
    Case(
        "tensorrt-settings-and-max-dims",
        _spec(
            {
                "model": {
                    "source": {"format": "torchscript"},
                    "inputs": [{"name": "ids", "dataType": "INT64", "dims": [-1, 4], "maxDims": [128, 4]}],
                    "outputs": [{"name": "score", "dataType": "FP32", "dims": [1]}],
                },
                "tiers": [
                    {"name": "trt", "precision": "fp16", "backend": "tensorrt", "tensorrt": {"workspaceMiB": 4096}}
                ],
            }
        ),
        True,
    ),
    Case("repository-pvc", _spec({"repository": {"pvc": {"claimName": "model-repo"}}}), True),
    Case(
        "repository-uri-secret",
        _spec({"repository": {"uri": "s3://bucket/prefix", "secretRef": {"name": "s3-creds"}}}),
        True,
    ),
    Case("eight-tiers", _spec({"tiers": [{"name": f"t{i}", "precision": "fp32"} for i in range(8)]}), True),
    Case(
        "dynamic-dims",
        _spec(
            {
                "model": {
                    "source": {"format": "torchscript"},
                    "inputs": [{"name": "ids", "dataType": "INT64", "dims": [-1]}],
                    "outputs": [{"name": "score", "dataType": "FP32", "dims": [1]}],
                }
            }
        ),
        True,
    ),
    # ---- invalid: schema ---------------------------------------------------------------------------------
    Case("missing-spec", {"spec": DELETE}, False),
    Case("missing-model", _spec({"model": DELETE}), False),
    Case("missing-slo", _spec({"slo": DELETE}), False),
    Case("missing-tiers", _spec({"tiers": DELETE}), False),
    Case("missing-node-pools", _spec({"nodePools": DELETE}), False),
    Case("empty-tiers", _spec({"tiers": []}), False),
    Case("empty-node-pools", _spec({"nodePools": []}), False),
    Case("nine-tiers", _spec({"tiers": [{"name": f"t{i}", "precision": "fp32"} for i in range(9)]}), False),
    Case("bad-uri-scheme", _spec({"model": {"source": {"uri": "ftp://host/m.onnx"}}}), False),
    Case("bad-format", _spec({"model": {"source": {"format": "pickle"}}}), False),
    Case("bad-sha256", _spec({"model": {"source": {"sha256": "XYZ"}}}), False),
    Case("bad-data-type", _spec({"model": {"inputs": [{"name": "x", "dataType": "FLOAT", "dims": [1]}]}}), False),
    Case("bad-dim", _spec({"model": {"inputs": [{"name": "x", "dataType": "FP32", "dims": [-2]}]}}), False),
    Case("max-batch-zero", _spec({"model": {"maxBatchSize": 0}}), False),
    Case("max-batch-too-big", _spec({"model": {"maxBatchSize": 65537}}), False),
    Case("tier-bad-name", _spec({"tiers": [{"name": "FP32_Tier", "precision": "fp32"}]}), False),
    Case("tier-bad-precision", _spec({"tiers": [{"name": "bf", "precision": "bf16"}]}), False),
    Case("tier-bad-backend", _spec({"tiers": [{"name": "x", "precision": "fp32", "backend": "openvino"}]}), False),
    Case("latency-zero", _spec({"slo": {"latencyMs": 0}}), False),
    Case("latency-float", _spec({"slo": {"latencyMs": 2.5}}), False),
    Case("money-float", _spec({"budget": {"maxCostPerHour": 12.5}}), False),
    Case("money-negative", _spec({"budget": {"maxCostPerHour": "-1"}}), False),
    Case("money-garbage", _spec({"budget": {"maxCostPerHour": "twelve"}}), False),
    Case("pool-cost-missing", _spec({"nodePools": [{"name": "cpu", "gpusPerReplica": 0}]}), False),
    Case("pool-cost-bad", _spec({"nodePools": [{"name": "cpu", "costPerHour": "1e3"}]}), False),
    Case(
        "pool-gpus-negative", _spec({"nodePools": [{"name": "cpu", "gpusPerReplica": -1, "costPerHour": "1"}]}), False
    ),
    Case("pool-bad-name", _spec({"nodePools": [{"name": "Big Pool", "costPerHour": "1"}]}), False),
    Case("min-replicas-negative", _spec({"scaling": {"minReplicas": -1}}), False),
    Case("max-replicas-too-big", _spec({"scaling": {"maxReplicas": 1001}}), False),
    Case("search-candidates-zero", _spec({"serving": {"configSearch": {"maxCandidates": 0}}}), False),
    Case(
        "workspace-too-small",
        _spec({"tiers": [{"name": "t", "precision": "fp16", "backend": "tensorrt", "tensorrt": {"workspaceMiB": 1}}]}),
        False,
    ),
    Case("queue-timeout-zero", _spec({"serving": {"dynamicBatching": {"queueTimeoutMicroseconds": 0}}}), False),
    Case("bad-objective", _spec({"scaling": {"objective": "Speed"}}), False),
    Case("metric-unknown", _spec({"accuracy": {"checks": [{"metric": "F1", "min": "0.9"}]}}), False),
    Case("metric-threshold-float", _spec({"accuracy": {"checks": [{"metric": "MeanAbsError", "max": 0.01}]}}), False),
    Case("checks-empty", _spec({"accuracy": {"checks": []}}), False),
    Case("unknown-field", _spec({"replicas": 3}), False),
    Case("unknown-nested-field", _spec({"slo": {"latencyMs": 25, "p": 99}}), False),
    Case("repository-bad-uri", _spec({"repository": {"uri": "https://x/y"}}), False),
    Case("model-name-too-long", _spec({"serving": {"modelName": "r" * 64}}), False),
    Case(
        "pool-memory-bad", _spec({"nodePools": [{"name": "l4", "costPerHour": "1", "memoryPerReplica": "24GB"}]}), False
    ),
    Case("hot-tiers-duplicate", _spec({"serving": {"hotTiers": ["fp32", "fp32"]}}), False),
    # ---- invalid: CEL rules (same message from the API server and from pydantic) -------------------------
    Case(
        "min-gt-max-replicas",
        _spec({"scaling": {"minReplicas": 5, "maxReplicas": 2}}),
        False,
        "minReplicas must be less than or equal to scaling.maxReplicas",
    ),
    Case(
        "default-max-below-min",
        _spec({"scaling": {"minReplicas": 11}}),
        False,
        "minReplicas must be less than or equal to scaling.maxReplicas",
    ),
    Case(
        "tensorrt-settings-on-onnxruntime",
        _spec({"tiers": [{"name": "t", "precision": "fp16", "tensorrt": {"workspaceMiB": 2048}}]}),
        False,
        "tiers[].tensorrt is only valid for backend tensorrt",
    ),
    Case(
        "max-dims-wrong-length",
        _spec(
            {
                "model": {
                    "source": {"format": "torchscript"},
                    "inputs": [{"name": "ids", "dataType": "INT64", "dims": [-1, 4], "maxDims": [128]}],
                    "outputs": [{"name": "score", "dataType": "FP32", "dims": [1]}],
                }
            }
        ),
        False,
        "maxDims must have one entry per entry of dims",
    ),
    Case(
        "duplicate-tier-names",
        _spec({"tiers": [{"name": "a", "precision": "fp32"}, {"name": "a", "precision": "fp16"}]}),
        False,
        "tiers names must be unique",
    ),
    Case(
        "duplicate-pool-names",
        _spec({"nodePools": [{"name": "a", "costPerHour": "1"}, {"name": "a", "costPerHour": "2"}]}),
        False,
        "nodePools names must be unique",
    ),
    Case(
        "duplicate-input-names",
        _spec(
            {
                "model": {
                    "source": {"format": "torchscript"},
                    "inputs": [{"name": "x", "dataType": "FP32", "dims": [1]}] * 2,
                    "outputs": TORCH_IO["outputs"],
                }
            }
        ),
        False,
        "model.inputs names must be unique",
    ),
    Case("percentile-too-low", _spec({"slo": {"percentile": 49}}), False, "slo.percentile must be between 50 and 99.9"),
    Case(
        "percentile-too-high-int",
        _spec({"slo": {"percentile": 100}}),
        False,
        "slo.percentile must be between 50 and 99.9",
    ),
    Case(
        "percentile-string-too-high",
        _spec({"slo": {"percentile": "99.95"}}),
        False,
        "slo.percentile must be between 50 and 99.9",
    ),
    Case(
        "percentile-garbage", _spec({"slo": {"percentile": "p99"}}), False, "slo.percentile must be between 50 and 99.9"
    ),
    Case(
        "torch-without-io",
        _spec({"model": {"source": {"format": "torchscript"}}}),
        False,
        "model.inputs and model.outputs are required for torchscript and torch-export models",
    ),
    Case(
        "torch-without-outputs",
        _spec({"model": {"source": {"format": "torch-export"}, "inputs": TORCH_IO["inputs"]}}),
        False,
        "model.inputs and model.outputs are required",
    ),
    Case(
        "calibration-on-fp16",
        _spec({"tiers": [{"name": "fp16", "precision": "fp16", "calibration": {"samples": 10}}]}),
        False,
        "calibration is only valid for precision int8",
    ),
    Case(
        "error-metric-with-min",
        _spec({"accuracy": {"checks": [{"metric": "MeanAbsError", "min": "0.01"}]}}),
        False,
        "MaxAbsError and MeanAbsError take max",
    ),
    Case(
        "similarity-metric-with-max",
        _spec({"accuracy": {"checks": [{"metric": "Cosine", "max": "0.9"}]}}),
        False,
        "MaxAbsError and MeanAbsError take max",
    ),
    Case(
        "metric-both-bounds",
        _spec({"accuracy": {"checks": [{"metric": "Cosine", "min": "0.9", "max": "1"}]}}),
        False,
        "MaxAbsError and MeanAbsError take max",
    ),
    Case(
        "k-on-cosine",
        _spec({"accuracy": {"checks": [{"metric": "Cosine", "min": "0.9", "k": 5}]}}),
        False,
        "k is only for TopKOverlap",
    ),
    Case(
        "threshold-on-cosine",
        _spec({"accuracy": {"checks": [{"metric": "Cosine", "min": "0.9", "threshold": "0.5"}]}}),
        False,
        "threshold is only for Agreement",
    ),
    Case(
        "repository-both",
        _spec({"repository": {"pvc": {"claimName": "r"}, "uri": "s3://b/p"}}),
        False,
        "repository needs exactly one of pvc or uri",
    ),
    Case("repository-neither", _spec({"repository": {}}), False, "repository needs exactly one of pvc or uri"),
    Case(
        "secret-with-pvc",
        _spec({"repository": {"pvc": {"claimName": "r"}, "secretRef": {"name": "s"}}}),
        False,
        "secretRef is only valid with uri",
    ),
    Case(
        "tensorrt-without-gpu-pool",
        _spec(
            {
                "tiers": [{"name": "trt", "precision": "fp16", "backend": "tensorrt"}],
                "nodePools": [{"name": "cpu", "gpusPerReplica": 0, "costPerHour": "0.2"}],
            }
        ),
        False,
        "a tensorrt tier needs at least one node pool with gpusPerReplica > 0",
    ),
    Case(
        "model-name-slash",
        _spec({"serving": {"modelName": "team/ranker"}}),
        False,
        "serving.modelName must be a Triton model name",
    ),
    Case(
        "model-name-dots",
        _spec({"serving": {"modelName": "../ranker"}}),
        False,
        "serving.modelName must be a Triton model name",
    ),
    Case(
        "model-name-empty",
        _spec({"serving": {"modelName": ""}}),
        False,
        "serving.modelName must be a Triton model name",
    ),
    Case(
        "model-name-is-a-tier",
        _spec({"serving": {"modelName": "int8"}}),
        False,
        "serving.modelName must differ from every tier name",
    ),
    Case(
        "default-model-name-is-a-tier",
        {"metadata": {"name": "fp32"}},
        False,
        "metadata.name is the default serving.modelName and must differ from every tier name",
    ),
    Case(
        "hot-tiers-unknown",
        _spec({"serving": {"hotTiers": ["fp32", "bf16"]}}),
        False,
        "serving.hotTiers must name tiers of spec.tiers",
    ),
    Case("name-too-long", {"metadata": {"name": "a" * 41}}, False, "metadata.name must be a DNS-1035 label"),
    Case("name-starts-with-digit", {"metadata": {"name": "1ranker"}}, False, "metadata.name must be a DNS-1035 label"),
]

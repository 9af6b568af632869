"""Content keys: same inputs, same key; any input that changes the output changes it."""

from __future__ import annotations

from typing import Any

from model_repo_builder.keys import content_key

BASE: dict[str, Any] = {
    "model_sha256": "a" * 64,
    "source_format": "onnx",
    "target": "local",
    "model_io": {"inputs": [{"name": "x", "dataType": "FP32", "dims": [4]}], "maxBatchSize": 8},
    "tiers": [{"name": "fp32", "precision": "fp32", "backend": "onnxruntime"}],
    "accuracy": {"checks": [{"metric": "MeanAbsError", "max": "0.01"}]},
    "validation_sha256": None,
    "serving": {"dynamicBatching": {"maxQueueDelayMicroseconds": 500}, "instancesPerReplica": 1},
    "opset": 18,
}


def test_deterministic_and_order_of_dict_keys_irrelevant() -> None:
    key = content_key(**BASE)
    assert len(key) == 64 and key == content_key(**BASE)
    reordered = dict(BASE, model_io={"maxBatchSize": 8, "inputs": BASE["model_io"]["inputs"]})
    assert content_key(**reordered) == key


def test_every_input_matters() -> None:
    key = content_key(**BASE)
    changes: list[dict[str, Any]] = [
        {"model_sha256": "b" * 64},
        {"source_format": "torchscript"},
        {"target": "triton"},
        {"model_io": {**BASE["model_io"], "maxBatchSize": 16}},
        {"tiers": [*BASE["tiers"], {"name": "int8", "precision": "int8", "backend": "onnxruntime"}]},
        {"accuracy": {"checks": [{"metric": "MeanAbsError", "max": "0.02"}]}},
        {"validation_sha256": "c" * 64},
        {"serving": {**BASE["serving"], "instancesPerReplica": 2}},
        {"opset": 19},
        {"search": {"configSearch": {"enabled": True, "maxCandidates": 6}, "slo": {"latencyMs": 25}}},
    ]
    keys = {content_key(**{**BASE, **change}) for change in changes}
    assert key not in keys and len(keys) == len(changes)


def test_with_the_search_on_the_slo_is_a_build_input() -> None:
    search = {"configSearch": {"enabled": True, "maxCandidates": 6}, "slo": {"latencyMs": 25, "percentile": 99}}
    tighter = {**search, "slo": {"latencyMs": 10, "percentile": 99}}
    assert content_key(**BASE, search=search) != content_key(**BASE, search=tighter)

"""The committed CRD is the generated one, and it is a well-formed structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fulcrum.api import ModelDeploymentSpec
from fulcrum.api.crd import crd, crd_yaml

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / "fulcrum.dev_modeldeployments.yaml"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crd_is_generated_output() -> None:
    assert COMMITTED.read_text() == crd_yaml(), (
        "crds/ is stale: run `fulcrum crd > crds/fulcrum.dev_modeldeployments.yaml`"
    )


def _walk(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}.*")
    return found


def test_schema_is_structural() -> None:
    for path, node in _walk(_schema(), "root"):
        assert "$ref" not in node and "title" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
            assert "anyOf" not in node and "oneOf" not in node, path


def test_every_spec_and_status_field_has_a_description() -> None:
    for path, node in _walk(_schema(), "root"):
        if path.endswith(("[]", ".*")) and node.get("type") != "object":
            continue  # scalar list items and map values are described by their parent
        if path == "root.metadata":
            continue  # the API server forbids anything but {type: object} here
        assert node.get("description"), f"{path} has no description (kubectl explain shows it)"


def test_crd_metadata() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["md"]
    assert spec["names"]["categories"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Ready", "Tier", "Pool", "Replicas", "Latency", "Cost/h", "Age"]


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Kubernetes' structural defaulting, enough for this schema: objects and arrays of objects."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = yaml.safe_load(yaml.safe_dump(child["default"]))
            if name in value:
                value[name] = _apply_defaults(child, value[name])
    elif schema.get("type") == "array" and isinstance(value, list):
        return [_apply_defaults(schema["items"], v) for v in value]
    return value


def test_crd_defaults_equal_pydantic_defaults() -> None:
    minimal = {
        "model": {"source": {"uri": "file:m.onnx", "format": "onnx"}},
        "tiers": [{"name": "fp32", "precision": "fp32"}],
        "slo": {"latencyMs": 25},
        "nodePools": [{"name": "cpu", "costPerHour": "0.2"}],
    }
    server_defaulted = _apply_defaults(_schema()["properties"]["spec"], yaml.safe_load(yaml.safe_dump(minimal)))
    assert (
        ModelDeploymentSpec.model_validate(minimal).to_wire()
        == ModelDeploymentSpec.model_validate(server_defaulted).to_wire()
    )
    # and the server fills in every default pydantic fills in (empty maps and lists aside)
    assert _drop_empty(ModelDeploymentSpec.model_validate(minimal).to_wire()) == _drop_empty(server_defaulted)


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value

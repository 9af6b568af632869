"""Generate the ModelDeployment CustomResourceDefinition from the pydantic models.

The pydantic JSON schema is turned into a Kubernetes *structural* OpenAPI v3 schema: references are
inlined, ``Optional`` unions are collapsed (absent fields are simply not required), titles are dropped,
and ``x-kubernetes-*`` extensions placed on the models (CEL rules, int-or-string) are kept.
``crds/fulcrum.dev_modeldeployments.yaml`` is this module's committed output; a test fails on drift.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from fulcrum.api.resource import (
    CATEGORIES,
    GROUP,
    KIND,
    NAME_RULE,
    PLURAL,
    SERVED_NAME_RULE,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from fulcrum.api.spec import ModelDeploymentSpec
from fulcrum.api.status import ModelDeploymentStatus

# Keys of a JSON schema that a structural schema may carry over as they are.
_KEPT_KEYS = {
    "type",
    "description",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "format",
    "nullable",
    "x-kubernetes-validations",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Whether the model is served within its SLO and budget.",
    },
    {"name": "Tier", "type": "string", "jsonPath": ".status.activeTier", "description": "Tier now serving."},
    {"name": "Pool", "type": "string", "jsonPath": ".status.activeNodePool", "description": "Node pool now serving."},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas", "description": "Replicas asked for."},
    {
        "name": "Latency",
        "type": "string",
        "jsonPath": ".status.observed.latencyMs",
        "description": "Observed latency at the SLO percentile (ms).",
    },
    {"name": "Cost/h", "type": "string", "jsonPath": ".status.costPerHour", "description": "Cost per hour now."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


class SchemaError(ValueError):
    """The pydantic schema has a construct a structural schema cannot express."""


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict) and "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return node


def _structural(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        branches = [_resolve(b, defs) for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise SchemaError(f"{path}: unions other than Optional[X] and int-or-string are not structural")
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**branches[0], **outer}
        if node.get("default", "absent") is None:
            del node["default"]
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEPT_KEYS}
    if out.get("default", "absent") is None:
        del out["default"]
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        out.pop("type", None)
        return out
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        if "properties" in node:
            out["properties"] = {
                name: _structural(prop, defs, f"{path}.{name}") for name, prop in node["properties"].items()
            }
            required = sorted(node.get("required", []))
            if required:
                out["required"] = required
        additional = node.get("additionalProperties")
        if isinstance(additional, dict) and additional:
            out["additionalProperties"] = _structural(additional, defs, f"{path}.*")
        if "properties" not in out and "additionalProperties" not in out:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = _structural(node["items"], defs, f"{path}[]")
    elif kind is None:
        raise SchemaError(f"{path}: no type")
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model, camelCase field names."""
    raw = model.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    defs = raw.pop("$defs", {})
    return _structural(raw, defs, model.__name__)


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition as a dict."""
    spec_schema = structural_schema(ModelDeploymentSpec)
    status_schema = structural_schema(ModelDeploymentStatus)
    root = {
        "type": "object",
        "description": (
            "ModelDeployment serves one model on NVIDIA Triton at the lowest cost that meets its latency SLO, "
            "choosing precision tier x node pool x replicas under a cost ceiling."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object: fulcrum.dev/v1alpha1."},
            "kind": {"type": "string", "description": "Kind of this object: ModelDeployment."},
            "metadata": {"type": "object"},  # the API server allows nothing more here
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [NAME_RULE, SERVED_NAME_RULE],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "fulcrum", "app.kubernetes.io/part-of": "fulcrum"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `fulcrum crd` from operator/fulcrum/api. Do not edit by hand.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)

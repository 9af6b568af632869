"""The served model name: a Triton ``ensemble`` named after the ModelDeployment with one step, the routed tier.

Every Triton pod loads its tiers under their own names and, beside them, this routing model under the served
name, from a second model repository: a per-ModelDeployment ConfigMap holding one routing config per Deployment
(key: the Deployment's name), mounted at :data:`ROUTING_MOUNT`. A pod that starts or restarts reads its
Deployment's current route there, so it is Ready only once the served name answers, already routed. A running
pod is re-routed through Triton's model-control API with the same config as JSON (``fulcrum.controller
.routing``): Triton swaps the routing model while requests keep flowing. Builds never contain the served name.

The config is written here twice from one description, as ``config.pbtxt`` text and as the JSON the load API
takes (protobuf field names), without the protobuf package: this layer stays free of Triton's client.

Triton's model-repository API (load, unload) is restricted on every pod to requests that carry the header
:data:`KEY_HEADER` with the ModelDeployment's routing key (``--http-restricted-api``, ``--grpc-restricted-protocol``),
kept in the same ConfigMap: a client of the Service can infer, but cannot load, unload or re-route models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fulcrum.api import ManifestTensor
from fulcrum.resources import labels
from fulcrum.resources.common import Manifest, owner_reference

ROUTING_MOUNT = "/etc/fulcrum/routing"
ROUTING_REPOSITORY = f"{ROUTING_MOUNT}/models"
ROUTING_VOLUME = "routing"
VERSION_KEY = ".version-directory"  # a leading dot: never a Deployment's name
VERSION_TEXT = "The routing model's version directory: Triton needs one, an ensemble keeps no files in it.\n"
KEY_KEY = ".routing-key"
KEY_HEADER = "fulcrum-routing-key"
KEY_ENV = "FULCRUM_ROUTING_KEY"


@dataclass(frozen=True)
class ServedIO:
    """What every tier of a build takes and returns (from its manifest)."""

    inputs: tuple[ManifestTensor, ...]
    outputs: tuple[ManifestTensor, ...]
    max_batch_size: int


@dataclass(frozen=True)
class Route:
    """The served name answered by one tier's Triton model."""

    served_name: str
    model: str  # the tier's model directory (its Triton model name)
    io: ServedIO


def _tensor(tensor: ManifestTensor) -> dict[str, Any]:
    data_type = "TYPE_STRING" if tensor.data_type == "BYTES" else f"TYPE_{tensor.data_type}"
    return {"name": tensor.name, "data_type": data_type, "dims": list(tensor.dims)}


def ensemble_config(route: Route) -> dict[str, Any]:
    """The routing model's ModelConfig in protobuf's JSON form (field names as in the .proto)."""
    io = route.io
    return {
        "name": route.served_name,
        "platform": "ensemble",
        "max_batch_size": io.max_batch_size,
        "input": [_tensor(t) for t in io.inputs],
        "output": [_tensor(t) for t in io.outputs],
        "ensemble_scheduling": {
            "step": [
                {
                    "model_name": route.model,
                    "model_version": -1,
                    "input_map": {t.name: t.name for t in io.inputs},
                    "output_map": {t.name: t.name for t in io.outputs},
                }
            ]
        },
    }


def routed_model(config: Mapping[str, Any]) -> str | None:
    """The model a routing config (as Triton returns it from /v2/models/<name>/config) sends requests to."""
    steps = (config.get("ensemble_scheduling") or {}).get("step") or []
    if len(steps) != 1:
        return None
    name = steps[0].get("model_name")
    return name if isinstance(name, str) else None


def _quote(text: str) -> str:
    """A protobuf text-format string literal."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _text(value: Any, indent: str) -> list[str]:
    """Text-format lines of a message given as the JSON form above (maps are the *_map fields)."""
    lines: list[str] = []
    for key, item in value.items():
        if key.endswith("_map"):
            for k, v in item.items():
                lines.append(f"{indent}{key} {{ key: {_quote(k)} value: {_quote(v)} }}")
        elif isinstance(item, list):
            for element in item:
                if isinstance(element, dict):
                    lines += [f"{indent}{key} {{", *_text(element, indent + "  "), f"{indent}}}"]
                else:
                    lines.append(f"{indent}{key}: {element}")
        elif isinstance(item, dict):
            lines += [f"{indent}{key} {{", *_text(item, indent + "  "), f"{indent}}}"]
        elif isinstance(item, str):
            enum = key == "data_type"
            lines.append(f"{indent}{key}: {item if enum else _quote(item)}")
        else:
            lines.append(f"{indent}{key}: {item}")
    return lines


def ensemble_pbtxt(route: Route) -> str:
    """The routing model's ``config.pbtxt``."""
    return "\n".join(_text(ensemble_config(route), "")) + "\n"


def routing_configmap_name(md_name: str) -> str:
    return labels.dns_name(md_name, "routing")


def routing_configmap(md: Manifest, routes: Mapping[str, str], key: str) -> Manifest:
    """The ConfigMap of a ModelDeployment's routes (Deployment name -> its routing ``config.pbtxt``) and its key."""
    md_name: str = md["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": routing_configmap_name(md_name),
            "namespace": md["metadata"]["namespace"],
            "labels": labels.owned_labels(md_name, labels.COMPONENT_ROUTING),
            "ownerReferences": [owner_reference(md)],
        },
        "data": {VERSION_KEY: VERSION_TEXT, KEY_KEY: key, **dict(sorted(routes.items()))},
    }


def restricted_api_args() -> list[str]:
    """tritonserver arguments that let only requests with the routing key load, unload or re-route models."""
    value = f"model-repository:{KEY_HEADER}=$({KEY_ENV})"  # the kubelet expands $(VAR) from the container's env
    return [f"--http-restricted-api={value}", f"--grpc-restricted-protocol={value}"]


def key_env(md_name: str) -> Manifest:
    return {
        "name": KEY_ENV,
        "valueFrom": {"configMapKeyRef": {"name": routing_configmap_name(md_name), "key": KEY_KEY}},
    }


def key_digest(key: str) -> str:
    """What pod templates carry of the key: a new key (the ConfigMap was recreated) rolls the pods onto it."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def routing_volume(md_name: str, served_name: str, deployment: str) -> tuple[Manifest, Manifest]:
    """(volume, volumeMount) that give a Deployment's pods the routing repository at :data:`ROUTING_REPOSITORY`.

    Items, never ``subPath``: the kubelet keeps the files current, so a restarted container reads the route
    of the moment (a ``subPath`` mount would stay at what the pod first saw).
    """
    volume = {
        "name": ROUTING_VOLUME,
        "configMap": {
            "name": routing_configmap_name(md_name),
            "items": [
                {"key": deployment, "path": f"models/{served_name}/config.pbtxt"},
                {"key": VERSION_KEY, "path": f"models/{served_name}/1/README"},
            ],
        },
    }
    mount = {"name": ROUTING_VOLUME, "mountPath": ROUTING_MOUNT, "readOnly": True}
    return volume, mount

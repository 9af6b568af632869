"""Typed footholds in the kubernetes client, where its own annotations stop short.

``new_client_from_config`` and ``sanitize_for_serialization`` are unannotated; the models declare as optional
what the API server always sends (an object's metadata, a pod's status). The tests reach those through these
helpers, which assert what they expect instead of letting an ``AttributeError`` on ``None`` say it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client, config


def api_client(kubeconfig: Path | str) -> client.ApiClient:
    """An API client for a kubeconfig file."""
    # kubernetes' new_client_from_config has no annotations (the operator's callers say the same)
    api: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return api


def serialized(api: client.ApiClient, obj: object) -> dict[str, Any]:
    """A model object as the API server's JSON (camelCase keys), as the operator's cache holds it."""
    body: dict[str, Any] = api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]  # unannotated
    return body


class _Object(Protocol):
    @property
    def metadata(self) -> client.V1ObjectMeta | None: ...


def meta(obj: _Object) -> client.V1ObjectMeta:
    """An object's metadata (the API server always sends it)."""
    assert obj.metadata is not None, f"{type(obj).__name__} without metadata"
    return obj.metadata


def name_of(obj: _Object) -> str:
    name = meta(obj).name
    assert name is not None, f"{type(obj).__name__} without a name"
    return name


def labels_of(obj: _Object) -> dict[str, str]:
    """An object's labels, where the test expects some."""
    labels = meta(obj).labels
    assert labels is not None, f"{name_of(obj)} without labels"
    return labels


def pod_ready(pod: client.V1Pod) -> bool:
    """The pod's Ready condition is True."""
    assert pod.status is not None, f"pod {name_of(pod)} without status"
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def pod_ip(pod: client.V1Pod) -> str:
    assert pod.status is not None and pod.status.pod_ip, f"pod {name_of(pod)} without an IP"
    return pod.status.pod_ip


def event_time(event: client.CoreV1Event) -> datetime:
    """When an Event happened (last): its series' last time, else its own, else when it was created."""
    when = event.last_timestamp or event.event_time or meta(event).creation_timestamp
    assert when is not None, f"event {name_of(event)} without a time"
    return when

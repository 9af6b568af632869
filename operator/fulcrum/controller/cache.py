"""What the operator knows of the cluster, fed by Kopf's watch streams (an informer cache).

Reconciliation reads from here, never from the API, so a steady state costs no requests at all.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fulcrum.resources import labels

Key = tuple[str, str]  # (namespace, name)


class ObjectCache:
    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, dict[str, Any]]] = defaultdict(dict)

    def put(self, kind: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata", {})
        self._objects[kind][(meta.get("namespace", ""), meta["name"])] = body

    def remove(self, kind: str, namespace: str, name: str) -> None:
        self._objects[kind].pop((namespace, name), None)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects[kind].get((namespace, name))

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self._objects[kind].values())

    def keys(self, kind: str) -> list[Key]:
        return list(self._objects[kind])

    def owned_by(self, kind: str, namespace: str, md_name: str) -> list[dict[str, Any]]:
        return [
            body
            for (ns, _), body in self._objects[kind].items()
            if ns == namespace and body["metadata"].get("labels", {}).get(labels.MODEL_DEPLOYMENT) == md_name
        ]

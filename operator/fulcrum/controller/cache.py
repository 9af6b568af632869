"""What the operator knows of the cluster: an informer cache fed by list + watch (``fulcrum.controller.informer``).

Reconciliation reads from here, never from the API, so a steady state costs no requests at all. Objects are
indexed by the ModelDeployment they belong to (the ``fulcrum.dev/model-deployment`` label), so a reconcile finds
its children without scanning every object of a kind. ``managedFields`` are dropped on the way in: they are
most of an object's bytes and the operator never reads them.

The answers to the operator's own writes go in too (:meth:`ObjectCache.record`), so the next reconcile does not
write the same again before the watch brings the change, but only when they are newer than what the cache holds:
the watch may already have brought a later version (a Deployment's readiness, seconds after it was applied),
which an older answer must never replace. Like client-go's MutationCache, this compares resourceVersions as
numbers, which they are on every etcd-backed API server; a version that is not a number is taken as newer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fulcrum.resources import labels

Key = tuple[str, str]  # (namespace, name)
Body = dict[str, Any]


def object_key(body: Body) -> Key:
    meta = body.get("metadata", {})
    return meta.get("namespace", ""), meta["name"]


def version_of(body: Body) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def _newer(version: str, than: str) -> bool:
    try:
        return int(version) > int(than)
    except ValueError:
        return True


def owner_of(body: Body) -> str | None:
    """The ModelDeployment a child belongs to (its label), or None."""
    owner = (body.get("metadata", {}).get("labels") or {}).get(labels.MODEL_DEPLOYMENT)
    return str(owner) if owner else None


class ObjectCache:
    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, Body]] = defaultdict(dict)
        self._owned: dict[str, dict[Key, set[str]]] = defaultdict(lambda: defaultdict(set))  # kind -> (ns, md) -> names

    def put(self, kind: str, body: Body) -> Body | None:
        """Store ``body``; returns the object it replaced, if any."""
        body.get("metadata", {}).pop("managedFields", None)
        key = object_key(body)
        old = self._objects[kind].get(key)
        if old is not None:
            self._unindex(kind, key, old)
        self._objects[kind][key] = body
        owner = owner_of(body)
        if owner is not None:
            self._owned[kind][(key[0], owner)].add(key[1])
        return old

    def record(self, kind: str, body: Body) -> bool:
        """Store the answer to one of the operator's writes unless the cache already holds a later version."""
        known = self.get(kind, *object_key(body))
        if known is not None and not _newer(version_of(body), version_of(known)):
            return False
        self.put(kind, body)
        return True

    def remove(self, kind: str, namespace: str, name: str) -> Body | None:
        """Forget an object; returns it, if it was known."""
        old = self._objects[kind].pop((namespace, name), None)
        if old is not None:
            self._unindex(kind, (namespace, name), old)
        return old

    def replace(self, kind: str, namespace: str | None, bodies: list[Body]) -> list[Body]:
        """A fresh listing of ``kind`` (in ``namespace``, or everywhere when None) replaces what was known there.

        Returns the objects that were known but are not listed any more: deleted while no watch was open (a
        re-list after ``410 Gone``), which no DELETED event will ever report.
        """
        listed = {object_key(b) for b in bodies}
        gone = [
            key for key in list(self._objects[kind]) if (namespace is None or key[0] == namespace) and key not in listed
        ]
        removed = [body for key in gone if (body := self.remove(kind, *key)) is not None]
        for body in bodies:
            self.put(kind, body)
        return removed

    def _unindex(self, kind: str, key: Key, body: Body) -> None:
        owner = owner_of(body)
        if owner is None:
            return
        names = self._owned[kind].get((key[0], owner))
        if names is not None:
            names.discard(key[1])
            if not names:
                del self._owned[kind][(key[0], owner)]

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        return self._objects[kind].get((namespace, name))

    def all(self, kind: str) -> list[Body]:
        return list(self._objects[kind].values())

    def keys(self, kind: str) -> list[Key]:
        return list(self._objects[kind])

    def __contains__(self, item: tuple[str, Key]) -> bool:
        kind, key = item
        return key in self._objects[kind]

    def count(self, kind: str) -> int:
        return len(self._objects[kind])

    def owned_by(self, kind: str, namespace: str, md_name: str) -> list[Body]:
        """Objects of ``kind`` in ``namespace`` labelled as children of the ModelDeployment ``md_name``."""
        names = self._owned[kind].get((namespace, md_name), ())
        return [self._objects[kind][(namespace, name)] for name in sorted(names)]

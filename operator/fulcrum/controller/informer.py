"""List + watch one kind into the object cache, the way client-go's reflector does.

1. List (in pages) and *replace* what the cache knew of that kind in that namespace: objects that are gone are
   removed and reported as deletions, so an object deleted while no watch was open (the gap before a re-list
   after ``410 Gone``) never stays in the cache. ``synced`` is set after the first listing: nothing reconciles
   from a cache that has not listed yet.
2. Watch from the list's resourceVersion (with bookmarks, so the version stays fresh while nothing changes);
   when the server ends the stream, watch again from the last version seen; on a connection error, back off
   (0.8 s doubling to 30 s) and watch again; when the version is too old (410, "Expired"), list again.

Every change is handed to ``on_change(kind, old, new)``: ``old`` None for a new object, ``new`` None for a
deleted one. A re-list reports only objects whose resourceVersion moved, and the ones that vanished.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from typing import Any

import aiohttp

from fulcrum.controller.cache import Body, ObjectCache, object_key
from fulcrum.controller.kube import KubeClient, KubeError

log = logging.getLogger("fulcrum.informer")

OnChange = Callable[[str, Body | None, Body | None], None]

BACKOFF_START = 0.8
BACKOFF_MAX = 30.0
WATCH_SECONDS = 300  # the server ends each watch after 5-10 min (randomised, as client-go does)


def _version(body: Body | None) -> str | None:
    return None if body is None else (body.get("metadata") or {}).get("resourceVersion")


class Informer:
    def __init__(
        self,
        kube: KubeClient,
        cache: ObjectCache,
        kind: str,
        namespace: str | None,
        on_change: OnChange,
        *,
        label_selector: str | None = None,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.kind = kind
        self.namespace = namespace
        self.on_change = on_change
        self.label_selector = label_selector
        self.watch_seconds = watch_seconds
        self.synced = asyncio.Event()
        self.lists = 0
        """Listings so far: 1 after the start, one more per re-list."""
        self.resource_version: str | None = None

    def __repr__(self) -> str:
        where = self.namespace or "all namespaces"
        return f"Informer({self.kind} in {where}{f', {self.label_selector}' if self.label_selector else ''})"

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except KubeError as exc:
                if exc.status == 410:
                    log.info("%r: resource version expired, listing again", self)
                    self.resource_version = None
                    continue
                failures += 1
                await self._backoff(failures, exc)
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, ConnectionError) as exc:
                failures += 1
                await self._backoff(failures, exc)

    async def _backoff(self, failures: int, exc: BaseException) -> None:
        delay = min(BACKOFF_MAX, BACKOFF_START * 2 ** (failures - 1)) * random.uniform(1.0, 1.2)  # noqa: S311
        log.warning("%r failed (%s); retrying in %.1f s", self, exc or type(exc).__name__, delay)
        await asyncio.sleep(delay)

    async def _list(self) -> None:
        items, version = await self.kube.list_with_version(self.kind, self.namespace, self.label_selector)
        known = {object_key(b): _version(b) for b in self._known()}
        previous = {key: self.cache.get(self.kind, *key) for key in known}
        removed = self.cache.replace(self.kind, self.namespace, items)
        self.lists += 1
        self.resource_version = version
        for body in removed:
            self.on_change(self.kind, body, None)
        for body in items:
            key = object_key(body)
            if key not in known or known[key] != _version(body):
                self.on_change(self.kind, previous.get(key), body)
        self.synced.set()

    def _known(self) -> list[Body]:
        bodies = self.cache.all(self.kind)
        if self.namespace is None:
            return bodies
        return [b for b in bodies if b.get("metadata", {}).get("namespace") == self.namespace]

    async def _watch(self) -> None:
        assert self.resource_version is not None
        seconds = int(self.watch_seconds * random.uniform(1.0, 2.0))  # noqa: S311
        async for event in self.kube.watch(
            self.kind,
            self.namespace,
            self.resource_version,
            label_selector=self.label_selector,
            timeout_seconds=seconds,
        ):
            self._handle(event.type, event.object)

    def _handle(self, type_: str, body: dict[str, Any]) -> None:
        if type_ == "ERROR":
            raise KubeError(int(body.get("code", 500)), str(body.get("reason", "")), str(body.get("message", "")))
        version = _version(body)
        if version:
            self.resource_version = version
        if type_ == "BOOKMARK":
            return
        if type_ == "DELETED":
            old = self.cache.remove(self.kind, *object_key(body))
            self.on_change(self.kind, old or body, None)
        elif type_ in ("ADDED", "MODIFIED"):
            old = self.cache.put(self.kind, body)
            self.on_change(self.kind, old, body)

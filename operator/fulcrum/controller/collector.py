"""Garbage collection of build records and the repositories they describe.

Build records (and the repositories beside them) are shared by every ModelDeployment with the same content key,
so no single object owns them. A record is *in use* while some ModelDeployment in the cache builds that key or
serves from it (``status.build.key``: the previous build serving during a rebuild). The leader remembers when it
first saw each record unused; once a record has stayed unused for the retention period, its repository is
removed (by a Job that mounts the repository storage) and the record is deleted. A key used again is forgotten.
Nothing is written until then (a steady state writes nothing); a new leader starts counting afresh, so the
retention is a lower bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pydantic import ValidationError

from fulcrum.api import parse_model_deployment
from fulcrum.controller.cache import ObjectCache
from fulcrum.controller.kube import KubeClient
from fulcrum.reconcile.plan import pool_builds
from fulcrum.resources import labels
from fulcrum.resources.build import repository_cleanup_job
from fulcrum.resources.settings import OperatorSettings

log = logging.getLogger("fulcrum.gc")


class BuildCollector:
    def __init__(
        self,
        kube: KubeClient,
        cache: ObjectCache,
        settings: OperatorSettings,
        retention_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.settings = settings
        self.retention_seconds = retention_seconds
        self.clock = clock
        self.unused_since: dict[str, float] = {}  # build key -> when this process first saw it unused
        self.deleted: list[str] = []
        """Keys collected so far (for the operator's log and tests)."""

    def keys_in_use(self) -> set[str]:
        used: set[str] = set()
        for body in self.cache.all("ModelDeployment"):
            build = ((body.get("status") or {}).get("build") or {}).get("key")
            if build:
                used.add(str(build))
            try:
                md = parse_model_deployment(
                    {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
                )
            except ValidationError:
                continue
            used.update(b.key for b in pool_builds(md.spec, self.settings, {}, {}))
        return used

    async def collect(self) -> None:
        """One pass over the build namespace's records."""
        if self.retention_seconds <= 0:
            return
        used = self.keys_in_use()
        now = self.clock()
        ns = self.settings.build_namespace
        seen: set[str] = set()
        for record in self.cache.all("ConfigMap"):
            meta = record["metadata"]
            record_labels = meta.get("labels") or {}
            if meta.get("namespace") != ns or record_labels.get(labels.COMPONENT) != labels.COMPONENT_BUILD_RECORD:
                continue
            key = record_labels.get(labels.BUILD_KEY)
            if not key or key in used:
                continue
            seen.add(key)
            since = self.unused_since.setdefault(key, now)
            if now - since >= self.retention_seconds:
                await self._delete(key, meta["name"], meta.get("uid"))
                del self.unused_since[key]
        self.unused_since = {k: v for k, v in self.unused_since.items() if k in seen}

    async def _delete(self, key: str, record_name: str, uid: str | None) -> None:
        ns = self.settings.build_namespace
        job = repository_cleanup_job(key, self.settings)
        if job is not None:
            await self.kube.create(job)
        await self.kube.delete("ConfigMap", ns, record_name, uid=uid)
        self.deleted.append(key)
        where = self.settings.storage.repository_path(key)
        left = "" if job is not None else f"; the repository {where} is left to the object store's lifecycle rules"
        log.info("build %s unused for %.0f s: record deleted%s", key[:12], self.retention_seconds, left)

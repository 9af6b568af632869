"""Garbage collection of build records and published repositories: the I/O around ``fulcrum.storage.gc``.

Runs every ``interval`` seconds in the operator. What is in use comes from the watch cache (ModelDeployments,
their Triton Deployments, the build records); the published keys come from the default repository storage,
read with the operator's own credentials (a ModelDeployment's own ``spec.repository`` is the team's: only its
records are collected, its objects are left to the bucket's lifecycle rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from fulcrum.api import ModelDeploymentStatus, parse_model_deployment
from fulcrum.controller.cache import ObjectCache
from fulcrum.controller.kube import KubeClient, KubeError
from fulcrum.reconcile.plan import pool_builds
from fulcrum.resources import labels
from fulcrum.resources.build import RECORD_KEY
from fulcrum.resources.build_key import REBUILD_ANNOTATION
from fulcrum.resources.settings import OperatorSettings
from fulcrum.resources.storage import repository_key
from fulcrum.storage import RepositoryError, S3Error, StorageConfigError
from fulcrum.storage.gc import UNUSED_SINCE, GcPlan, RecordInfo, StoredKey, format_time, plan_gc
from fulcrum.storage.repository import RepositoryStore

log = logging.getLogger("fulcrum.gc")

MODEL_REPOSITORY_FLAG = "--model-repository="


def builds_in_use(cache: ObjectCache, settings: OperatorSettings) -> set[str]:
    """Build keys some ModelDeployment wants: its pools' current keys and the build it still serves."""
    keys: set[str] = set()
    for body in cache.all("ModelDeployment"):
        meta = body["metadata"]
        status = ModelDeploymentStatus.model_validate(body.get("status") or {})
        if status.build is not None and status.build.key:
            keys.add(status.build.key)
        with contextlib.suppress(ValidationError, ValueError):
            md = parse_model_deployment({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body})
            rebuild = str((meta.get("annotations") or {}).get(REBUILD_ANNOTATION, ""))
            keys |= {b.key for b in pool_builds(md.spec, settings, {}, {}, meta.get("namespace", ""), rebuild=rebuild)}
    return keys


def repositories_in_use(cache: ObjectCache) -> set[str]:
    """Content keys that Triton Deployments serve (from their --model-repository argument)."""
    keys: set[str] = set()
    for deployment in cache.all("Deployment"):
        if deployment["metadata"].get("labels", {}).get(labels.COMPONENT) != labels.COMPONENT_SERVER:
            continue
        for container in deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for arg in container.get("args", []) or []:
                if str(arg).startswith(MODEL_REPOSITORY_FLAG):
                    keys.add(repository_key(str(arg).removeprefix(MODEL_REPOSITORY_FLAG)))
    return keys


def record_infos(cache: ObjectCache, build_namespace: str) -> list[RecordInfo]:
    """The build records of this operator: those in its build namespace (where it writes them)."""
    infos = []
    for body in cache.all("ConfigMap"):
        meta = body["metadata"]
        meta_labels = meta.get("labels", {})
        if meta_labels.get(labels.COMPONENT) != labels.COMPONENT_BUILD_RECORD:
            continue
        if meta.get("namespace") != build_namespace:
            continue
        try:
            repository = json.loads(body.get("data", {}).get(RECORD_KEY, "{}")).get("repository")
        except ValueError:
            repository = None
        infos.append(
            RecordInfo(
                namespace=meta.get("namespace", ""),
                name=meta["name"],
                build_key=meta_labels.get(labels.BUILD_KEY, ""),
                repository_key=repository_key(repository) if repository else None,
                unused_since=(meta.get("annotations") or {}).get(UNUSED_SINCE),
            )
        )
    return infos


class Collector:
    def __init__(
        self,
        kube: KubeClient,
        cache: ObjectCache,
        settings: OperatorSettings,
        store: RepositoryStore | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.settings = settings
        self.store = store
        self.clock = clock

    async def stored(self) -> list[StoredKey]:
        if self.store is None:
            return []
        try:
            return await asyncio.to_thread(self.store.stored_keys)
        except (S3Error, RepositoryError, StorageConfigError, OSError) as error:
            log.warning("garbage collection cannot list %s: %s", self.store.root, error)
            return []

    async def run_once(self) -> GcPlan:
        now = self.clock()
        plan = plan_gc(
            records=record_infos(self.cache, self.settings.build_namespace),
            builds_in_use=builds_in_use(self.cache, self.settings),
            repositories_in_use=repositories_in_use(self.cache),
            stored=await self.stored(),
            now=now,
            retention=timedelta(seconds=self.settings.retention_seconds),
        )
        await self.apply(plan, now)
        return plan

    async def apply(self, plan: GcPlan, now: datetime) -> None:
        for record in plan.mark:
            await self.kube.annotate("ConfigMap", record.namespace, record.name, {UNUSED_SINCE: format_time(now)})
        for record in plan.unmark:
            await self.kube.annotate("ConfigMap", record.namespace, record.name, {UNUSED_SINCE: None})
        for record in plan.delete_records:
            log.info("deleting build record %s/%s: unused since %s", record.namespace, record.name, record.unused_since)
            await self.kube.delete("ConfigMap", record.namespace, record.name)
            self.cache.remove("ConfigMap", record.namespace, record.name)
        if self.store is None:
            return
        for key in plan.delete_keys:
            log.info(
                "deleting repository %s: unused for %ss", self.store.location(key), self.settings.retention_seconds
            )
            try:
                await asyncio.to_thread(self.store.delete, key)
            except (S3Error, RepositoryError, OSError) as error:
                log.warning("could not delete %s: %s", self.store.location(key), error)
        for key in plan.clean_uploads:
            try:
                stale = await asyncio.to_thread(self.store.delete_stale_uploads, key)
            except (S3Error, RepositoryError, OSError) as error:
                log.warning("could not clean uploads of %s: %s", self.store.location(key), error)
                continue
            if stale:
                log.info("removed %d unfinished upload(s) of %s", len(stale), self.store.location(key))

    async def run_forever(self, interval: float, first_delay: float = 60.0) -> None:
        await asyncio.sleep(first_delay)
        while True:
            try:
                await self.run_once()
            except (KubeError, OSError) as error:
                log.warning("garbage collection failed (next try in %.0fs): %s", interval, error)
            await asyncio.sleep(interval)


def collector_store(settings: OperatorSettings, env: dict[str, Any] | None = None) -> RepositoryStore | None:
    """The default storage as the operator reaches it: object storage with its own credentials (None for
    claims and node directories, which the operator does not mount)."""
    from fulcrum.storage import open_repository  # noqa: PLC0415

    if settings.storage.kind != "s3":
        return None
    variables = dict(os.environ if env is None else env)
    if settings.storage.endpoint:
        variables["AWS_ENDPOINT_URL"] = settings.storage.endpoint
    if settings.storage.region:
        variables["AWS_REGION"] = settings.storage.region
    try:
        return open_repository(settings.storage.location, variables)
    except StorageConfigError as error:
        log.warning("garbage collection of %s is off: %s", settings.storage.location, error)
        return None

"""Garbage collection of build records and published repositories: the I/O around ``fulcrum.storage.gc``.

Only the leader runs it (``fulcrum.controller.manager``), every ``gc_seconds``. Build records are shared by every
ModelDeployment with the same build key, and a published repository (``<storage>/<content key>/``) by every
build with the same content, so no single object owns either:

- a record is *in use* while some ModelDeployment in the cache builds its key or still serves from it
  (``status.build.key``, the previous build during a rebuild). A record that falls out of use is marked with the
  time (the ``fulcrum.dev/unused-since`` annotation: the clock survives restarts and failovers); once unused for
  the retention period it is deleted. Nothing is written while everything is in use;
- a repository is kept while an in-use record, or a Triton Deployment, refers to its content key. In the default
  ``s3`` storage the operator lists the keys and deletes the unused ones itself (with its own credentials), once
  published longer than the retention ago; unfinished uploads go likewise. A claim or node directory (``pvc``,
  ``hostPath``), which the operator does not mount, is cleaned by a short Job per content key whose last record
  was deleted. A ModelDeployment's own ``spec.repository`` is the team's: its records are collected, its objects
  are left to the bucket's lifecycle rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from fulcrum.api import ModelDeploymentStatus, parse_model_deployment
from fulcrum.controller.cache import ObjectCache
from fulcrum.controller.kube import KubeClient
from fulcrum.reconcile.plan import pool_builds
from fulcrum.resources import labels
from fulcrum.resources.build import RECORD_KEY, repository_cleanup_job
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
        with contextlib.suppress(ValidationError, ValueError):
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
        if (deployment["metadata"].get("labels") or {}).get(labels.COMPONENT) != labels.COMPONENT_SERVER:
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
        meta_labels = meta.get("labels") or {}
        if meta_labels.get(labels.COMPONENT) != labels.COMPONENT_BUILD_RECORD:
            continue
        if meta.get("namespace") != build_namespace:
            continue
        try:
            repository = json.loads((body.get("data") or {}).get(RECORD_KEY, "{}")).get("repository")
        except (ValueError, AttributeError):
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


class BuildCollector:
    def __init__(
        self,
        kube: KubeClient,
        cache: ObjectCache,
        settings: OperatorSettings,
        retention_seconds: float,
        store: RepositoryStore | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``store``: the default storage as the operator reaches it (``collector_store``), None where it cannot
        list it (claims and node directories)."""
        self.kube = kube
        self.cache = cache
        self.settings = settings
        self.retention_seconds = retention_seconds
        self.store = store
        self.clock = clock
        self.deleted: list[str] = []
        """Build keys whose records were collected so far (for the operator's log and tests)."""

    async def stored(self) -> list[StoredKey]:
        if self.store is None:
            return []
        try:
            return await asyncio.to_thread(self.store.stored_keys)
        except (S3Error, RepositoryError, StorageConfigError, OSError) as error:
            log.warning("garbage collection cannot list %s: %s", self.store.root, error)
            return []

    async def collect(self) -> GcPlan:
        """One pass: mark, unmark and delete what the plan says."""
        now = self.clock()
        plan = plan_gc(
            records=record_infos(self.cache, self.settings.build_namespace),
            builds_in_use=builds_in_use(self.cache, self.settings),
            repositories_in_use=repositories_in_use(self.cache),
            stored=await self.stored(),
            now=now,
            retention=timedelta(seconds=self.retention_seconds),
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
            self.deleted.append(record.build_key)
        if self.store is None:
            await self._clean_mounted(plan.released_keys)
            return
        for key in plan.delete_keys:
            log.info("deleting repository %s: unused for %.0f s", self.store.location(key), self.retention_seconds)
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

    async def _clean_mounted(self, content_keys: list[str]) -> None:
        """A claim or node directory: one Job per released content key removes its directory."""
        for key in content_keys:
            job = repository_cleanup_job(key, self.settings)
            if job is None:  # object storage the operator cannot reach: left to the bucket's lifecycle rules
                log.info("repository %s/%s is no longer used: left to the store", self.settings.storage.location, key)
                continue
            await self.kube.create(job)
            log.info("repository %s/%s is no longer used: removing it", self.settings.storage.location, key)


def collector_store(settings: OperatorSettings, env: Mapping[str, str] | None = None) -> RepositoryStore | None:
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

"""Garbage collection of build records and published repositories. Pure: the caller lists and deletes.

A build record is *in use* while some ModelDeployment wants its key (one of its pools' builds, or the build it
still serves while a new one runs). A record that falls out of use is marked with the time (an annotation, so
the clock survives operator restarts); once unused for the retention period it is deleted. A published
repository is kept while an in-use record, or a running Triton Deployment, refers to it; otherwise it is
deleted once it has been published (or, for an upload that never finished, last written) for longer than the
retention period, which also gives a just-published key time to get its record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

UNUSED_SINCE = "fulcrum.dev/unused-since"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
UPLOAD_GRACE = timedelta(hours=1)
"""An upload beside a published one is removed once the key has been published this long (a build that lost
the race to publish has surely stopped writing by then)."""


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    for fmt in (TIME_FORMAT, "%Y-%m-%dT%H:%M:%S.%fZ", "%a, %d %b %Y %H:%M:%S GMT"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


@dataclass(frozen=True)
class RecordInfo:
    """A build record as the collector sees it."""

    namespace: str
    name: str
    build_key: str
    repository_key: str | None  # the content key it published (None: nothing, e.g. a failed build)
    unused_since: str | None = None


@dataclass(frozen=True)
class StoredKey:
    """A key found in the repository storage."""

    key: str
    published_at: str | None  # None: an upload that never finished (no marker)
    last_modified: str | None = None
    stale_uploads: int = 0  # uploads beside the published one (builds that died mid-upload)


@dataclass
class GcPlan:
    mark: list[RecordInfo] = field(default_factory=list)  # set UNUSED_SINCE to now
    unmark: list[RecordInfo] = field(default_factory=list)  # in use again: remove UNUSED_SINCE
    delete_records: list[RecordInfo] = field(default_factory=list)
    delete_keys: list[str] = field(default_factory=list)
    clean_uploads: list[str] = field(default_factory=list)  # published keys whose stale uploads can go
    released_keys: list[str] = field(default_factory=list)
    """Content keys whose last record is deleted now and that nothing else keeps: what a storage the operator
    cannot list (a claim, a node directory) removes."""

    @property
    def empty(self) -> bool:
        return not (
            self.mark
            or self.unmark
            or self.delete_records
            or self.delete_keys
            or self.clean_uploads
            or self.released_keys
        )


def plan_gc(
    *,
    records: Iterable[RecordInfo],
    builds_in_use: set[str],
    repositories_in_use: set[str],
    stored: Iterable[StoredKey] = (),
    now: datetime,
    retention: timedelta,
) -> GcPlan:
    """What to mark, unmark and delete. ``retention`` of zero or less disables deletion (marks still move)."""
    plan = GcPlan()
    kept_repositories = set(repositories_in_use)
    for record in records:
        if record.build_key in builds_in_use:
            if record.unused_since is not None:
                plan.unmark.append(record)
            if record.repository_key:
                kept_repositories.add(record.repository_key)
            continue
        since = parse_time(record.unused_since)
        if since is None:
            plan.mark.append(record)
        elif retention > timedelta(0) and now - since >= retention:
            plan.delete_records.append(record)
            continue
        if record.repository_key:
            kept_repositories.add(record.repository_key)
    released = {r.repository_key for r in plan.delete_records if r.repository_key}
    plan.released_keys = sorted(released - kept_repositories)
    deleting = retention > timedelta(0)
    if not deleting:
        retention = timedelta.max
    for item in stored:
        published = parse_time(item.published_at)
        if item.stale_uploads and published is not None and now - published >= UPLOAD_GRACE:
            plan.clean_uploads.append(item.key)
        if item.key in kept_repositories:
            continue
        age_from = published or parse_time(item.last_modified)
        if deleting and age_from is not None and now - age_from >= retention:
            plan.delete_keys.append(item.key)
    return plan

"""Publishing a built repository to its storage, and the build's result for the operator.

The last stage of a build: the built directory is published write-once under its content key
(``fulcrum.storage.repository``) and the termination message says where it is. A key already published (by
another namespace's build of the same bytes, or by an earlier run) is reused, never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fulcrum.api import BuildManifest
from fulcrum.storage import RepositoryError, S3Error, StorageConfigError, form, open_repository
from fulcrum.storage.repository import DirRepository, S3Repository
from model_repo_builder import termination

MANIFEST = "manifest.json"


class PublishError(RuntimeError):
    """The repository could not be published or read; the message names the location and the cause."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def store_at(
    location: str, *, upload_form: Path | None = None, wait: float = 0.0, say: Callable[[str], None] = print
) -> S3Repository | DirRepository:
    """The repository at ``location``; with ``upload_form`` (object storage), writes go through that signed form
    (``fulcrum.storage.form``), waiting up to ``wait`` seconds for it to appear."""
    try:
        store = open_repository(location)
    except StorageConfigError as error:
        raise PublishError(f"repository {location}: {error}") from error
    if upload_form is not None and isinstance(store, S3Repository):
        try:
            store.form = form.load(upload_form, wait=wait, say=say)
        except StorageConfigError as error:  # the operator may be restarting: the Job's next pod asks again
            raise PublishError(f"repository {location}: {error}", transient=True) from error
    return store


def published_manifest(store: S3Repository | DirRepository, key: str) -> tuple[str, BuildManifest] | None:
    """(location, manifest) of ``key`` if it is published in ``store``, else None."""
    try:
        marker = store.published(key)
        if marker is None:
            return None
        data = store.read_file(key, marker, MANIFEST)
    except S3Error as error:
        raise PublishError(f"repository {store.root}: {error}", transient=error.transient) from error
    except RepositoryError as error:
        raise PublishError(f"repository {store.root}: {error}") from error
    return store.location(key), BuildManifest.model_validate_json(data)


def publish(store: S3Repository | DirRepository, key: str, built: Path) -> tuple[str, bool]:
    """Publish ``built`` as ``key``; (location, created). ``created`` False: the key was already there."""
    try:
        result = store.publish(key, built)
    except S3Error as error:
        raise PublishError(f"publishing {store.location(key)}: {error}", transient=error.transient) from error
    except (RepositoryError, OSError) as error:
        raise PublishError(f"publishing {store.location(key)}: {error}") from error
    return store.location(key), result.created


def servable(manifest: BuildManifest) -> bool:
    return any(t.state == "Ready" for t in manifest.tiers)


def error_message(reason: str, message: str) -> str:
    """The termination message of a build that produced nothing to serve for a reason outside the model."""
    return termination.error(reason, message)


def result_message(manifest: BuildManifest, key: str, location: str, reused: bool) -> str:
    wire: dict[str, Any] = manifest.model_dump(by_alias=True, mode="json")
    return termination.compact(wire, key, location, reused)


def write(path: Path | None, text: str) -> None:
    if path is not None:
        path.write_text(text)


def load_manifest(path: Path) -> BuildManifest:
    return BuildManifest.model_validate(json.loads(path.read_text()))

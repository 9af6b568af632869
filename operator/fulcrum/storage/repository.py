"""Model repositories in storage, written once per content key and read by many.

Layout under a storage root (``s3://bucket/prefix`` or a directory such as a PVC's mount)::

    <key>/published.json              the completion marker: which upload is the key, every file's size and sha256
    <key>/uploads/<upload-id>/<path>  the files of one upload (object storage)
    <key>/<path>                      the files (a directory: the whole <key>/ appears at once, by rename)

Object storage: a publisher uploads every file under a fresh ``uploads/<upload-id>/`` prefix, then writes the
marker with ``If-None-Match: *``. The marker is one object, so it appears whole or not at all, and the
conditional write makes the first publisher win: a published key is never overwritten. Readers look at the
marker only and fetch exactly the files it lists, verifying each one's size and digest, so they never see a
half-written key: a publisher killed mid-upload leaves an upload that no marker names (garbage collection
removes it) and the next publisher starts a new one. Directories: the publisher fills a staging directory
``.uploads/<key>.<upload-id>/`` (marker included) and renames it to ``<key>/``: atomic on one filesystem.

Only regular files are published; symbolic links, devices and names that would leave the key are refused, so
whatever a build leaves in its output directory, a publish writes under its own key and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fulcrum.storage.config import ObjectURI
from fulcrum.storage.form import UploadForm
from fulcrum.storage.gc import StoredKey
from fulcrum.storage.s3 import AlreadyExistsError, S3Client

MARKER = "published.json"
UPLOADS = "uploads"
FORMAT = 1
KEY_PATTERN = re.compile(r"^[0-9a-f]{16,64}$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9._+=@,-]+$")
WORKERS = 4


class RepositoryError(RuntimeError):
    """A repository that cannot be published or read; the message names the key and the cause."""


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise RepositoryError(f"repository key {key!r} is not 16-64 lowercase hex digits")
    return key


def check_path(rel: str) -> str:
    """A published file's path: relative, ``/``-separated, no ``.``/``..``, conservative characters."""
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") or not _SAFE_PART.match(p) for p in parts):
        raise RepositoryError(f"file name {rel!r} cannot be published (use letters, digits and ._+=@,- only)")
    return rel


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Published:
    """The completion marker of a key."""

    key: str
    upload: str
    files: tuple[FileEntry, ...]
    published_at: str

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT,
            "key": self.key,
            "upload": self.upload,
            "publishedAt": self.published_at,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, key: str) -> Published:
        try:
            document = json.loads(data)
            marker = cls(
                key=str(document["key"]),
                upload=str(document["upload"]),
                published_at=str(document.get("publishedAt", "")),
                files=tuple(
                    FileEntry(check_path(str(f["path"])), int(f["size"]), str(f["sha256"])) for f in document["files"]
                ),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise RepositoryError(f"the marker of key {key} does not parse: {error}") from error
        if marker.key != key:
            raise RepositoryError(f"the marker of key {key} names key {marker.key}")
        return marker

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class PublishResult:
    marker: Published
    created: bool  # False: the key was already published (by this or another build), nothing was written


def new_upload_id(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(4)


def _utc(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def sha256_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def walk_files(source: Path) -> Iterator[tuple[str, Path]]:
    """(relative path, file) of every regular file under ``source``; refuses anything else.

    ``lstat`` everywhere: a symbolic link is never followed (it could point at a credential file or outside
    the build's output), it is an error."""
    source_stat = source.lstat()
    if not stat.S_ISDIR(source_stat.st_mode):
        raise RepositoryError(f"{source} is not a directory")
    for entry in sorted(source.rglob("*")):
        mode = entry.lstat().st_mode
        rel = entry.relative_to(source).as_posix()
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise RepositoryError(f"{rel} in {source} is {kind}: only regular files are published")
        yield check_path(rel), entry


def _entry(marker: Published, rel: str, location: str) -> FileEntry:
    for entry in marker.files:
        if entry.path == rel:
            return entry
    raise RepositoryError(f"{location} has no file {rel}")


def _verified(data: bytes, entry: FileEntry, location: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if (len(data), digest) != (entry.size, entry.sha256):
        raise RepositoryError(f"{location}/{entry.path}: content does not match its marker (sha256 {digest})")
    return data


class RepositoryStore(Protocol):
    """Where keys are published (object storage or a directory)."""

    @property
    def root(self) -> str: ...

    def location(self, key: str) -> str: ...

    def published(self, key: str) -> Published | None: ...

    def publish(self, key: str, source: Path) -> PublishResult: ...

    def read_file(self, key: str, marker: Published, rel: str) -> bytes: ...

    def all_keys(self) -> list[str]: ...

    def stored_keys(self) -> list[StoredKey]: ...

    def delete_stale_uploads(self, key: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...


class S3Repository:
    """Keys under ``s3://bucket/prefix``.

    ``form``: publish through a signed upload form (``fulcrum.storage.form``) instead of the client's
    credentials, which then only need to read: what a build Job does, so it can write its own key only."""

    def __init__(self, client: S3Client, root: ObjectURI, *, form: UploadForm | None = None) -> None:
        self.client = client
        self.base = root
        self.form = form

    @property
    def root(self) -> str:
        return str(self.base)

    def location(self, key: str) -> str:
        return str(self.base.child(check_key(key)))

    def _object(self, key: str, *parts: str) -> str:
        return self.base.child(check_key(key), *parts).key

    def published(self, key: str) -> Published | None:
        data = self.client.get_object(self.base.bucket, self._object(key, MARKER), missing_ok=True)
        return None if data is None else Published.from_json(data, key)

    def publish(self, key: str, source: Path) -> PublishResult:
        existing = self.published(key)
        if existing is not None:
            return PublishResult(existing, created=False)
        upload = new_upload_id()
        files = list(walk_files(source))
        if not files:
            raise RepositoryError(f"{source} holds no files: nothing to publish as key {key}")

        form = self.form
        if form is not None and not form.allows(self._object(key, MARKER)):
            raise RepositoryError(f"{self.location(key)}: the upload form is for {form.prefix}, not this key")

        def put(item: tuple[str, Path]) -> FileEntry:
            rel, path = item
            size, digest = sha256_file(path)
            name = self._object(key, UPLOADS, upload, rel)
            if form is not None:
                self.client.post_object(form, name, path)
            else:
                self.client.upload_file(self.base.bucket, name, path)
            return FileEntry(rel, size, digest)

        with ThreadPoolExecutor(WORKERS) as pool:
            entries = tuple(pool.map(put, files))
        marker = Published(key=key, upload=upload, files=entries, published_at=_utc())
        if form is not None:
            return self._publish_marker_with_form(form, marker)
        try:
            self.client.put_object(
                self.base.bucket,
                self._object(key, MARKER),
                marker.to_json(),
                if_none_match=True,
                content_type="application/json",
            )
        except AlreadyExistsError:
            self._delete_upload(key, upload)  # another build published this key first: theirs stands
            winner = self.published(key)
            if winner is None:
                raise RepositoryError(f"key {key}: the store refused the marker but holds none") from None
            return PublishResult(winner, created=False)
        return PublishResult(marker, created=True)

    def _publish_marker_with_form(self, form: UploadForm, marker: Published) -> PublishResult:
        """Write the marker through the form. A POST cannot be conditional (no ``If-None-Match``), so the key is
        looked up once more first: the operator runs one build Job per build key, so only builds of *different*
        build keys with the same content (two namespaces' unpinned specs of the same bytes) can race here, and
        then both uploads are complete and identical in content; the later marker names its own upload, which a
        reader fetches whole, and garbage collection removes the upload no marker names."""
        winner = self.published(marker.key)
        if winner is not None:  # a form cannot delete: this upload stays for garbage collection
            return PublishResult(winner, created=False)
        self.client.post_object(form, self._object(marker.key, MARKER), marker.to_json())
        return PublishResult(marker, created=True)

    def read_file(self, key: str, marker: Published, rel: str) -> bytes:
        """One published file in memory (the manifest), verified against the marker."""
        entry = _entry(marker, rel, self.location(key))
        data = self.client.get_object(self.base.bucket, self._object(key, UPLOADS, marker.upload, entry.path))
        assert data is not None
        return _verified(data, entry, self.location(key))

    def pull(self, key: str, target: Path, *, only: set[str] | None = None) -> Published:
        """Download a published key into ``target`` (which must not exist yet), verifying every file.

        ``only``: top-level directories to fetch (e.g. the Triton models a pod loads); all files otherwise.
        The files land in a staging directory beside ``target`` that is renamed at the end."""
        marker = self.published(key)
        if marker is None:
            raise RepositoryError(f"{self.location(key)} is not published (no {MARKER}): nothing to read")
        wanted = [f for f in marker.files if only is None or f.path.split("/", 1)[0] in only or "/" not in f.path]
        staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        staging.mkdir(parents=True)

        def get(entry: FileEntry) -> None:
            dest = staging / entry.path
            size, digest = self.client.download(
                self.base.bucket, self._object(key, UPLOADS, marker.upload, entry.path), dest
            )
            if (size, digest) != (entry.size, entry.sha256):
                raise RepositoryError(
                    f"{self.location(key)}/{entry.path}: expected {entry.size} bytes with sha256 {entry.sha256}, "
                    f"got {size} bytes with sha256 {digest}"
                )

        try:
            with ThreadPoolExecutor(WORKERS) as pool:
                list(pool.map(get, wanted))
            (staging / MARKER).write_bytes(marker.to_json())
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return marker

    def all_keys(self) -> list[str]:
        names = [
            p[len(self.base.prefix) :].rstrip("/")
            for p in self.client.list_prefixes(self.base.bucket, self.base.prefix)
        ]
        return sorted(n for n in names if KEY_PATTERN.match(n))

    def uploads(self, key: str) -> list[str]:
        """Upload ids with objects under a key (the published one and any left by builds that died).

        Listed from the objects, not from "directories": some stores keep an empty prefix for a while."""
        prefix = self.base.child(check_key(key), UPLOADS).prefix
        objects = self.client.list_objects(self.base.bucket, prefix)
        return sorted({o.key[len(prefix) :].split("/", 1)[0] for o in objects})

    def _delete_upload(self, key: str, upload: str) -> None:
        prefix = self.base.child(check_key(key), UPLOADS, upload).prefix
        self.client.delete_objects(
            self.base.bucket, [o.key for o in self.client.list_objects(self.base.bucket, prefix)]
        )

    def delete_stale_uploads(self, key: str) -> list[str]:
        """Remove uploads of ``key`` that its marker does not name (left by builds that died mid-upload).

        Only call this for a published key, or for a key no build is working on."""
        marker = self.published(key)
        stale = [u for u in self.uploads(key) if marker is None or u != marker.upload]
        for upload in stale:
            self._delete_upload(key, upload)
        return stale

    def stored_keys(self) -> list[StoredKey]:
        """Every key with when it was published (or last written, for an upload that never finished)."""
        out = []
        for key in self.all_keys():
            marker = self.published(key)
            uploads = self.uploads(key)
            if marker is not None:
                out.append(StoredKey(key, marker.published_at, None, len([u for u in uploads if u != marker.upload])))
                continue
            if not uploads:
                continue  # an empty prefix left behind by a deletion
            prefix = self.base.child(key).prefix
            times = [o.last_modified for o in self.client.list_objects(self.base.bucket, prefix) if o.last_modified]
            out.append(StoredKey(key, None, max(times) if times else None, len(uploads)))
        return out

    def delete(self, key: str) -> None:
        """Unpublish (the marker goes first, so no reader starts on a key being deleted), then delete."""
        self.client.delete_objects(self.base.bucket, [self._object(key, MARKER)])
        prefix = self.base.child(check_key(key)).prefix
        self.client.delete_objects(
            self.base.bucket, [o.key for o in self.client.list_objects(self.base.bucket, prefix)]
        )


class DirRepository:
    """Keys in a directory (a PersistentVolumeClaim or a node directory mounted into the pod)."""

    def __init__(self, root: Path) -> None:
        self.base = root

    @property
    def root(self) -> str:
        return str(self.base)

    def location(self, key: str) -> str:
        return str(self.base / check_key(key))

    def published(self, key: str) -> Published | None:
        marker = self.base / check_key(key) / MARKER
        try:
            return Published.from_json(marker.read_bytes(), key)
        except FileNotFoundError:
            return None

    def publish(self, key: str, source: Path) -> PublishResult:
        existing = self.published(key)
        if existing is not None:
            return PublishResult(existing, created=False)
        upload = new_upload_id()
        staging = self.base / ".uploads" / f"{check_key(key)}.{upload}"
        staging.mkdir(parents=True)
        try:
            entries = []
            for rel, path in walk_files(source):
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest, follow_symlinks=False)
                entries.append(FileEntry(rel, *sha256_file(dest)))
            if not entries:
                raise RepositoryError(f"{source} holds no files: nothing to publish as key {key}")
            marker = Published(key=key, upload=upload, files=tuple(entries), published_at=_utc())
            (staging / MARKER).write_bytes(marker.to_json())
            target = self.base / key
            try:
                os.rename(staging, target)  # atomic; fails if another publisher's key is already there
            except OSError:
                winner = self.published(key)
                if winner is None:
                    raise
                return PublishResult(winner, created=False)
            return PublishResult(marker, created=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def read_file(self, key: str, marker: Published, rel: str) -> bytes:
        entry = _entry(marker, rel, self.location(key))
        return _verified((self.base / key / entry.path).read_bytes(), entry, self.location(key))

    def all_keys(self) -> list[str]:
        if not self.base.is_dir():
            return []
        return sorted(p.name for p in self.base.iterdir() if p.is_dir() and KEY_PATTERN.match(p.name))

    def stored_keys(self) -> list[StoredKey]:
        out = []
        for key in self.all_keys():
            marker = self.published(key)
            mtime = (self.base / key).stat().st_mtime
            out.append(StoredKey(key, marker.published_at if marker else None, _utc(mtime)))
        return out

    def delete_stale_uploads(self, key: str) -> list[str]:
        """Staging directories of builds that died before renaming (any key: they never became a key)."""
        staging = self.base / ".uploads"
        stale = sorted(p.name for p in staging.glob(f"{check_key(key)}.*")) if staging.is_dir() else []
        for name in stale:
            shutil.rmtree(staging / name, ignore_errors=True)
        return stale

    def delete(self, key: str) -> None:
        target = self.base / check_key(key)
        (target / MARKER).unlink(missing_ok=True)
        shutil.rmtree(target, ignore_errors=True)

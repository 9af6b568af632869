"""Model and validation-data URIs: where they point, fetching them, and checking their digest.

Schemes:

- ``file:`` — a relative path is relative to the spec file's folder (``fulcrum build --spec`` on a workstation);
  in a cluster (``relative_files=False``) only ``file:///absolute`` paths inside the builder image make sense;
- ``https://`` — fetched with the standard library; pin it with ``sha256``;
- ``s3://bucket/key`` (and ``gs://bucket/key`` through Cloud Storage's S3-compatible API) — fetched with
  ``fulcrum.storage`` using the AWS_* environment (the build Job gets it from the repository's Secret);
- ``pvc://<claim>/<path>`` — the claim mounted read-only in the build Job at
  ``$FULCRUM_PVC_ROOT/<claim>/<path>`` (default ``/mnt/pvc``).

Failures raise :class:`SourceError` with a message naming the field, the URI and the cause. ``transient`` says
whether trying again later may help (the store or host could not be reached, or answered 5xx/429 after the
client's own retries); a missing object, a refused credential or a wrong digest is not transient.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from fulcrum.storage import ObjectURI, S3Client, S3Config, S3Error, StorageConfigError

PVC_ROOT_ENV = "FULCRUM_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
HTTPS_ATTEMPTS = 5

Kind = Literal["local", "remote"]


class SourceError(ValueError):
    """A URI that cannot be resolved, fetched or verified; the message names the field and the URI."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Location:
    """Where a URI points: a local path, or a remote URL to fetch."""

    kind: Kind
    path: Path | None = None
    url: str | None = None


def default_pvc_root() -> Path:
    return Path(os.environ.get(PVC_ROOT_ENV) or DEFAULT_PVC_ROOT)


def pvc_claims(uris: list[str]) -> list[str]:
    """The claims that ``pvc://`` URIs name, in order, once each (pure)."""
    claims = [urlparse(u).netloc for u in uris if urlparse(u).scheme == "pvc" and urlparse(u).netloc]
    return list(dict.fromkeys(claims))


def resolve_uri(
    uri: str,
    *,
    base_dir: Path,
    pvc_root: str | None = None,
    field: str = "uri",
    relative_files: bool = True,
) -> Location:
    """Map a spec URI to a local path or a remote URL (pure: touches no file)."""
    parsed = urlparse(uri)
    scheme = parsed.scheme
    if scheme == "file":
        # file:///abs, file:/abs, file:relative, file://./relative
        raw = unquote(uri[len("file:") :])
        if raw.startswith("//"):
            raw = raw[2:]
            # file://host/... is not supported; file://./x is relative
            if raw and not raw.startswith(("/", ".")):
                raise SourceError(f"{field}: file URI {uri!r} names a host; use file:///absolute or file:relative")
        if not raw:
            raise SourceError(f"{field}: file URI {uri!r} has no path")
        path = Path(raw)
        if not path.is_absolute() and not relative_files:
            raise SourceError(
                f"{field}: {uri!r} is relative to the spec file, which only `fulcrum build --spec` on a workstation "
                "has; in a cluster use s3://, https:// (with sha256), pvc://<claim>/<path> or a file:/// path "
                "inside the builder image"
            )
        return Location("local", path=path if path.is_absolute() else (base_dir / path))
    if scheme == "pvc":
        claim = parsed.netloc
        rel = unquote(parsed.path).lstrip("/")
        if not claim or not rel:
            raise SourceError(f"{field}: pvc URI {uri!r} must look like pvc://<claim>/<path>")
        if ".." in Path(rel).parts:
            raise SourceError(f"{field}: pvc URI {uri!r} must not contain '..'")
        root = Path(pvc_root) if pvc_root else default_pvc_root()
        return Location("local", path=root / claim / rel)
    if scheme in ("https", "s3", "gs"):
        if not parsed.netloc:
            raise SourceError(f"{field}: URI {uri!r} has no host or bucket")
        return Location("remote", url=uri)
    raise SourceError(f"{field}: unsupported URI scheme in {uri!r} (use file:, https://, s3://, gs:// or pvc://)")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _download_object(url: str, target: Path, field: str) -> None:
    try:
        uri = ObjectURI.parse(url)
        client = S3Client(S3Config.from_environment(scheme=uri.scheme))
    except StorageConfigError as error:
        raise SourceError(f"{field}: cannot read {url}: {error}") from error
    try:
        client.download(uri.bucket, uri.key, target)
    except S3Error as error:
        where = client.config.describe()
        raise SourceError(
            f"{field}: cannot read {url} from bucket {uri.bucket!r}: {error.code}: {error.message} (store: {where})",
            transient=error.transient,
        ) from error
    finally:
        client.close()


def _download_https(url: str, target: Path, field: str, *, attempts: int = HTTPS_ATTEMPTS, sleep: float = 0.5) -> None:
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    os.close(handle)
    try:
        for attempt in range(attempts):
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "fulcrum-builder"})  # noqa: S310 - https only (resolve_uri)
                with urllib.request.urlopen(request, timeout=60) as response, open(tmp, "wb") as out:  # noqa: S310
                    shutil.copyfileobj(response, out, 1 << 20)
                os.replace(tmp, target)
                return
            except urllib.error.HTTPError as error:
                if error.code not in (429, 500, 502, 503, 504) or attempt == attempts - 1:
                    transient = error.code in (429, 500, 502, 503, 504)
                    raise SourceError(
                        f"{field}: cannot fetch {url}: HTTP {error.code} {error.reason}", transient=transient
                    ) from error
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                if attempt == attempts - 1:
                    reason = getattr(error, "reason", None) or error
                    raise SourceError(f"{field}: cannot reach {url}: {reason}", transient=True) from error
            time.sleep(sleep * 2**attempt)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download(url: str, target: Path, field: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if urlparse(url).scheme in ("s3", "gs"):
        _download_object(url, target, field)
    else:
        _download_https(url, target, field)


def _pinned_copy(location: Location, base_dir: Path, expected_sha256: str | None) -> Path | None:
    if location.kind != "remote" or expected_sha256 is None or location.url is None:
        return None
    name = Path(urlparse(location.url).path).name
    candidate = base_dir / name
    if name and candidate.is_file() and sha256_file(candidate) == expected_sha256.lower():
        return candidate
    return None


def fetch(
    uri: str,
    *,
    base_dir: Path,
    cache_dir: Path,
    expected_sha256: str | None = None,
    field: str = "uri",
    pvc_root: str | None = None,
    relative_files: bool = True,
) -> tuple[Path, str]:
    """Make the file a URI names available locally; returns (path, sha256). Raises :class:`SourceError`.

    Remote files are downloaded into ``cache_dir/downloads/`` (a pinned file already there is not fetched
    again). On a workstation (``relative_files``), a pinned remote file whose copy lies beside the spec (same
    name, same sha256) is read from there: the digest makes it the same input, so ``fulcrum build`` on a
    checkout of the examples needs no object store."""
    location = resolve_uri(uri, base_dir=base_dir, pvc_root=pvc_root, field=field, relative_files=relative_files)
    beside = _pinned_copy(location, base_dir, expected_sha256) if relative_files else None
    if beside is not None:
        return beside, expected_sha256.lower()  # type: ignore[union-attr]
    if location.kind == "local":
        assert location.path is not None
        path = location.path
        if not path.is_file():
            raise SourceError(f"{field}: {uri!r} resolves to {path}, which is not a file")
    else:
        assert location.url is not None
        name = Path(urlparse(location.url).path).name or "download"
        key = hashlib.sha256(location.url.encode()).hexdigest()[:16]
        path = cache_dir / "downloads" / key / name
        if expected_sha256 is None or not path.is_file() or sha256_file(path) != expected_sha256:
            _download(location.url, path, field)
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise SourceError(f"{field}: sha256 mismatch for {uri!r}: expected {expected_sha256}, the file has {digest}")
    return path, digest

"""Model and validation-data URIs: where they point, fetching them, and checking their digest.

Schemes: ``file:`` (relative paths are relative to the spec file's folder), ``https://``,
``s3://`` / ``gs://`` (through fsspec, with s3fs / gcsfs installed) and ``pvc://<claim>/<path>``, which is
the claim mounted in the build Job at ``$FULCRUM_PVC_ROOT/<claim>/<path>`` (default ``/mnt/pvc``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

PVC_ROOT_ENV = "FULCRUM_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"

Kind = Literal["local", "remote"]


class SourceError(ValueError):
    """A URI that cannot be resolved, fetched or verified; the message names the field and the URI."""


@dataclass(frozen=True)
class Location:
    """Where a URI points: a local path, or a remote URL to fetch."""

    kind: Kind
    path: Path | None = None
    url: str | None = None


def resolve_uri(uri: str, *, base_dir: Path, pvc_root: str | None = None, field: str = "uri") -> Location:
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
        return Location("local", path=path if path.is_absolute() else (base_dir / path))
    if scheme == "pvc":
        claim = parsed.netloc
        rel = unquote(parsed.path).lstrip("/")
        if not claim or not rel:
            raise SourceError(f"{field}: pvc URI {uri!r} must look like pvc://<claim>/<path>")
        if ".." in Path(rel).parts:
            raise SourceError(f"{field}: pvc URI {uri!r} must not contain '..'")
        root = Path(pvc_root or os.environ.get(PVC_ROOT_ENV) or DEFAULT_PVC_ROOT)
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


def _download(url: str, target: Path, field: str) -> None:
    try:
        import fsspec
    except ImportError as error:  # pragma: no cover - fsspec is a builder dependency
        raise SourceError(f"{field}: fetching {url} needs fsspec (pip install 'fulcrum[builder]')") from error
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    os.close(handle)
    try:
        with fsspec.open(url, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    except ImportError as error:
        raise SourceError(
            f"{field}: fetching {url} needs the fsspec filesystem for its scheme (s3fs for s3://, gcsfs for gs://, "
            f"aiohttp for https://): {error}"
        ) from error
    except (OSError, ValueError) as error:
        raise SourceError(f"{field}: could not fetch {url}: {error}") from error
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch(
    uri: str,
    *,
    base_dir: Path,
    cache_dir: Path,
    expected_sha256: str | None = None,
    field: str = "uri",
    pvc_root: str | None = None,
) -> tuple[Path, str]:
    """Make the file a URI names available locally; returns (path, sha256). Raises :class:`SourceError`."""
    location = resolve_uri(uri, base_dir=base_dir, pvc_root=pvc_root, field=field)
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

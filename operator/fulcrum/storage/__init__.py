"""Object-store reads and writes: the S3 client, the write-once repository protocol, garbage collection.

The one package besides ``fulcrum.api`` that the model builder imports (``pyproject.toml``'s import-linter
contracts). Standard library only, so the operator image and the serving pods' download step stay small and
torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fulcrum.storage.config import ObjectURI, S3Config, StorageConfigError
from fulcrum.storage.repository import DirRepository, Published, RepositoryError, RepositoryStore, S3Repository
from fulcrum.storage.s3 import S3Client, S3Error

__all__ = [
    "DirRepository",
    "ObjectURI",
    "Published",
    "RepositoryError",
    "RepositoryStore",
    "S3Client",
    "S3Config",
    "S3Error",
    "S3Repository",
    "StorageConfigError",
    "is_object_uri",
    "open_repository",
]


def is_object_uri(text: str) -> bool:
    return text.startswith(("s3://", "gs://"))


def open_repository(location: str, env: Mapping[str, str] | None = None) -> S3Repository | DirRepository:
    """The repository store at ``location``: ``s3://bucket/prefix`` / ``gs://...`` (endpoint and credentials
    from the AWS_* environment) or a directory."""
    if is_object_uri(location):
        uri = ObjectURI.parse(location)
        return S3Repository(S3Client(S3Config.from_environment(env, scheme=uri.scheme)), uri)
    return DirRepository(Path(location))

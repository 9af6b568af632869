"""Where an object store is and who talks to it: URIs, endpoint, region and credentials from the environment.

The environment variables are the AWS SDKs' own, so a Secret written for any S3 tool works here too:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` (or
``AWS_DEFAULT_REGION``), ``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``) for an S3-compatible store such as
SeaweedFS, Ceph or a cloud's interoperability endpoint, and ``AWS_CA_BUNDLE`` for a private CA.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from fulcrum.storage.sigv4 import Credentials

DEFAULT_REGION = "us-east-1"
GCS_ENDPOINT = "https://storage.googleapis.com"
"""``gs://`` goes through Cloud Storage's S3-compatible XML API (HMAC keys as the access key pair)."""


class StorageConfigError(ValueError):
    """An object-store URI or setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class ObjectURI:
    """``s3://bucket/key`` (or ``gs://``): a bucket and a key (or key prefix, without leading slash)."""

    scheme: str
    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, text: str) -> ObjectURI:
        parsed = urlparse(text)
        if parsed.scheme not in ("s3", "gs"):
            raise StorageConfigError(f"{text!r} is not an object-store URI (s3://bucket/key or gs://bucket/key)")
        if not parsed.netloc:
            raise StorageConfigError(f"{text!r} has no bucket")
        if parsed.query or parsed.fragment:
            raise StorageConfigError(f"{text!r}: object URIs take no query or fragment")
        key = parsed.path.lstrip("/")
        if any(part in (".", "..") for part in key.split("/")):
            raise StorageConfigError(f"{text!r} must not contain '.' or '..' path segments")
        return cls(parsed.scheme, parsed.netloc, key)

    def child(self, *parts: str) -> ObjectURI:
        """The URI of ``parts`` below this one (joined with single slashes)."""
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return ObjectURI(self.scheme, self.bucket, key)

    @property
    def prefix(self) -> str:
        """The key as a "directory": empty or ending in ``/``."""
        return f"{self.key.rstrip('/')}/" if self.key else ""

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}" if self.key else f"{self.scheme}://{self.bucket}"


@dataclass(frozen=True)
class S3Config:
    """How to reach the store. ``endpoint`` None means AWS S3 itself (virtual-hosted-style addressing)."""

    endpoint: str | None = None
    region: str = DEFAULT_REGION
    credentials: Credentials | None = None  # None: anonymous (unsigned) requests
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        if self.endpoint is not None:
            parsed = urlparse(self.endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise StorageConfigError(
                    f"S3 endpoint {self.endpoint!r} must be an http:// or https:// URL (AWS_ENDPOINT_URL)"
                )

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, *, scheme: str = "s3") -> S3Config:
        env = os.environ if env is None else env
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        if scheme == "gs" and endpoint is None:
            endpoint, region = GCS_ENDPOINT, region or "auto"
        access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if bool(access) != bool(secret):
            missing = "AWS_SECRET_ACCESS_KEY" if access else "AWS_ACCESS_KEY_ID"
            raise StorageConfigError(f"object-store credentials are incomplete: {missing} is not set")
        credentials = Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or None) if access and secret else None
        return cls(
            endpoint=endpoint.rstrip("/") if endpoint else None,
            region=region or DEFAULT_REGION,
            credentials=credentials,
            ca_bundle=env.get("AWS_CA_BUNDLE") or None,
        )

    def describe(self) -> str:
        """For messages: where requests go and as whom (never the secret)."""
        who = f"access key {self.credentials.access_key}" if self.credentials else "no credentials"
        return f"{self.endpoint or 'AWS S3'} ({self.region}, {who})"

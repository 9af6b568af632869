"""Upload forms: a signed S3 POST policy that lets a build write under its own repository key and nowhere else.

The operator holds the credential that may write anywhere under the repository prefix; a build Job never gets
it. For each build it signs a form (``sign``) whose policy says: this bucket, keys starting with
``<prefix>/<content key>/``, files up to ``MAX_OBJECT_BYTES``, until ``expires``. The store checks every upload
against the policy (AWS S3, Cloud Storage's XML API, MinIO and SeaweedFS implement POST policies), so a form
cannot write another key, the bucket's root, another prefix or another key's marker, and stops working when it
expires. Pure: no I/O.

A form is a bearer capability like a credential: its ``repr`` hides the signed fields, and it travels only in a
Secret owned by the build Job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from fulcrum.storage import sigv4
from fulcrum.storage.config import ObjectURI, StorageConfigError

MAX_OBJECT_BYTES = 5 * 1024**3
"""The largest object one POST may write (S3's limit for a single upload): the largest file of a repository."""
DEFAULT_LIFETIME = 6 * 3600
"""How long a form works: longer than a build may take (the Job's activeDeadlineSeconds), short enough that a
form that leaked is soon worthless."""


@dataclass(frozen=True)
class UploadForm:
    """Permission to write objects whose key starts with ``prefix`` in ``bucket`` until ``expires`` (RFC 3339)."""

    bucket: str
    prefix: str
    expires: str
    fields: Mapping[str, str] = field(repr=False)

    def __repr__(self) -> str:
        return f"UploadForm(bucket={self.bucket!r}, prefix={self.prefix!r}, expires={self.expires!r}, fields=<hidden>)"

    def allows(self, key: str) -> bool:
        return key.startswith(self.prefix)

    def to_json(self) -> str:
        return json.dumps(
            {"bucket": self.bucket, "prefix": self.prefix, "expires": self.expires, "fields": dict(self.fields)},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> UploadForm:
        try:
            document = json.loads(text)
            fields = {str(k): str(v) for k, v in dict(document["fields"]).items()}
            form = cls(str(document["bucket"]), str(document["prefix"]), str(document["expires"]), fields)
        except (ValueError, KeyError, TypeError) as error:
            raise StorageConfigError(f"the upload form does not parse: {error}") from None  # never echo it
        missing = {"policy", "x-amz-signature", "x-amz-credential"} - set(form.fields)
        if missing:
            raise StorageConfigError(f"the upload form lacks {', '.join(sorted(missing))}")
        return form


def sign(
    credentials: sigv4.Credentials,
    root: ObjectURI,
    key: str,
    *,
    region: str,
    now: float | None = None,
    lifetime: float = DEFAULT_LIFETIME,
    max_bytes: int = MAX_OBJECT_BYTES,
) -> UploadForm:
    """A form for the objects under ``root``/``key``/ (``key``: one path segment, e.g. a content key)."""
    if not key or "/" in key or key in (".", ".."):
        raise StorageConfigError(f"upload form: {key!r} is not one key")
    now = time.time() if now is None else now
    expires_at = now + lifetime
    prefix = root.child(key).prefix
    fields = sigv4.post_policy_fields(
        credentials,
        bucket=root.bucket,
        key_prefix=prefix,
        expires_at=expires_at,
        now=now,
        region=region,
        max_bytes=max_bytes,
    )
    return UploadForm(root.bucket, prefix, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at)), fields)

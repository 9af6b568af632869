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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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


CONTENT_KEY_FIELD = "contentKey"
"""The fetch step's termination message when a build will publish: the content key it needs a form for."""


def content_key_message(key: str) -> str:
    return json.dumps({CONTENT_KEY_FIELD: key})


def content_key_of(message: str | None) -> str | None:
    """The content key a fetch step's termination message asks a form for; None for any other message."""
    if not message or CONTENT_KEY_FIELD not in message:
        return None
    try:
        document = json.loads(message)
    except ValueError:
        return None
    key = document.get(CONTENT_KEY_FIELD) if isinstance(document, dict) and len(document) == 1 else None
    return key if isinstance(key, str) and key and "/" not in key and key not in (".", "..") else None


def load(
    path: Path, *, wait: float, say: Callable[[str], None], sleep: Callable[[float], None] = time.sleep
) -> UploadForm:
    """The form in ``path`` (a Secret volume), waiting up to ``wait`` seconds for it to appear: the operator
    signs it once the fetch step has reported the content key, and the kubelet projects it a little later."""
    deadline = time.monotonic() + wait
    said = False
    while True:
        try:
            return UploadForm.from_json(path.read_text())
        except (FileNotFoundError, StorageConfigError) as error:
            if time.monotonic() >= deadline:
                raise StorageConfigError(
                    f"no usable upload form at {path} after {wait:.0f}s ({type(error).__name__}): the operator "
                    "signs one for each build that publishes; is it running with the repository's write keys?"
                ) from None
            if not said:
                say(f"waiting for the upload form at {path}")
                said = True
            sleep(2.0)

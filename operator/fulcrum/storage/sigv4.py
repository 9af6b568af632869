"""AWS Signature Version 4 for S3: the ``Authorization`` header of a request, and signed POST policies (the form
that lets its holder write under one key prefix only). Pure: no I/O, no clock.

The algorithm of https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html: a canonical
request (method, URI-encoded path, sorted query, signed headers, payload hash) is hashed into a string to
sign, which is signed with a key derived from the secret, the date, the region and the service.
``tests/unit/test_storage_sigv4.py`` checks it against the examples AWS publishes, and every integration test
checks it against the real SeaweedFS, which refuses a bad signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class Credentials:
    """An access key pair, with the session token of temporary credentials (STS) if any.

    ``repr`` never shows the secret or the token: credentials end up in exception messages and logs."""

    access_key: str
    secret_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, secret_key=<hidden>)"


def uri_encode(text: str, *, keep_slash: bool) -> str:
    """S3's URI encoding: every byte except unreserved characters (A-Z a-z 0-9 - _ . ~) is %XX-encoded."""
    return quote(text, safe="/~" if keep_slash else "~")


def canonical_query(params: Sequence[tuple[str, str]]) -> str:
    pairs = sorted((uri_encode(k, keep_slash=False), uri_encode(v, keep_slash=False)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def _trim(value: str) -> str:
    return " ".join(value.strip().split())


def canonical_request(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    payload_sha256: str,
) -> tuple[str, str]:
    """(canonical request, signed header names); ``path`` is the already URI-encoded absolute path."""
    lowered = {name.lower(): _trim(value) for name, value in headers.items()}
    names = sorted(lowered)
    header_block = "".join(f"{name}:{lowered[name]}\n" for name in names)
    signed = ";".join(names)
    request = "\n".join([method, path or "/", canonical_query(query), header_block, signed, payload_sha256])
    return request, signed


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def authorization(
    credentials: Credentials,
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    payload_sha256: str,
    amz_date: str,
    region: str,
    service: str = "s3",
) -> str:
    """The ``Authorization`` header value. ``headers`` must hold every header to sign, ``host`` and
    ``x-amz-date`` (= ``amz_date``, ``YYYYMMDDTHHMMSSZ``) and ``x-amz-content-sha256`` included."""
    request, signed = canonical_request(method, path, query, headers, payload_sha256)
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = signing_key(credentials.secret_key, date, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={credentials.access_key}/{scope},SignedHeaders={signed},Signature={signature}"


def sign_string(secret_key: str, date: str, region: str, string_to_sign: str, service: str = "s3") -> str:
    """Hex HMAC-SHA256 of ``string_to_sign`` with the key derived for ``date`` (``YYYYMMDD``) and ``region``."""
    key = signing_key(secret_key, date, region, service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def post_policy_fields(
    credentials: Credentials,
    *,
    bucket: str,
    key_prefix: str,
    expires_at: float,
    now: float,
    region: str,
    max_bytes: int,
) -> dict[str, str]:
    """The form fields of a signed S3 POST policy: whoever holds them may write objects whose key starts with
    ``key_prefix`` in ``bucket``, each at most ``max_bytes``, until ``expires_at`` (epoch seconds), and nothing else.

    https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html: the policy document is
    base64-encoded, and that base64 text is the string to sign. Every field the form will carry is a condition
    of the policy (AWS refuses a form field the policy does not name); the uploader adds ``key`` and the file."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    date = amz_date[:8]
    credential = f"{credentials.access_key}/{date}/{region}/s3/aws4_request"
    fields = {"x-amz-algorithm": ALGORITHM, "x-amz-credential": credential, "x-amz-date": amz_date}
    if credentials.session_token:
        fields["x-amz-security-token"] = credentials.session_token
    conditions: list[object] = [
        {"bucket": bucket},
        ["starts-with", "$key", key_prefix],
        ["content-length-range", 0, max_bytes],
        *({name: value} for name, value in fields.items()),
    ]
    expiration = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expires_at))
    document = json.dumps({"expiration": expiration, "conditions": conditions}, separators=(",", ":"))
    policy = base64.b64encode(document.encode()).decode()
    signature = sign_string(credentials.secret_key, date, region, policy)
    return {**fields, "policy": policy, "x-amz-signature": signature}

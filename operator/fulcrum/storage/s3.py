"""A small, synchronous S3 client: exactly the calls Fulcrum makes, over the standard library's ``http.client``.

Why not boto3: it and its data files weigh ~100 MB, and the operator image and the serving pods' download step
should stay small. This client signs with SigV4 (``fulcrum.storage.sigv4``), keeps one connection per thread,
streams downloads to disk while hashing them, uploads large files in parts, and retries what is transient
(connection errors, 429, 5xx, ``SlowDown``) with exponential backoff. Errors name the object and the store's
error code: ``s3://models/abc/published.json: AccessDenied (HTTP 403): Access Denied``.

Tested against the real SeaweedFS of the dev cluster (tests/integration/test_storage_s3.py); never against a mock.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import random
import secrets
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from fulcrum.storage import sigv4
from fulcrum.storage.config import ObjectURI, S3Config
from fulcrum.storage.form import UploadForm

log = logging.getLogger("fulcrum.storage")

PART_SIZE = 32 * 1024 * 1024
"""Files larger than this are uploaded in parts of this size (AWS allows 10 000 parts: files up to 320 GB)."""
CHUNK = 1024 * 1024
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed"}
)
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

T = TypeVar("T")


class S3Error(Exception):
    """A request the store refused or that could not reach it. ``str()`` names the object and the cause."""

    def __init__(
        self, operation: str, uri: str, *, status: int | None, code: str, message: str, transient: bool = False
    ) -> None:
        self.operation = operation
        self.uri = uri
        self.status = status
        self.code = code
        self.message = message
        self.transient = transient
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{operation} {uri}: {code} ({where}): {message}".rstrip(": "))


class AlreadyExistsError(S3Error):
    """A conditional write (``If-None-Match: *``) found the object already there."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str = ""
    last_modified: str = ""


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _amz_date(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def _xml(body: bytes) -> ET.Element:
    """Parse a response of the store. The standard library's expat (>= 2.4.1, as in Python 3.11) refuses entity
    expansion bombs, and only the store the operator was configured with answers here."""
    return ET.fromstring(body)  # noqa: S314


def _error_of(body: bytes) -> tuple[str, str]:
    """(Code, Message) of an S3 XML error body; empty when there is none."""
    try:
        root = _xml(body)
    except ET.ParseError:
        return "", body[:200].decode(errors="replace").strip()
    code = root.findtext("Code") or root.findtext(f"{_NS}Code") or ""
    message = root.findtext("Message") or root.findtext(f"{_NS}Message") or ""
    return code, message


_STATUS_CODES = {400: "BadRequest", 401: "Unauthorized", 403: "AccessDenied", 404: "NoSuchKey", 409: "Conflict"}


class S3Client:
    """Calls to one store. Thread-safe: each thread gets its own connection."""

    def __init__(
        self,
        config: S3Config,
        *,
        timeout: float = 60.0,
        attempts: int = 6,
        backoff: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        self._ssl = ssl.create_default_context(cafile=config.ca_bundle) if config.ca_bundle else None

    # --- addressing -------------------------------------------------------------------------------------------

    def _address(self, bucket: str, key: str) -> tuple[str, str, str]:
        """(scheme, host[:port], URI-encoded path) of an object or bucket."""
        encoded_key = sigv4.uri_encode(key, keep_slash=True)
        if self.config.endpoint is not None:
            parsed = urlparse(self.config.endpoint)
            base = parsed.path.rstrip("/")
            path = f"{base}/{bucket}" + (f"/{encoded_key}" if key else "")
            return parsed.scheme, parsed.netloc, path
        region = self.config.region
        if "." not in bucket and bucket.islower():
            return "https", f"{bucket}.s3.{region}.amazonaws.com", f"/{encoded_key}"
        return "https", f"s3.{region}.amazonaws.com", f"/{bucket}" + (f"/{encoded_key}" if key else "")

    def _connection(self, scheme: str, host: str) -> http.client.HTTPConnection:
        connections: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "connections", {}
        )
        conn = connections.get((scheme, host))
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, timeout=self.timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(host, timeout=self.timeout)
            connections[(scheme, host)] = conn
        return conn

    def _drop_connection(self, scheme: str, host: str) -> None:
        connections = self._local.__dict__.get("connections", {})
        conn = connections.pop((scheme, host), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self._local.__dict__.pop("connections", {}).values():
            conn.close()

    # --- one request, with retries ------------------------------------------------------------------------------

    def _headers(
        self,
        method: str,
        host: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]],
        extra: dict[str, str],
        payload: str,
    ) -> dict[str, str]:
        headers = {"host": host, "x-amz-date": _amz_date(self._clock()), "x-amz-content-sha256": payload}
        headers.update({k.lower(): v for k, v in extra.items()})
        credentials = self.config.credentials
        if credentials is not None:
            if credentials.session_token:
                headers["x-amz-security-token"] = credentials.session_token
            headers["authorization"] = sigv4.authorization(
                credentials,
                method=method,
                path=path,
                query=query,
                headers=headers,
                payload_sha256=payload,
                amz_date=headers["x-amz-date"],
                region=self.config.region,
            )
        headers["user-agent"] = "fulcrum-storage"
        return headers

    def _call(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str = "",
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        ok: Sequence[int] = (200,),
        consume: Callable[[http.client.HTTPResponse], T] | None = None,
        stream: Callable[[], Iterable[bytes]] | None = None,
        names: str | None = None,
    ) -> tuple[_Response, T | None]:
        """Send one request, retrying transient failures. ``consume`` reads a successful response's body
        (streaming); otherwise the body is read into ``_Response.body``. ``stream``: an unsigned request (a POST
        form carries its own signature) whose body each attempt reads afresh from ``stream()`` (``headers`` then
        give its content-length). ``names``: the object a message names, when not ``key``."""
        uri = names or str(ObjectURI("s3", bucket, key))
        scheme, host, path = self._address(bucket, key)
        target = path + ("?" + sigv4.canonical_query(query) if query else "")
        payload = hashlib.sha256(body).hexdigest() if body else sigv4.EMPTY_SHA256
        last: S3Error | None = None
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 - jitter
                log.info("retrying %s %s in %.1fs after: %s", operation, uri, delay, last)
                self._sleep(delay)
            try:
                conn = self._connection(scheme, host)
                if stream is not None:
                    unsigned = {"host": host, "user-agent": "fulcrum-storage", **(headers or {})}
                    conn.request(method, target, body=stream(), headers=unsigned)
                else:
                    conn.request(
                        method,
                        target,
                        body=body or None,
                        headers=self._headers(method, host, path, query=query, extra=headers or {}, payload=payload),
                    )
                response = conn.getresponse()
                if response.status in ok and method != "HEAD" and consume is not None:
                    value = consume(response)
                    return _Response(response.status, dict(response.getheaders()), b""), value
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                self._drop_connection(scheme, host)
                last = S3Error(
                    operation,
                    uri,
                    status=None,
                    code=type(error).__name__,
                    message=str(error) or "connection failed",
                    transient=True,
                )
                continue
            reply = _Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
            if response.status in ok:
                return reply, None
            code, message = _error_of(data) if data else ("", "")
            code = code or _STATUS_CODES.get(response.status, f"HTTP{response.status}")
            transient = response.status in RETRYABLE_STATUS or code in RETRYABLE_CODES
            kind = AlreadyExistsError if response.status == 412 or code == "ConditionalRequestConflict" else S3Error
            last = kind(
                operation,
                uri,
                status=response.status,
                code=code,
                message=message or response.reason,
                transient=transient,
            )
            if not transient:
                raise last
        assert last is not None
        raise last

    # --- the calls ----------------------------------------------------------------------------------------------

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's size and ETag, or None when it does not exist."""
        reply, _ = self._call("HeadObject", "HEAD", bucket, key, ok=(200, 404))
        if reply.status == 404:
            return None
        return ObjectInfo(
            key, int(reply.headers.get("content-length", "0")), reply.headers.get("etag", "").strip('"'),
            reply.headers.get("last-modified", ""),
        )  # fmt: skip

    def get_object(self, bucket: str, key: str, *, missing_ok: bool = False) -> bytes | None:
        """The whole object in memory (small objects: markers, manifests). None if missing and ``missing_ok``."""
        reply, _ = self._call("GetObject", "GET", bucket, key, ok=(200, 404) if missing_ok else (200,))
        if reply.status == 404:
            return None
        return reply.body

    def download(self, bucket: str, key: str, target: Path) -> tuple[int, str]:
        """Stream an object into ``target`` (atomically: a temporary file renamed at the end); (size, sha256)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")

        def consume(response: http.client.HTTPResponse) -> tuple[int, str]:
            digest = hashlib.sha256()
            size = 0
            with tmp.open("wb") as out:
                while block := response.read(CHUNK):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
            expected = response.getheader("content-length")
            if expected is not None and int(expected) != size:
                raise http.client.IncompleteRead(b"", int(expected) - size)
            return size, digest.hexdigest()

        try:
            _, result = self._call("GetObject", "GET", bucket, key, consume=consume)
            assert result is not None
            os.replace(tmp, target)
            return result
        finally:
            tmp.unlink(missing_ok=True)

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        if_none_match: bool = False,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Write an object. With ``if_none_match`` the write is refused (:class:`AlreadyExistsError`) when the
        object exists: write-once."""
        headers = {"content-type": content_type, "content-md5": base64.b64encode(hashlib.md5(body).digest()).decode()}  # noqa: S324 - S3's integrity header
        if if_none_match:
            headers["if-none-match"] = "*"
        self._call("PutObject", "PUT", bucket, key, headers=headers, body=body)

    def upload_file(self, bucket: str, key: str, path: Path, *, part_size: int = PART_SIZE) -> None:
        """Upload a file: one PUT up to ``part_size``, a multipart upload above (aborted if it fails)."""
        size = path.stat().st_size
        if size <= part_size:
            self.put_object(bucket, key, path.read_bytes())
            return
        reply, _ = self._call("CreateMultipartUpload", "POST", bucket, key, query=[("uploads", "")])
        created = _xml(reply.body)
        upload_id = created.findtext(f"{_NS}UploadId") or created.findtext("UploadId")
        if not upload_id:
            raise S3Error(
                "CreateMultipartUpload",
                str(ObjectURI("s3", bucket, key)),
                status=reply.status,
                code="NoUploadId",
                message="the store returned no UploadId",
            )
        try:
            etags: list[str] = []
            with path.open("rb") as handle:
                number = 1
                while block := handle.read(part_size):
                    part, _ = self._call(
                        "UploadPart", "PUT", bucket, key,
                        query=[("partNumber", str(number)), ("uploadId", upload_id)], body=block,
                        headers={"content-md5": base64.b64encode(hashlib.md5(block).digest()).decode()},  # noqa: S324
                    )  # fmt: skip
                    etags.append(part.headers.get("etag", ""))
                    number += 1
            document = "".join(
                f"<Part><PartNumber>{i}</PartNumber><ETag>{etag}</ETag></Part>" for i, etag in enumerate(etags, 1)
            )
            body = f"<CompleteMultipartUpload>{document}</CompleteMultipartUpload>".encode()
            done, _ = self._call(
                "CompleteMultipartUpload", "POST", bucket, key, query=[("uploadId", upload_id)], body=body
            )
            code, message = _error_of(done.body)
            if code:  # S3 may answer 200 with an error document
                raise S3Error(
                    "CompleteMultipartUpload",
                    str(ObjectURI("s3", bucket, key)),
                    status=done.status,
                    code=code,
                    message=message,
                )
        except BaseException:
            try:
                self._call(
                    "AbortMultipartUpload", "DELETE", bucket, key, query=[("uploadId", upload_id)], ok=(200, 204, 404)
                )
            except S3Error as error:
                log.warning("could not abort multipart upload of %s: %s", key, error)
            raise

    def post_object(self, form: UploadForm, key: str, source: Path | bytes) -> None:
        """Write an object through a signed POST form (``fulcrum.storage.form``), without any credential of
        this client: the store checks the key, the bucket, the size and the expiry against the form's policy.
        The file is streamed from disk (one request per object: at most the form's size limit, 5 GiB)."""
        boundary = f"fulcrum-{secrets.token_hex(16)}"
        parts = [("key", key), *form.fields.items()]
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n' for name, value in parts
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{key.rsplit("/", 1)[-1]}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = len(source) if isinstance(source, bytes) else source.stat().st_size

        def body() -> Iterator[bytes]:
            yield head.encode()
            if isinstance(source, bytes):
                yield source
            else:
                with source.open("rb") as handle:
                    while block := handle.read(CHUNK):
                        yield block
            yield tail

        headers = {
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(len(head.encode()) + size + len(tail)),
        }
        self._call(
            "PostObject", "POST", form.bucket, key="", headers=headers, ok=(200, 201, 204), stream=body,
            names=str(ObjectURI("s3", form.bucket, key)),
        )  # fmt: skip

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (ListObjectsV2, all pages)."""
        for objects, _ in self._list_pages(bucket, prefix, delimiter=None):
            yield from objects

    def list_prefixes(self, bucket: str, prefix: str = "") -> list[str]:
        """The "directories" directly under ``prefix`` (common prefixes with delimiter ``/``)."""
        out: list[str] = []
        for _, prefixes in self._list_pages(bucket, prefix, delimiter="/"):
            out += prefixes
        return out

    def _list_pages(
        self, bucket: str, prefix: str, delimiter: str | None
    ) -> Iterator[tuple[list[ObjectInfo], list[str]]]:
        token: str | None = None
        while True:
            query = [("list-type", "2"), ("prefix", prefix)]
            if delimiter:
                query.append(("delimiter", delimiter))
            if token:
                query.append(("continuation-token", token))
            reply, _ = self._call("ListObjectsV2", "GET", bucket, query=query)
            root = _xml(reply.body)
            objects = [
                ObjectInfo(
                    c.findtext(f"{_NS}Key") or "",
                    int(c.findtext(f"{_NS}Size") or 0),
                    (c.findtext(f"{_NS}ETag") or "").strip('"'),
                    c.findtext(f"{_NS}LastModified") or "",
                )
                for c in root.iter(f"{_NS}Contents")
            ]
            prefixes = [p.findtext(f"{_NS}Prefix") or "" for p in root.iter(f"{_NS}CommonPrefixes")]
            yield objects, prefixes
            token = root.findtext(f"{_NS}NextContinuationToken")
            if root.findtext(f"{_NS}IsTruncated") != "true" or not token:
                return

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> None:
        """Delete objects, 1000 per request (a missing object is not an error)."""
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            objects = "".join(f"<Object><Key>{_xml_escape(k)}</Key></Object>" for k in batch)
            body = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324 - required by DeleteObjects
            reply, _ = self._call(
                "DeleteObjects", "POST", bucket, query=[("delete", "")], body=body, headers={"content-md5": md5}
            )
            errors = list(_xml(reply.body).iter(f"{_NS}Error")) if reply.body else []
            if errors:
                first = errors[0]
                raise S3Error(
                    "DeleteObjects",
                    str(ObjectURI("s3", bucket, first.findtext(f"{_NS}Key") or "")),
                    status=reply.status,
                    code=first.findtext(f"{_NS}Code") or "DeleteFailed",
                    message=f"{first.findtext(f'{_NS}Message') or ''} ({len(errors)} of {len(batch)} objects)",
                )

    def create_bucket(self, bucket: str) -> bool:
        """Create a bucket; False when it already exists and is ours."""
        body = b""
        if self.config.endpoint is None and self.config.region != "us-east-1":
            body = (
                "<CreateBucketConfiguration><LocationConstraint>"
                f"{self.config.region}</LocationConstraint></CreateBucketConfiguration>"
            ).encode()
        try:
            self._call("CreateBucket", "PUT", bucket, body=body)
        except S3Error as error:
            if error.code == "BucketAlreadyOwnedByYou":
                return False
            raise
        return True


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

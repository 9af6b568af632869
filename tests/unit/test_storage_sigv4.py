"""SigV4 against the four worked examples of AWS's "Signature Calculations for the Authorization Header" page
(examplebucket, 2013-05-24); tests/integration/test_storage_s3.py checks it against a real SeaweedFS."""

from __future__ import annotations

import hashlib

import pytest

from fulcrum.storage import sigv4

CREDENTIALS = sigv4.Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
HOST = "examplebucket.s3.amazonaws.com"
DATE = "20130524T000000Z"


def headers(payload: str, **extra: str) -> dict[str, str]:
    return {"Host": HOST, "x-amz-date": DATE, "x-amz-content-sha256": payload, **extra}


@pytest.mark.parametrize(
    ("method", "path", "query", "extra", "body", "signed", "signature"),
    [
        (
            "GET", "/test.txt", [], {"Range": "bytes=0-9"}, b"",
            "host;range;x-amz-content-sha256;x-amz-date",
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        ),
        (
            "PUT", "/" + sigv4.uri_encode("test$file.text", keep_slash=True), [],
            {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
            b"Welcome to Amazon S3.",
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
        (
            "GET", "/", [("lifecycle", "")], {}, b"",
            "host;x-amz-content-sha256;x-amz-date",
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ),
        (
            "GET", "/", [("prefix", "J"), ("max-keys", "2")], {}, b"",
            "host;x-amz-content-sha256;x-amz-date",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ],
)  # fmt: skip
def test_aws_examples(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    extra: dict[str, str],
    body: bytes,
    signed: str,
    signature: str,
) -> None:
    payload = hashlib.sha256(body).hexdigest()
    header = sigv4.authorization(
        CREDENTIALS,
        method=method,
        path=path,
        query=query,
        headers=headers(payload, **extra),
        payload_sha256=payload,
        amz_date=DATE,
        region="us-east-1",
    )
    assert header == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={signed},Signature={signature}"
    )


def test_the_put_example_canonical_request_encodes_the_dollar() -> None:
    payload = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    request, _ = sigv4.canonical_request(
        "PUT", "/" + sigv4.uri_encode("test$file.text", keep_slash=True), [], headers(payload), payload
    )
    assert request.splitlines()[1] == "/test%24file.text"


@pytest.mark.parametrize(
    ("text", "keep_slash", "encoded"),
    [
        ("a b/c~d_e-f.g", True, "a%20b/c~d_e-f.g"),
        ("a/b", False, "a%2Fb"),
        ("é+=&", True, "%C3%A9%2B%3D%26"),
    ],
)
def test_uri_encoding_is_s3s(text: str, keep_slash: bool, encoded: str) -> None:
    assert sigv4.uri_encode(text, keep_slash=keep_slash) == encoded


def test_credentials_never_print_their_secret() -> None:
    shown = f"{CREDENTIALS!r} {CREDENTIALS}"
    assert "AKIAIOSFODNN7EXAMPLE" in shown
    assert CREDENTIALS.secret_key not in shown

"""Signed POST policies (upload forms): AWS's published example, and what a form for one key says.

tests/integration/test_storage_form.py checks the forms against the real SeaweedFS."""

from __future__ import annotations

import base64
import json

import pytest

from fulcrum.storage import form as form_mod
from fulcrum.storage import sigv4
from fulcrum.storage.config import ObjectURI, StorageConfigError

CREDENTIALS = sigv4.Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")

# "Example: Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)" in the S3 API Reference: the
# base64 of its policy document (CRLF line ends) is the string to sign; the page gives the signature.
AWS_EXAMPLE_POLICY = (
    "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJz"
    "aWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJw"
    "dWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6"
    "b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2Uv"
    "Il0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRp"
    "b24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRl"
    "bnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXot"
    "YWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9"
)
AWS_EXAMPLE_SIGNATURE = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
NOW = 1451347200.0  # 2015-12-29T00:00:00Z, the example's x-amz-date
KEY = "0123456789abcdef" * 4


def test_signs_the_aws_example_policy() -> None:
    assert b'"starts-with", "$key", "user/user1/"' in base64.b64decode(AWS_EXAMPLE_POLICY)
    signature = sigv4.sign_string(CREDENTIALS.secret_key, "20151229", "us-east-1", AWS_EXAMPLE_POLICY)
    assert signature == AWS_EXAMPLE_SIGNATURE


def test_a_form_names_one_key_of_one_bucket_until_it_expires() -> None:
    form = form_mod.sign(CREDENTIALS, ObjectURI("s3", "models", "team/repo"), KEY, region="eu-west-1", now=NOW)
    assert form.bucket == "models" and form.prefix == f"team/repo/{KEY}/"
    assert form.expires == "2015-12-29T06:00:00Z"
    fields = dict(form.fields)
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert policy["expiration"] == "2015-12-29T06:00:00.000Z"
    assert policy["conditions"] == [
        {"bucket": "models"},
        ["starts-with", "$key", f"team/repo/{KEY}/"],
        ["content-length-range", 0, form_mod.MAX_OBJECT_BYTES],
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/eu-west-1/s3/aws4_request"},
        {"x-amz-date": "20151229T000000Z"},
    ]
    assert fields["x-amz-signature"] == sigv4.sign_string(
        CREDENTIALS.secret_key, "20151229", "eu-west-1", fields["policy"]
    )
    assert CREDENTIALS.secret_key not in form.to_json()
    assert form.allows(f"team/repo/{KEY}/published.json")
    assert not form.allows(f"team/repo/{KEY}x/published.json") and not form.allows("team/repo/published.json")


def test_a_session_token_is_a_condition_and_a_field() -> None:
    temporary = sigv4.Credentials("ASIAEXAMPLE", "secret", "the-token")
    form = form_mod.sign(temporary, ObjectURI("s3", "models"), KEY, region="us-east-1", now=NOW)
    assert form.prefix == f"{KEY}/"
    assert form.fields["x-amz-security-token"] == "the-token"
    conditions = json.loads(base64.b64decode(form.fields["policy"]))["conditions"]
    assert {"x-amz-security-token": "the-token"} in conditions


def test_round_trips_and_never_shows_its_fields() -> None:
    form = form_mod.sign(CREDENTIALS, ObjectURI("s3", "models", "p"), KEY, region="us-east-1", now=NOW)
    assert form_mod.UploadForm.from_json(form.to_json()) == form
    assert form.fields["x-amz-signature"] not in repr(form) and form.fields["policy"] not in repr(form)


@pytest.mark.parametrize("text", ["", "{", '{"bucket": "b"}', '{"bucket":"b","prefix":"p/","expires":"x","fields":{}}'])
def test_a_bad_form_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(StorageConfigError) as error:
        form_mod.UploadForm.from_json(text)
    assert "upload form" in str(error.value)


@pytest.mark.parametrize("key", ["", "a/b", "..", "."])
def test_signs_for_one_key_only(key: str) -> None:
    with pytest.raises(StorageConfigError):
        form_mod.sign(CREDENTIALS, ObjectURI("s3", "models", "p"), key, region="us-east-1", now=NOW)

"""A build's upload form against the real SeaweedFS: with exactly what a build Job holds (the serving pods'
read-only keys and one signed form), it publishes its own key and can write nothing else.

One SeaweedFS serves the session (tests/support/objectstore.py); each test works under its own prefix.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest

from fulcrum.dev.objectstore import EXAMPLES_BUCKET, MODELS_BUCKET
from fulcrum.storage import ObjectURI, S3Error, S3Repository
from fulcrum.storage import form as form_mod
from fulcrum.storage.form import UploadForm
from fulcrum.storage.repository import MARKER, UPLOADS
from tests.support.objectstore import ObjectStore

pytestmark = pytest.mark.integration

KEY = "0123456789abcdef" * 4
OTHER = "fedcba9876543210" * 4


def signed(store: ObjectStore, root: ObjectURI, key: str = KEY, **options: float) -> UploadForm:
    """What the operator signs for a build: the writer's keys, never handed to the Job."""
    writer = store.client("writer").config
    assert writer.credentials is not None
    return form_mod.sign(writer.credentials, root, key, region=writer.region, **options)  # type: ignore[arg-type]


def tree(root: Path) -> Path:
    (root / "m" / "1").mkdir(parents=True)
    (root / "m" / "1" / "model.onnx").write_bytes(b"\x08\x07" * 5000)
    (root / "m" / "config.pbtxt").write_text('name: "m"\n')
    (root / "manifest.json").write_text("{}\n")
    return root


@pytest.fixture
def root() -> ObjectURI:
    return ObjectURI("s3", MODELS_BUCKET, f"test-{uuid.uuid4().hex[:8]}")


def refused(call: object) -> S3Error:
    assert callable(call)
    with pytest.raises(S3Error) as error:
        call()
    assert not error.value.transient
    return error.value


def test_a_build_publishes_its_own_key_with_read_keys_and_its_form(
    object_store: ObjectStore, root: ObjectURI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    form = signed(object_store, root)
    build = S3Repository(object_store.client("reader", attempts=1), root, form=form)
    caplog.set_level(logging.DEBUG)
    result = build.publish(KEY, tree(tmp_path / "built"))
    assert result.created
    assert {f.path for f in result.marker.files} == {"m/1/model.onnx", "m/config.pbtxt", "manifest.json"}

    serving = S3Repository(object_store.client("reader"), root)
    assert serving.published(KEY) == result.marker
    serving.pull(KEY, tmp_path / "pulled")
    assert (tmp_path / "pulled" / "m" / "1" / "model.onnx").read_bytes() == b"\x08\x07" * 5000

    again = S3Repository(object_store.client("reader", attempts=1), root, form=form).publish(KEY, tmp_path / "built")
    assert not again.created and again.marker == result.marker  # published once: never rewritten
    for secret in (form.fields["x-amz-signature"], form.fields["policy"]):
        assert secret not in caplog.text


def test_a_form_writes_nothing_outside_its_key(object_store: ObjectStore, root: ObjectURI, tmp_path: Path) -> None:
    form = signed(object_store, root)
    client = object_store.client("reader", attempts=1)  # the Job's own keys: read only
    admin = object_store.client("admin")
    admin.put_object(MODELS_BUCKET, root.child(OTHER, MARKER).key, b'{"other": "team"}')
    mine = root.child(KEY, UPLOADS, "u1", "model.onnx").key
    client.post_object(form, mine, b"mine")
    assert admin.get_object(MODELS_BUCKET, mine) == b"mine"

    outside = {
        "another key": root.child(OTHER, UPLOADS, "u1", "model.onnx").key,
        "another key's marker": root.child(OTHER, MARKER).key,
        "a key sharing the prefix": root.child(KEY + "0", MARKER).key,
        "the prefix itself": root.child(MARKER).key,
        "the bucket root": MARKER,
        "another prefix": f"elsewhere/{KEY}/{MARKER}",
    }
    for what, name in outside.items():
        error = refused(lambda name=name: client.post_object(form, name, b"evil"))
        assert (error.code, error.status) == ("AccessDenied", 403), what
        assert "Invalid according to Policy" in error.message, what
        assert name in str(error), what
    assert admin.get_object(MODELS_BUCKET, root.child(OTHER, MARKER).key) == b'{"other": "team"}'
    assert admin.head_object(MODELS_BUCKET, MARKER) is None

    escape = root.child(KEY).key + f"/../{OTHER}/{MARKER}"  # the store refuses dot segments outright
    assert refused(lambda: client.post_object(form, escape, b"evil")).code == "InvalidRequest"

    other_bucket = UploadForm(EXAMPLES_BUCKET, form.prefix, form.expires, form.fields)
    assert refused(lambda: client.post_object(other_bucket, mine, b"evil")).code == "AccessDenied"

    wider = signed(object_store, ObjectURI("s3", MODELS_BUCKET, ""), "x")  # a policy for another prefix...
    forged = UploadForm(
        MODELS_BUCKET, "", form.expires, {**wider.fields, "x-amz-signature": form.fields["x-amz-signature"]}
    )
    assert refused(lambda: client.post_object(forged, "x/evil", b"evil")).code == "SignatureDoesNotMatch"

    with pytest.raises(S3Error) as error:  # and the Job's own keys write nothing at all
        client.put_object(MODELS_BUCKET, root.child(KEY, MARKER).key, b"evil")
    assert error.value.code == "AccessDenied"
    assert {o.key for o in admin.list_objects(MODELS_BUCKET, root.prefix)} == {mine, root.child(OTHER, MARKER).key}


def test_an_expired_form_is_refused(object_store: ObjectStore, root: ObjectURI, tmp_path: Path) -> None:
    form = signed(object_store, root, now=time.time() - 120, lifetime=60)
    build = S3Repository(object_store.client("reader", attempts=1), root, form=form)
    with pytest.raises(S3Error) as error:
        build.publish(KEY, tree(tmp_path / "built"))
    assert (error.value.code, error.value.status) == ("AccessDenied", 403)
    assert "expired" in error.value.message
    assert form.fields["x-amz-signature"] not in str(error.value) and form.fields["policy"] not in str(error.value)
    assert not list(object_store.client("admin").list_objects(MODELS_BUCKET, root.prefix))

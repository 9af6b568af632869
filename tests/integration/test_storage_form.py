"""A build's upload form against the real SeaweedFS: with exactly what a build Job holds (the serving pods'
read-only keys and one signed form), it publishes its own key and can write nothing else.

One SeaweedFS serves the session (tests/support/objectstore.py); each test works under its own prefix.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
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
from tests.support.polling import wait_for

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

    # and the Job's own keys write nothing at all
    with pytest.raises(S3Error) as put:
        client.put_object(MODELS_BUCKET, root.child(KEY, MARKER).key, b"evil")
    assert put.value.code == "AccessDenied"
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


FORM_PUBLISHER = """
import sys
from pathlib import Path
from fulcrum.storage import S3Client, S3Config, S3Repository
from fulcrum.storage.config import ObjectURI
from fulcrum.storage.form import UploadForm
form = UploadForm.from_json(Path(sys.argv[1]).read_text())
client = S3Client(S3Config.from_environment())  # the Job's read-only keys, from the environment
S3Repository(client, ObjectURI.parse(sys.argv[2]), form=form).publish(sys.argv[3], Path(sys.argv[4]))
"""


def test_a_form_publisher_killed_mid_upload_leaves_no_key_and_the_jobs_next_pod_publishes(
    object_store: ObjectStore, root: ObjectURI, tmp_path: Path
) -> None:
    """What a build Job's pod does when it is killed while it posts its files: nothing is published, and the
    Job's next pod, which mounts the same form, publishes the key."""
    form = signed(object_store, root)
    form_file = tmp_path / "form.json"
    form_file.write_text(form.to_json())
    built = tmp_path / "built"
    (built / "m" / "1").mkdir(parents=True)
    for i in range(120):
        (built / "m" / "1" / f"part-{i:03d}.bin").write_bytes(os.urandom(128 * 1024))
    (built / "manifest.json").write_text("{}\n")

    def publisher() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", FORM_PUBLISHER, str(form_file), str(root), KEY, str(built)],
            env={**os.environ, **object_store.env("reader")},
            start_new_session=True,
        )

    admin = object_store.client("admin")
    uploads = root.child(KEY, UPLOADS).prefix
    serving = S3Repository(object_store.client("reader"), root)
    process = publisher()
    try:
        wait_for("the first posted object", lambda: any(admin.list_objects(MODELS_BUCKET, uploads)), 60, every=0.02)
        os.killpg(process.pid, signal.SIGSTOP)
        written = len(list(admin.list_objects(MODELS_BUCKET, uploads)))
        assert 0 < written < 121, written
        assert serving.published(KEY) is None  # a reader sees no key, not part of one
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert serving.published(KEY) is None
    [stale] = serving.uploads(KEY)

    again = publisher()  # the Job's next pod: the same form, a new upload, then the marker
    assert again.wait(120) == 0
    marker = serving.published(KEY)
    assert marker is not None and marker.upload != stale and len(marker.files) == 121
    serving.pull(KEY, tmp_path / "pulled")
    assert (tmp_path / "pulled" / "m/1/part-007.bin").read_bytes() == (built / "m/1/part-007.bin").read_bytes()

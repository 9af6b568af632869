"""The S3 client and the write-once repository protocol against the real SeaweedFS of the dev cluster.

One SeaweedFS serves the session (tests/support/objectstore.py); each test works under its own prefix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from fulcrum.dev.objectstore import EXAMPLES_BUCKET, MODELS_BUCKET
from fulcrum.storage import ObjectURI, RepositoryError, S3Error, S3Repository
from fulcrum.storage.repository import MARKER, UPLOADS, Published
from fulcrum.storage.s3 import AlreadyExistsError
from tests.support.objectstore import ObjectStore
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration

KEY = "0123456789abcdef" * 4


def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def repository(store: ObjectStore, who: str = "writer") -> S3Repository:
    return S3Repository(store.client(who), ObjectURI("s3", MODELS_BUCKET, prefix()))


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_objects_round_trip_with_streaming_and_multipart(object_store: ObjectStore, tmp_path: Path) -> None:
    client = object_store.client("writer")
    base = prefix()
    client.put_object(MODELS_BUCKET, f"{base}/small.txt", b"hello")
    assert client.get_object(MODELS_BUCKET, f"{base}/small.txt") == b"hello"
    head = client.head_object(MODELS_BUCKET, f"{base}/small.txt")
    assert head is not None and head.size == 5
    assert client.head_object(MODELS_BUCKET, f"{base}/absent") is None
    assert client.get_object(MODELS_BUCKET, f"{base}/absent", missing_ok=True) is None

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 2**20 + 123))
    client.upload_file(MODELS_BUCKET, f"{base}/dir/big.bin", big, part_size=5 * 2**20)  # three parts
    size, digest = client.download(MODELS_BUCKET, f"{base}/dir/big.bin", tmp_path / "back.bin")
    assert size == big.stat().st_size and (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    assert len(digest) == 64

    names = {o.key for o in client.list_objects(MODELS_BUCKET, f"{base}/")}
    assert names == {f"{base}/small.txt", f"{base}/dir/big.bin"}
    assert client.list_prefixes(MODELS_BUCKET, f"{base}/") == [f"{base}/dir/"]
    client.delete_objects(MODELS_BUCKET, sorted(names))
    assert not list(client.list_objects(MODELS_BUCKET, f"{base}/"))


def test_conditional_write_refuses_an_existing_object(object_store: ObjectStore) -> None:
    client = object_store.client("writer")
    key = f"{prefix()}/marker.json"
    client.put_object(MODELS_BUCKET, key, b"first", if_none_match=True)
    with pytest.raises(AlreadyExistsError):
        client.put_object(MODELS_BUCKET, key, b"second", if_none_match=True)
    assert client.get_object(MODELS_BUCKET, key) == b"first"


def test_errors_name_the_bucket_and_the_stores_code(object_store: ObjectStore) -> None:
    wrong_secret = {**object_store.env("writer"), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    from fulcrum.storage import S3Client, S3Config

    client = S3Client(S3Config.from_environment(wrong_secret), attempts=1)
    with pytest.raises(S3Error) as error:
        client.get_object(MODELS_BUCKET, "anything")
    assert error.value.code == "SignatureDoesNotMatch" and not error.value.transient
    assert f"s3://{MODELS_BUCKET}/anything" in str(error.value)

    unknown = {**object_store.env("writer"), "AWS_ACCESS_KEY_ID": "NOSUCHKEY"}
    with pytest.raises(S3Error) as error:
        S3Client(S3Config.from_environment(unknown), attempts=1).get_object(MODELS_BUCKET, "anything")
    assert error.value.code == "InvalidAccessKeyId"
    assert wrong_secret["AWS_SECRET_ACCESS_KEY"] not in str(error.value)


def test_identities_can_do_only_their_part(object_store: ObjectStore) -> None:
    """Serving pods' (and build Jobs') keys only read; the write keys write the models and only read the examples."""
    key = f"{prefix()}/x"
    reader, writer = object_store.client("reader", attempts=1), object_store.client("writer", attempts=1)
    with pytest.raises(S3Error) as error:
        reader.put_object(MODELS_BUCKET, key, b"x")
    assert error.value.code == "AccessDenied"
    writer.put_object(MODELS_BUCKET, key, b"x")
    assert reader.get_object(MODELS_BUCKET, key) == b"x"
    with pytest.raises(S3Error) as error:
        writer.put_object(EXAMPLES_BUCKET, key, b"x")
    assert error.value.code == "AccessDenied"
    assert writer.head_object(EXAMPLES_BUCKET, "ctr-ranker/model.pt2") is not None  # seeded by `up`


def test_without_keys_nothing_is_read_or_written(object_store: ObjectStore) -> None:
    """What a build step (the model's code: no Secret, no storage volume) could do to the store: nothing."""
    key = f"{prefix()}/x"
    object_store.client("writer").put_object(MODELS_BUCKET, key, b"published")
    endpoint = object_store.config.endpoint
    for method, bucket, data in (
        ("PUT", MODELS_BUCKET, b"x"),
        ("GET", MODELS_BUCKET, None),
        ("GET", EXAMPLES_BUCKET, None),
    ):
        request = urllib.request.Request(f"{endpoint}/{bucket}/{key}", data=data, method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403, (method, bucket)
    assert object_store.client("reader").get_object(MODELS_BUCKET, key) == b"published"


def test_unreachable_store_is_transient_and_retried(object_store: ObjectStore) -> None:
    env = {**object_store.env("writer"), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # discard port: refused
    from fulcrum.storage import S3Client, S3Config

    slept: list[float] = []
    client = S3Client(S3Config.from_environment(env), attempts=3, sleep=slept.append)
    with pytest.raises(S3Error) as error:
        client.head_object(MODELS_BUCKET, "x")
    assert error.value.transient and error.value.status is None
    # backed off exponentially: 0.25 s, then 0.5 s, each with +-50 % jitter
    assert len(slept) == 2 and 0.125 <= slept[0] <= 0.375 and 0.25 <= slept[1] <= 0.75, slept


def test_publish_then_pull_verifies_every_file(object_store: ObjectStore, tmp_path: Path) -> None:
    repo = repository(object_store)
    built = tree(
        tmp_path / "built",
        {"manifest.json": b"{}", "fp32/config.pbtxt": b"name: 'fp32'", "fp32/1/model.onnx": os.urandom(4096)},
    )
    assert repo.published(KEY) is None
    first = repo.publish(KEY, built)
    assert first.created and {f.path for f in first.marker.files} == {
        "manifest.json",
        "fp32/config.pbtxt",
        "fp32/1/model.onnx",
    }

    reader = S3Repository(object_store.client("reader"), repo.base)
    marker = reader.pull(KEY, tmp_path / "pulled")
    for rel in ("manifest.json", "fp32/config.pbtxt", "fp32/1/model.onnx"):
        assert (tmp_path / "pulled" / rel).read_bytes() == (built / rel).read_bytes()
    assert Published.from_json((tmp_path / "pulled" / MARKER).read_bytes(), KEY) == marker

    reader.pull(KEY, tmp_path / "top-level-only", only={"other-model"})
    assert sorted(p.name for p in (tmp_path / "top-level-only").iterdir()) == ["manifest.json", MARKER]


def test_a_published_key_is_never_overwritten(object_store: ObjectStore, tmp_path: Path) -> None:
    repo = repository(object_store)
    first = repo.publish(KEY, tree(tmp_path / "a", {"manifest.json": b"first"}))
    second = repo.publish(KEY, tree(tmp_path / "b", {"manifest.json": b"second", "extra": b"x"}))
    assert not second.created and second.marker == first.marker
    assert repo.read_file(KEY, first.marker, "manifest.json") == b"first"
    assert repo.uploads(KEY) == [first.marker.upload]  # the second publish wrote nothing


def test_a_tampered_file_fails_the_pull(object_store: ObjectStore, tmp_path: Path) -> None:
    repo = repository(object_store)
    marker = repo.publish(KEY, tree(tmp_path / "a", {"m.bin": b"original"})).marker
    admin = object_store.client("admin")
    admin.put_object(MODELS_BUCKET, repo.base.child(KEY, UPLOADS, marker.upload, "m.bin").key, b"tampered")
    with pytest.raises(RepositoryError, match="expected 8 bytes"):
        repo.pull(KEY, tmp_path / "pulled")
    assert not (tmp_path / "pulled").exists()


def test_publish_writes_only_under_its_key(object_store: ObjectStore, tmp_path: Path) -> None:
    """Whatever a build leaves in its output, publishing writes under <root>/<key>/ and nowhere else."""
    repo = repository(object_store)
    secret = tmp_path / "credentials"
    secret.write_text("AWS_SECRET_ACCESS_KEY=...")
    built = tree(tmp_path / "built", {"fp32/1/model.onnx": b"onnx"})
    (built / "fp32" / "leak").symlink_to(secret)
    with pytest.raises(RepositoryError, match="symbolic link"):
        repo.publish(KEY, built)
    (built / "fp32" / "leak").unlink()
    (built / "..dots..").write_bytes(b"a name with dots is a file, not a way out")
    repo.publish(KEY, built)
    admin = object_store.client("admin")
    everything = [o.key for o in admin.list_objects(MODELS_BUCKET, repo.base.prefix)]
    assert everything and all(k.startswith(f"{repo.base.prefix}{KEY}/") for k in everything)
    with pytest.raises(RepositoryError):
        repo.publish("../other", built)


PUBLISHER = """
import sys
from pathlib import Path
from fulcrum.storage import open_repository
open_repository(sys.argv[1]).publish(sys.argv[2], Path(sys.argv[3]))
"""


def test_a_publisher_killed_mid_upload_leaves_no_key_and_the_next_one_publishes(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    repo = repository(object_store)
    built = tree(tmp_path / "built", {f"fp32/1/part-{i:03d}.bin": os.urandom(256 * 1024) for i in range(120)})
    process = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, repo.root, KEY, str(built)],
        env={**os.environ, **object_store.env("writer")},
        start_new_session=True,
    )
    try:
        admin = object_store.client("admin")
        uploads = repo.base.child(KEY, UPLOADS).prefix
        wait_for(
            "the first uploaded object", lambda: any(admin.list_objects(MODELS_BUCKET, uploads)), timeout=60, every=0.02
        )
        os.killpg(process.pid, signal.SIGSTOP)
        written = len(list(admin.list_objects(MODELS_BUCKET, uploads)))
        assert 0 < written < 120, written
        assert repo.published(KEY) is None  # a reader sees no key, not part of one
        with pytest.raises(RepositoryError, match="not published"):
            S3Repository(object_store.client("reader"), repo.base).pull(KEY, tmp_path / "pulled")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert repo.published(KEY) is None
    [stale] = repo.uploads(KEY)
    [unfinished] = repo.stored_keys()
    assert (unfinished.key, unfinished.published_at, unfinished.stale_uploads) == (KEY, None, 1)

    again = repo.publish(KEY, built)  # the build is redone: a new upload, then the marker
    assert again.created and again.marker.upload != stale
    assert len(again.marker.files) == 120
    assert repo.delete_stale_uploads(KEY) == [stale]
    assert repo.uploads(KEY) == [again.marker.upload]
    S3Repository(object_store.client("reader"), repo.base).pull(KEY, tmp_path / "pulled")
    assert (tmp_path / "pulled" / "fp32/1/part-000.bin").read_bytes() == (built / "fp32/1/part-000.bin").read_bytes()


def test_stored_keys_and_delete(object_store: ObjectStore, tmp_path: Path) -> None:
    repo = repository(object_store)
    repo.publish(KEY, tree(tmp_path / "a", {"x": b"1"}))
    other = "f" * 64
    object_store.client("writer").put_object(MODELS_BUCKET, repo.base.child(other, UPLOADS, "u1", "x").key, b"1")
    stored = {s.key: s for s in repo.stored_keys()}
    assert set(stored) == {KEY, other}
    assert stored[KEY].published_at and stored[other].published_at is None and stored[other].last_modified
    repo.delete(KEY)
    assert repo.published(KEY) is None and [k.key for k in repo.stored_keys()] == [other]
    assert not list(object_store.client("admin").list_objects(MODELS_BUCKET, repo.base.child(KEY).prefix))


def test_marker_is_the_documented_json(object_store: ObjectStore, tmp_path: Path) -> None:
    repo = repository(object_store)
    marker = repo.publish(KEY, tree(tmp_path / "a", {"manifest.json": b"{}"})).marker
    raw = object_store.client("reader").get_object(MODELS_BUCKET, repo.base.child(KEY, MARKER).key)
    assert raw is not None
    document = json.loads(raw)
    assert document["key"] == KEY and document["upload"] == marker.upload and document["format"] == 1
    assert document["files"] == [{"path": "manifest.json", "size": 2, "sha256": marker.files[0].sha256}]
    assert time.strptime(document["publishedAt"], "%Y-%m-%dT%H:%M:%SZ")

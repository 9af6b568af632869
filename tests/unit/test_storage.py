"""Pure parts of fulcrum.storage: URIs, configuration from the environment, repository names, GC planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fulcrum.storage import ObjectURI, RepositoryError, S3Config, StorageConfigError
from fulcrum.storage.gc import RecordInfo, StoredKey, format_time, plan_gc
from fulcrum.storage.repository import DirRepository, check_path, walk_files
from fulcrum.storage.s3 import S3Client

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "bucket", "key"),
    [("s3://models", "models", ""), ("s3://models/a/b/", "models", "a/b/"), ("gs://b/x", "b", "x")],
)
def test_object_uris(text: str, bucket: str, key: str) -> None:
    uri = ObjectURI.parse(text)
    assert (uri.bucket, uri.key) == (bucket, key)
    assert str(uri.child("k", "f.json")).endswith("/k/f.json")


@pytest.mark.parametrize("text", ["https://x/y", "s3:///key", "s3://b/../x", "s3://b/k?versionId=1"])
def test_bad_object_uris_are_refused(text: str) -> None:
    with pytest.raises(StorageConfigError):
        ObjectURI.parse(text)


def test_config_from_the_aws_environment() -> None:
    config = S3Config.from_environment(
        {
            "AWS_ENDPOINT_URL": "http://10.0.0.1:8333/",
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "AK",
            "AWS_SECRET_ACCESS_KEY": "SK",
        }
    )
    assert config.endpoint == "http://10.0.0.1:8333" and config.region == "eu-west-1"
    assert config.credentials is not None and config.credentials.access_key == "AK"
    assert "SK" not in config.describe() and "AK" in config.describe()
    assert (
        S3Config.from_environment({"AWS_ENDPOINT_URL_S3": "https://a", "AWS_ENDPOINT_URL": "https://b"}).endpoint
        == "https://a"
    )
    assert S3Config.from_environment({}).credentials is None  # anonymous, or the pod's identity
    assert S3Config.from_environment({}, scheme="gs").endpoint == "https://storage.googleapis.com"
    with pytest.raises(StorageConfigError, match="AWS_SECRET_ACCESS_KEY"):
        S3Config.from_environment({"AWS_ACCESS_KEY_ID": "AK"})
    with pytest.raises(StorageConfigError, match="http"):
        S3Config.from_environment({"AWS_ENDPOINT_URL": "ftp://x"})


def test_addressing_path_style_for_endpoints_virtual_hosted_for_aws() -> None:
    custom = S3Client(S3Config(endpoint="http://10.0.0.1:8333"))
    assert custom._address("models", "a b/c") == ("http", "10.0.0.1:8333", "/models/a%20b/c")
    aws = S3Client(S3Config(region="eu-west-1"))
    assert aws._address("models", "k") == ("https", "models.s3.eu-west-1.amazonaws.com", "/k")
    assert aws._address("my.dotted.bucket", "k") == ("https", "s3.eu-west-1.amazonaws.com", "/my.dotted.bucket/k")


@pytest.mark.parametrize("rel", ["fp32/1/model.onnx", "manifest.json", ".fulcrum-build.json", "a/b_c-d+e=f@g,h"])
def test_publishable_names(rel: str) -> None:
    assert check_path(rel) == rel


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/abs", "a/./b", "sp ace", "new\nline", ""])
def test_unpublishable_names(rel: str) -> None:
    with pytest.raises(RepositoryError):
        check_path(rel)


def test_walk_refuses_symlinks_and_dir_repository_is_write_once(tmp_path: Path) -> None:
    built = tmp_path / "built"
    (built / "m" / "1").mkdir(parents=True)
    (built / "m" / "1" / "model.onnx").write_bytes(b"x")
    (built / "m" / "config.pbtxt").write_text("name: 'm'")
    assert [rel for rel, _ in walk_files(built)] == ["m/1/model.onnx", "m/config.pbtxt"]
    (built / "link").symlink_to("/etc/passwd")
    with pytest.raises(RepositoryError, match="symbolic link"):
        list(walk_files(built))
    (built / "link").unlink()

    repo = DirRepository(tmp_path / "models")
    key = "ab" * 32
    first = repo.publish(key, built)
    assert first.created and (tmp_path / "models" / key / "m" / "config.pbtxt").is_file()
    (built / "m" / "config.pbtxt").write_text("changed")
    second = repo.publish(key, built)
    assert not second.created and second.marker == first.marker
    assert (tmp_path / "models" / key / "m" / "config.pbtxt").read_text() == "name: 'm'"
    assert repo.all_keys() == [key] and not list((tmp_path / "models" / ".uploads").iterdir())


def record(name: str, key: str, repository: str | None = None, since: datetime | None = None) -> RecordInfo:
    return RecordInfo("builds", name, key, repository, format_time(since) if since else None)


def test_gc_marks_unused_records_and_deletes_them_after_the_retention() -> None:
    used = record("used", "k-used", "r-used")
    fresh = record("fresh", "k-fresh", "r-fresh")
    waiting = record("waiting", "k-waiting", "r-waiting", since=NOW - DAY)
    expired = record("expired", "k-expired", "r-expired", since=NOW - 8 * DAY)
    back = record("back", "k-back", "r-back", since=NOW - 9 * DAY)
    plan = plan_gc(
        records=[used, fresh, waiting, expired, back],
        builds_in_use={"k-used", "k-back"},
        repositories_in_use=set(),
        stored=[
            StoredKey(r, format_time(NOW - 30 * DAY)) for r in ("r-used", "r-fresh", "r-waiting", "r-expired", "r-back")
        ],
        now=NOW,
        retention=7 * DAY,
    )
    assert plan.mark == [fresh]
    assert plan.unmark == [back]
    assert plan.delete_records == [expired]
    assert plan.delete_keys == ["r-expired"]


def test_gc_keeps_what_serves_what_another_record_uses_and_what_was_just_published() -> None:
    plan = plan_gc(
        records=[
            record("old", "k-old", "shared", since=NOW - 30 * DAY),
            record("new", "k-new", "shared"),  # another namespace's record of the same bytes
        ],
        builds_in_use={"k-new"},
        repositories_in_use={"serving"},
        stored=[
            StoredKey("shared", format_time(NOW - 30 * DAY)),
            StoredKey("serving", format_time(NOW - 30 * DAY)),
            StoredKey("orphan-old", format_time(NOW - 30 * DAY)),
            StoredKey("orphan-new", format_time(NOW - timedelta(minutes=1))),  # its record is on its way
            StoredKey("unfinished-old", None, format_time(NOW - 30 * DAY)),
            StoredKey("unfinished-new", None, format_time(NOW - timedelta(hours=1))),
        ],
        now=NOW,
        retention=7 * DAY,
    )
    assert [r.name for r in plan.delete_records] == ["old"]
    assert sorted(plan.delete_keys) == ["orphan-old", "unfinished-old"]


def test_gc_retention_zero_keeps_everything_but_still_cleans_dead_uploads() -> None:
    plan = plan_gc(
        records=[record("r", "k", "x", since=NOW - 365 * DAY)],
        builds_in_use=set(),
        repositories_in_use=set(),
        stored=[
            StoredKey("x", format_time(NOW - 365 * DAY), None, stale_uploads=2),
            StoredKey("y", format_time(NOW - 365 * DAY)),
        ],
        now=NOW,
        retention=timedelta(0),
    )
    assert not plan.delete_records and not plan.delete_keys
    assert plan.clean_uploads == ["x"]


def test_gc_releases_a_content_key_only_with_its_last_record_for_storage_it_cannot_list() -> None:
    """A claim or node directory is not listed: the repository of a deleted record goes when nothing else (a record
    in use, one still waiting, a Triton server) refers to its content key."""
    plan = plan_gc(
        records=[
            record("a", "k-a", "alone", since=NOW - 30 * DAY),
            record("b", "k-b", "shared", since=NOW - 30 * DAY),
            record("c", "k-c", "shared"),  # in use: keeps the bytes it shares with b
            record("d", "k-d", "waiting", since=NOW - 30 * DAY),
            record("e", "k-e", "waiting", since=NOW - DAY),  # unused, within the retention: keeps them too
            record("f", "k-f", "served", since=NOW - 30 * DAY),
            record("g", "k-g", None, since=NOW - 30 * DAY),  # a failed build published nothing
        ],
        builds_in_use={"k-c"},
        repositories_in_use={"served"},
        now=NOW,
        retention=7 * DAY,
    )
    assert [r.name for r in plan.delete_records] == ["a", "b", "d", "f", "g"]
    assert plan.released_keys == ["alone"]
    assert not plan.delete_keys  # nothing listed

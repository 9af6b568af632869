"""Model sources from the real SeaweedFS, and the build Job's three steps (fetch, build, publish) run as the Job
runs them: separate processes, credentials only in the first and the last.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from fulcrum.controller.uploads import UploadSigner
from fulcrum.dev.objectstore import EXAMPLES_BUCKET, MODELS_BUCKET
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
from fulcrum.storage import ObjectURI, S3Repository
from fulcrum.storage.form import content_key_of
from model_repo_builder.sources import SourceError, fetch
from model_repo_builder.termination import unpacked
from tests.support.objectstore import ObjectStore
from tests.support.tiny_model import tiny_manifest, write_tiny_onnx

pytestmark = pytest.mark.integration

EXAMPLE_MODEL = Path(__file__).resolve().parents[2] / "examples" / "ctr-ranker" / "model.pt2"


def test_an_s3_source_is_fetched_and_verified(
    object_store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in object_store.env("writer").items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{EXAMPLES_BUCKET}/ctr-ranker/model.pt2"  # seeded from the checkout by the store's start
    digest = hashlib.sha256(EXAMPLE_MODEL.read_bytes()).hexdigest()
    path, got = fetch(
        uri, base_dir=tmp_path, cache_dir=tmp_path / "cache", expected_sha256=digest, relative_files=False
    )
    assert got == digest and path.read_bytes() == EXAMPLE_MODEL.read_bytes()
    with pytest.raises(SourceError, match="sha256 mismatch"):
        fetch(uri, base_dir=tmp_path, cache_dir=tmp_path / "other", expected_sha256="0" * 64, relative_files=False)
    with pytest.raises(SourceError) as missing:
        fetch(f"s3://{EXAMPLES_BUCKET}/nope.pt2", base_dir=tmp_path, cache_dir=tmp_path / "c", field="model.source.uri")
    assert "model.source.uri" in str(missing.value) and "NoSuchKey" in str(missing.value)


def test_wrong_credentials_name_the_bucket_and_the_error(
    object_store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = object_store.env("writer")
    for name, value in {**env, "AWS_SECRET_ACCESS_KEY": "wrong"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SourceError) as error:
        fetch(
            f"s3://{EXAMPLES_BUCKET}/ctr-ranker/model.pt2",
            base_dir=tmp_path,
            cache_dir=tmp_path,
            field="model.source.uri",
        )
    message = str(error.value)
    assert f"bucket '{EXAMPLES_BUCKET}'" in message and "SignatureDoesNotMatch" in message
    assert "wrong" not in message and not error.value.transient
    assert env["AWS_ACCESS_KEY_ID"] in message  # which key was refused, never its secret


def test_an_unreachable_store_is_a_transient_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: refused
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    with pytest.raises(SourceError) as error:
        fetch("s3://models/m.onnx", base_dir=tmp_path, cache_dir=tmp_path)
    assert error.value.transient and "ConnectionRefusedError" in str(error.value)


def run(step: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "model_repo_builder", step, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_jobs_three_steps_publish_once_and_reuse(object_store: ObjectStore, tmp_path: Path) -> None:
    """fetch (read keys) -> build (none) -> publish (read keys and the form the operator signed for the key the
    fetch step reported), then the same spec again: found, reused. The form shows in no output."""
    admin = object_store.client("admin")
    model = write_tiny_onnx(tmp_path / "tiny.onnx")
    source_key = f"sources/{uuid.uuid4().hex[:8]}/tiny.onnx"
    admin.upload_file(MODELS_BUCKET, source_key, model)
    root = ObjectURI("s3", MODELS_BUCKET, f"steps-{uuid.uuid4().hex[:8]}")
    spec = yaml.safe_dump(tiny_manifest("tiny", f"s3://{MODELS_BUCKET}/{source_key}"))
    reader = object_store.env("reader")
    signer = UploadSigner.from_environment(
        OperatorSettings(storage=RepositoryStorage.parse(str(root))), object_store.env("writer")
    )
    assert signer is not None

    def job(workdir: Path) -> dict[str, object]:
        inputs, out, form_file = workdir / "inputs", workdir / "out", workdir / "form.json"
        fetched = run(
            "fetch", "--spec-env", "FULCRUM_SPEC", "--inputs", str(inputs), "--repository", str(root),
            "--target", "local", "--platform", '{"nodePool":"local"}', "--no-relative-files",
            "--termination-message", str(workdir / "fetch-result"),
            env={**reader, "FULCRUM_SPEC": spec},
        )  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        requested = (
            content_key_of((workdir / "fetch-result").read_text()) if (workdir / "fetch-result").exists() else None
        )
        secrets: list[str] = []
        if requested is not None:  # what the operator does: sign a form for exactly that key
            form = signer.sign(requested)
            form_file.write_text(form.to_json())
            secrets = [form.fields["policy"], form.fields["x-amz-signature"]]
        # the build runs without any credential in its environment
        built = run(
            "build", "--spec", str(inputs / "modeldeployment.yaml"), "--inputs", str(inputs), "--out",
            str(out / "repository"), "--target", "local", "--no-profile",
            "--termination-message", str(workdir / "build-result"),
            env={"FULCRUM_CACHE_DIR": str(workdir / "cache")},
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
        published = run(
            "publish", "--inputs", str(inputs), "--built", str(out / "repository"), "--repository", str(root),
            "--upload-form", str(form_file), "--upload-form-wait", "5",
            "--termination-message", str(workdir / "result"),
            env=reader,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
        said = published.stdout + published.stderr + fetched.stdout + fetched.stderr + (workdir / "result").read_text()
        assert not [s for s in secrets if s in said]
        return json.loads(unpacked((workdir / "result").read_text()))  # type: ignore[no-any-return]

    first = job(tmp_path / "first")
    key = str(first["key"])
    assert content_key_of((tmp_path / "first" / "fetch-result").read_text()) == key
    assert first["repository"] == str(root.child(key)) and first["reused"] is False
    assert first["manifest"]["tiers"][0]["state"] == "Ready"  # type: ignore[index]
    repo = S3Repository(object_store.client("reader"), root)
    marker = repo.published(key)
    assert marker is not None and {"manifest.json", "fp32/config.pbtxt"} <= {f.path for f in marker.files}

    second = job(tmp_path / "second")  # another namespace's build of the same bytes
    assert (second["key"], second["repository"], second["reused"]) == (key, first["repository"], True)
    assert not (tmp_path / "second" / "out" / "repository").exists()  # nothing was built
    assert not (tmp_path / "second" / "form.json").exists()  # no form asked for: nothing to write
    assert repo.uploads(key) == [marker.upload]  # nothing was written


def test_a_source_that_cannot_be_read_ends_the_build_with_its_reason(object_store: ObjectStore, tmp_path: Path) -> None:
    spec = yaml.safe_dump(tiny_manifest("tiny", f"s3://{EXAMPLES_BUCKET}/does/not/exist.onnx"))
    inputs = tmp_path / "inputs"
    fetched = run(
        "fetch", "--spec-env", "FULCRUM_SPEC", "--inputs", str(inputs), "--repository", f"s3://{MODELS_BUCKET}/x",
        env={**object_store.env("writer"), "FULCRUM_SPEC": spec},
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr  # a result, not a crash: the next steps pass it on
    published = run(
        "publish", "--inputs", str(inputs), "--built", str(tmp_path / "none"), "--repository", f"s3://{MODELS_BUCKET}/x",
        "--termination-message", str(tmp_path / "result"), env={},
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    error = json.loads((tmp_path / "result").read_text())["error"]
    assert error["reason"] == "SourceFailed"
    assert f"bucket '{EXAMPLES_BUCKET}'" in error["message"] and "NoSuchKey" in error["message"]


def test_an_unreachable_store_makes_the_fetch_step_ask_for_a_retry(tmp_path: Path) -> None:
    spec = yaml.safe_dump(tiny_manifest("tiny", "s3://models/tiny.onnx"))
    fetched = run(
        "fetch", "--spec-env", "FULCRUM_SPEC", "--inputs", str(tmp_path / "inputs"), "--repository", "s3://models/x",
        "--termination-message", str(tmp_path / "result"),
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK",
             "FULCRUM_SPEC": spec},
    )  # fmt: skip
    assert fetched.returncode == 3, fetched.stderr  # the Job starts another pod (backoffLimit)
    assert json.loads((tmp_path / "result").read_text())["error"]["reason"] == "SourceUnreachable"

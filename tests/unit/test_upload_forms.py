"""Build Jobs that publish through an upload form: what each step holds, the form's Secret, how the operator
finds the key to sign for, and that the fetch step's request is never taken for the build's result."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from fulcrum.controller.reconciler import termination_message
from fulcrum.controller.uploads import UploadSigner, reported_content_key
from fulcrum.resources import labels
from fulcrum.resources.build import UPLOAD_FORM_FILE, build_job, upload_form_secret, upload_form_secret_name
from fulcrum.resources.common import Manifest
from fulcrum.resources.labels import upload_form_name
from fulcrum.resources.storage import builds_in_own_namespace, signs_uploads
from fulcrum.storage.form import UploadForm, content_key_message, content_key_of
from tests.support.manifest_cases import BASE
from tests.unit.test_resources import IMAGE, S3, SETTINGS, _md, containers, mounts

KEY = "ab" * 32
FORM_SECRET = labels.upload_form_name("k" * 32, "a1b2c3")
WRITER = {"AWS_ACCESS_KEY_ID": "WRITER", "AWS_SECRET_ACCESS_KEY": "writer-secret"}


def job_with_form() -> Manifest:
    _body, md = _md()
    job = build_job("k" * 32, md.spec.node_pool("cpu"), S3, md.spec, serving_image=IMAGE, upload_form=FORM_SECRET)
    job["metadata"]["uid"] = "job-uid"
    return job


def test_no_step_of_a_build_with_a_form_holds_a_write_key() -> None:
    job = job_with_form()
    steps = containers(job)
    for name in ("fetch", "publish"):  # read-only keys: sources, published keys
        assert steps[name]["envFrom"] == [{"secretRef": {"name": "repo-reader"}}]
    for name in ("build", "measure", "triton"):
        assert "envFrom" not in steps[name]
    publish = steps["publish"]
    assert mounts(publish)["upload-form"] == {
        "name": "upload-form", "mountPath": "/var/run/fulcrum/upload-form", "readOnly": True,
    }  # fmt: skip
    args = publish["args"]
    assert args[args.index("--upload-form") + 1] == f"/var/run/fulcrum/upload-form/{UPLOAD_FORM_FILE}"
    assert not any("upload-form" in mounts(steps[n]) for n in ("fetch", "build", "measure", "triton"))
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["upload-form"]["secret"] == {"secretName": FORM_SECRET, "optional": True, "defaultMode": 0o400}
    assert upload_form_secret_name(job) == FORM_SECRET == "fulcrum-build-kkkkkkkkkkkkkkkkkkkk-upload-a1b2c3"
    _body, md = _md()
    plain = build_job("k" * 32, md.spec.node_pool("cpu"), S3, md.spec, serving_image=IMAGE)
    assert upload_form_secret_name(plain) is None
    assert containers(plain)["publish"]["envFrom"] == [{"secretRef": {"name": "repo-writer"}}]


def test_every_build_into_the_default_object_storage_signs_forms() -> None:
    _body, md = _md()
    assert signs_uploads(md.spec, S3)
    assert not signs_uploads(md.spec, SETTINGS)  # a node directory: no form to sign
    _body, own = _md(repository={"uri": "s3://team-bucket/models", "secretRef": {"name": "team-s3"}})
    assert not signs_uploads(own.spec, S3)  # the team's own bucket and keys


def test_a_build_in_the_teams_namespace_gets_a_form_not_the_platforms_write_keys() -> None:
    """A ``pvc://`` source builds in the ModelDeployment's namespace (its claim is there). Into the default
    object storage it publishes through a form too: the team's namespace never holds the platform's write keys
    (with them, any team could overwrite any other team's repositories)."""
    model = {**BASE["spec"]["model"], "source": {"uri": "pvc://team-models/ranker.onnx", "format": "onnx"}}
    _body, md = _md(model=model)
    assert builds_in_own_namespace(md.spec) and signs_uploads(md.spec, S3)
    name = upload_form_name("k" * 32, "a1b2c3")
    job = build_job("k" * 32, md.spec.node_pool("cpu"), S3, md.spec, serving_image=IMAGE, namespace="shop",
                    upload_form=name)  # fmt: skip
    assert job["metadata"]["namespace"] == "shop" and upload_form_secret_name(job) == name
    job["metadata"]["uid"] = "job-uid"
    steps = containers(job)
    for step in ("fetch", "publish"):
        assert steps[step]["envFrom"] == [{"secretRef": {"name": S3.storage.serving_secret}}], step
    assert not any("envFrom" in steps[n] for n in ("build", "measure", "triton"))
    assert S3.storage.secret is not None and S3.storage.secret not in json.dumps(job)
    signer = UploadSigner.from_environment(S3, WRITER)
    assert signer is not None
    assert upload_form_secret("k" * 32, job, signer.sign(KEY))["metadata"]["namespace"] == "shop"


def test_the_operator_can_create_the_form_secret() -> None:
    from fulcrum.controller.kube import object_path

    assert object_path("Secret", "fulcrum-system") == "/api/v1/namespaces/fulcrum-system/secrets"


def test_the_form_secret_is_owned_by_its_job_and_holds_only_the_form() -> None:
    signer = UploadSigner.from_environment(S3, WRITER)
    assert signer is not None and "writer-secret" not in repr(signer)
    form = signer.sign(KEY)
    assert form.prefix == f"fulcrum/{KEY}/" and form.bucket == "models"
    secret = upload_form_secret("k" * 32, job_with_form(), form)
    meta = secret["metadata"]
    assert (meta["name"], meta["namespace"]) == (FORM_SECRET, "fulcrum-system")
    assert meta["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": labels.build_job_name("k" * 32), "uid": "job-uid",
         "controller": False, "blockOwnerDeletion": False},
    ]  # fmt: skip
    assert meta["annotations"]["fulcrum.dev/upload-prefix"] == form.prefix
    assert list(secret["data"]) == [UPLOAD_FORM_FILE]
    stored = UploadForm.from_json(base64.b64decode(secret["data"][UPLOAD_FORM_FILE]).decode())
    assert stored == form
    text = base64.b64decode(secret["data"][UPLOAD_FORM_FILE]).decode() + json.dumps(secret)
    assert "writer-secret" not in text and "WRITER/" in text  # the access key's id is in the credential scope


def test_a_form_outlives_the_longest_build() -> None:
    from dataclasses import replace

    from fulcrum.storage.form import DEFAULT_LIFETIME

    signer = UploadSigner.from_environment(S3, WRITER)
    assert signer is not None and signer.lifetime == DEFAULT_LIFETIME  # 6 h > the default 1 h build timeout
    slow = UploadSigner.from_environment(replace(S3, build_timeout_seconds=10 * 3600), WRITER)
    assert slow is not None and slow.lifetime == 11 * 3600


def test_a_form_that_never_comes_is_a_transient_failure(tmp_path: Path) -> None:
    from model_repo_builder import publish

    with pytest.raises(publish.PublishError) as error:
        publish.store_at("s3://models/fulcrum", upload_form=tmp_path / "form.json", wait=0, say=lambda _m: None)
    assert error.value.transient and "no usable upload form" in str(error.value)
    (tmp_path / "form.json").write_text('{"bucket": "models"}')  # half-projected or tampered: never echoed
    with pytest.raises(publish.PublishError) as error:
        publish.store_at("s3://models/fulcrum", upload_form=tmp_path / "form.json", wait=0, say=lambda _m: None)
    assert error.value.transient and '"bucket"' not in str(error.value)


def test_without_write_keys_the_operator_signs_nothing() -> None:
    assert UploadSigner.from_environment(S3, {}) is None
    assert UploadSigner.from_environment(SETTINGS, WRITER) is None  # not object storage


def pod(fetch: Manifest, *later: Manifest, created: str = "2026-01-01T00:00:00Z") -> Manifest:
    return {
        "metadata": {"creationTimestamp": created},
        "status": {"initContainerStatuses": [{"name": "fetch", "state": fetch}, *later]},
    }


def test_the_operator_signs_for_the_key_a_finished_fetch_step_reported() -> None:
    reported = {"terminated": {"exitCode": 0, "message": content_key_message(KEY)}}
    assert reported_content_key([pod(reported)]) == KEY
    assert reported_content_key([pod({"running": {}})]) is None
    assert reported_content_key([pod({"terminated": {"exitCode": 3, "message": content_key_message(KEY)}})]) is None
    assert reported_content_key([pod({"terminated": {"exitCode": 0}})]) is None  # already published
    for bad in ('{"contentKey": "a/b"}', '{"contentKey": ".."}', '{"contentKey": "k", "x": 1}', "contentKey"):
        assert content_key_of(bad) is None, bad


def test_the_fetch_steps_request_is_never_the_builds_result() -> None:
    reported = {"terminated": {"exitCode": 0, "message": content_key_message(KEY)}}
    killed = {"name": "build", "state": {"terminated": {"exitCode": 137}}}
    assert termination_message([pod(reported, killed)]) is None  # the build died without a word
    failed = {"name": "build", "state": {"terminated": {"exitCode": 2, "message": '{"error": "bad model"}'}}}
    assert termination_message([pod(reported, failed)]) == '{"error": "bad model"}'

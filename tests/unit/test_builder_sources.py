"""URI resolution (file relative to the spec, pvc mounts, remote schemes), digests, pickle refusal."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import pytest

from model_repo_builder.dtypes import TensorInfo
from model_repo_builder.export import classify_file, example_inputs
from model_repo_builder.sources import SourceError, fetch, resolve_uri

BASE = Path("/specs/team")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:model.onnx", "/specs/team/model.onnx"),
        ("file:models/m.pt2", "/specs/team/models/m.pt2"),
        ("file://./m.onnx", "/specs/team/m.onnx"),
        ("file:///abs/m.onnx", "/abs/m.onnx"),
        ("file:/abs/m.onnx", "/abs/m.onnx"),
        ("file:with%20space.onnx", "/specs/team/with space.onnx"),
    ],
)
def test_file_uris(uri: str, expected: str) -> None:
    location = resolve_uri(uri, base_dir=BASE)
    assert location.kind == "local" and location.path == Path(expected)


def test_pvc_uris_map_to_the_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FULCRUM_PVC_ROOT", raising=False)
    assert resolve_uri("pvc://models/ctr/model.pt2", base_dir=BASE).path == Path("/mnt/pvc/models/ctr/model.pt2")
    monkeypatch.setenv("FULCRUM_PVC_ROOT", "/data")
    assert resolve_uri("pvc://models/m.onnx", base_dir=BASE).path == Path("/data/models/m.onnx")
    assert resolve_uri("pvc://models/m.onnx", base_dir=BASE, pvc_root="/x").path == Path("/x/models/m.onnx")


@pytest.mark.parametrize("uri", ["https://host/m.onnx", "s3://bucket/key/m.onnx", "gs://bucket/m.pt2"])
def test_remote_uris(uri: str) -> None:
    location = resolve_uri(uri, base_dir=BASE)
    assert location.kind == "remote" and location.url == uri


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://host/m", "unsupported URI scheme"),
        ("pvc://claim", "pvc://<claim>/<path>"),
        ("pvc://claim/../etc/passwd", "'..'"),
        ("file://host/m.onnx", "names a host"),
        ("s3:///key", "no host or bucket"),
    ],
)
def test_bad_uris_name_the_field(uri: str, message: str) -> None:
    with pytest.raises(SourceError, match=r"model\.source\.uri") as error:
        resolve_uri(uri, base_dir=BASE, field="model.source.uri")
    assert message in str(error.value)


def test_fetch_checks_sha256(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"model bytes")
    digest = hashlib.sha256(b"model bytes").hexdigest()
    path, got = fetch("file:m.onnx", base_dir=tmp_path, cache_dir=tmp_path / "cache", expected_sha256=digest)
    assert path == tmp_path / "m.onnx" and got == digest
    with pytest.raises(SourceError, match="sha256 mismatch"):
        fetch("file:m.onnx", base_dir=tmp_path, cache_dir=tmp_path / "cache", expected_sha256="0" * 64)
    with pytest.raises(SourceError, match="not a file"):
        fetch("file:missing.onnx", base_dir=tmp_path, cache_dir=tmp_path / "cache")


def test_classify_never_unpickles(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"weights": [1, 2]}, protocol=2))
    assert classify_file(legacy) == "pickle"
    zipped = tmp_path / "model.pt"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/version", b"3")
    assert classify_file(zipped) == "pickle"
    script = tmp_path / "script.pt"
    with zipfile.ZipFile(script, "w") as archive:
        archive.writestr("archive/data.pkl", b"")
        archive.writestr("archive/constants.pkl", b"")
        archive.writestr("archive/code/__torch__/m.py", b"")
    assert classify_file(script) == "torchscript"
    exported = tmp_path / "model.pt2"
    with zipfile.ZipFile(exported, "w") as archive:
        archive.writestr("model/archive_format", b"pt2")
        archive.writestr("model/models/model.json", b"{}")
    assert classify_file(exported) == "torch-export"
    onnx_like = tmp_path / "m.onnx"
    onnx_like.write_bytes(b"\x08\x08\x12\x07pytorch")
    assert classify_file(onnx_like) == "onnx"


def test_example_inputs_keep_indices_in_range() -> None:
    arrays = example_inputs([TensorInfo("ids", "INT64", (3,)), TensorInfo("x", "FP16", (-1, 2))], batch=5)
    assert arrays[0].shape == (5, 3) and arrays[0].dtype.name == "int64" and set(arrays[0].ravel()) <= {0, 1}
    assert arrays[1].shape == (5, 4, 2) and arrays[1].dtype.name == "float16"


def test_incomplete_s3_credentials_name_the_field_and_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(SourceError, match="AWS_SECRET_ACCESS_KEY") as error:
        fetch("s3://bucket/models/m.onnx", base_dir=tmp_path, cache_dir=tmp_path / "cache", field="model.source.uri")
    assert str(error.value).startswith("model.source.uri:") and "s3://bucket/models/m.onnx" in str(error.value)
    assert not error.value.transient


def test_a_relative_file_uri_is_refused_in_a_cluster() -> None:
    assert resolve_uri("file:model.pt2", base_dir=BASE).path == BASE / "model.pt2"
    with pytest.raises(SourceError, match="only `fulcrum build --spec` on a workstation"):
        resolve_uri("file:model.pt2", base_dir=BASE, field="model.source.uri", relative_files=False)
    assert resolve_uri("file:///abs/m.onnx", base_dir=BASE, relative_files=False).path == Path("/abs/m.onnx")


def test_pvc_claims_of_uris() -> None:
    from model_repo_builder.sources import pvc_claims

    assert pvc_claims(["pvc://a/x.pt2", "s3://b/y", "pvc://a/z.npz", "pvc://c/w"]) == ["a", "c"]


def test_a_pinned_remote_file_beside_the_spec_is_the_same_input(tmp_path: Path) -> None:
    """`fulcrum build` on a checkout of the examples: their s3:// files are pinned and lie beside the spec."""
    (tmp_path / "model.onnx").write_bytes(b"the model")
    digest = hashlib.sha256(b"the model").hexdigest()
    path, got = fetch(
        "s3://examples/team/model.onnx", base_dir=tmp_path, cache_dir=tmp_path / "cache", expected_sha256=digest
    )
    assert (path, got) == (tmp_path / "model.onnx", digest)
    # in a cluster, or for other bytes, the URI itself is fetched (tests/integration/test_storage_sources.py)
    from model_repo_builder.sources import _pinned_copy
    from model_repo_builder.sources import resolve_uri as resolve

    location = resolve("s3://examples/team/model.onnx", base_dir=tmp_path)
    assert _pinned_copy(location, tmp_path, hashlib.sha256(b"other").hexdigest()) is None
    assert _pinned_copy(location, tmp_path, None) is None

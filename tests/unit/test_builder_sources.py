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


def test_s3_without_s3fs_says_what_to_install(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed")
    with pytest.raises(SourceError, match="s3fs") as error:
        fetch("s3://bucket/models/m.onnx", base_dir=tmp_path, cache_dir=tmp_path / "cache", field="model.source.uri")
    assert str(error.value).startswith("model.source.uri:")

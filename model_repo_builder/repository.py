"""Writing a tier into the Triton model repository: ``DIR/<tier>/config.pbtxt`` and ``DIR/<tier>/1/<files>``.

``triton`` target: ``1/model.onnx`` (onnxruntime tiers) or ``1/model.plan`` (tensorrt tiers).
``local`` target: ``1/model.py`` (python backend running onnxruntime) next to ``1/model.onnx``, with its
bytecode already compiled: otherwise the python backend writes ``__pycache__`` into the model directory when it
first loads it, Triton then takes the tier for modified and reloads it whenever a routing model that uses it is
loaded (a hot switch then takes seconds instead of milliseconds).
The Triton model name is the tier name. Every config is parsed back and its IO checked against the graph.
"""

from __future__ import annotations

import importlib.util
import py_compile
import shutil
from collections.abc import Sequence
from pathlib import Path

from model_repo_builder import triton_config
from model_repo_builder.dtypes import TensorInfo
from model_repo_builder.triton_config import ModelFiles, ServingOptions, Target

VERSION = "1"


def local_model_source() -> str:
    return (Path(__file__).resolve().parent / "templates" / "local_model.py").read_text()


def write_tier(
    repo: Path,
    tier: str,
    *,
    backend: str,
    target: Target,
    model_file: Path,
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    serving: ServingOptions,
) -> Path:
    """Write one tier; returns its model directory. Raises ``ConfigError`` when IO and graph disagree."""
    model_dir = repo / tier
    if model_dir.exists():
        shutil.rmtree(model_dir)
    version_dir = model_dir / VERSION
    version_dir.mkdir(parents=True)
    if target == "local":
        shutil.copyfile(model_file, version_dir / "model.onnx")
        (version_dir / "model.py").write_text(local_model_source())
        compile_source(version_dir / "model.py")
        files = ModelFiles("model.py", {triton_config.LOCAL_ONNX_PARAMETER: "model.onnx", "intra_op_threads": "0"})
    elif backend == "tensorrt":
        shutil.copyfile(model_file, version_dir / "model.plan")
        files = ModelFiles("model.plan")
    else:
        shutil.copyfile(model_file, version_dir / "model.onnx")
        files = ModelFiles("model.onnx")
    config = triton_config.model_config(
        tier, backend, target, inputs=inputs, outputs=outputs, serving=serving, files=files
    )
    text = triton_config.to_text(config)
    problems = triton_config.check_io(triton_config.parse(text), inputs, outputs)
    if problems:
        raise triton_config.ConfigError(f"tiers[{tier}]: config.pbtxt does not match the model: {'; '.join(problems)}")
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def compile_source(source: Path) -> None:
    """Write the bytecode Python would write at first import, valid whatever the file's mtime becomes (copies)."""
    py_compile.compile(
        str(source),
        cfile=importlib.util.cache_from_source(str(source)),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )

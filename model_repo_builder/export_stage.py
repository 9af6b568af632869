"""The export stage: a cached fp32 ONNX export, its IO against the spec, and its numbers against torch.

Exports are cached in ``<cache>/exports/<export key>.onnx`` (key: model digest, format, declared IO, opset),
so the other target, or a change of tiers, reuses them. A torch export is then run beside the torch model on
the validation inputs under the spec's checks, once per export, data and checks (a marker file next to it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_repo_builder import accuracy as acc
from model_repo_builder.dtypes import Array, TensorInfo
from model_repo_builder.keys import content_key


@dataclass(frozen=True)
class Exported:
    path: Path
    key: str
    graph_in: list[TensorInfo]
    graph_out: list[TensorInfo]


def export_key(digest: str, fmt: str, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> str:
    from model_repo_builder.onnx_graph import OPSET

    return content_key(
        model_sha256=digest,
        source_format=fmt,
        target="export",
        model_io={"inputs": [t.to_dict() for t in inputs], "outputs": [t.to_dict() for t in outputs]},
        tiers=[],
        accuracy={},
        validation_sha256=None,
        serving={},
        opset=OPSET,
    )


def cached_path(cache: Path, key: str) -> Path:
    return cache / f"{key}.onnx"


def export_cached(
    model_path: Path,
    fmt: str,
    *,
    digest: str,
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    target: Path,
    cache: Path,
) -> Exported:
    """Write the fp32 export to ``target`` (from the cache when there). Raises ``ExportError``."""
    from model_repo_builder import export as exp
    from model_repo_builder import onnx_graph

    key = export_key(digest, fmt, inputs, outputs)
    cached = cached_path(cache, key)
    if cached.is_file():
        shutil.copyfile(cached, target)
    else:
        exp.export(model_path, fmt, target, inputs=inputs, outputs=outputs)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(target, tmp)
        tmp.replace(cached)
    graph_in, graph_out = onnx_graph.graph_io(onnx_graph.load(target))
    return Exported(target, key, graph_in, graph_out)


def io_mismatch(
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    graph_in: Sequence[TensorInfo],
    graph_out: Sequence[TensorInfo],
) -> str:
    """Problems between the spec's declared IO and the graph's ("" when none); -1 matches any size."""
    problems = []
    for what, declared, graph in (("inputs", inputs, graph_in), ("outputs", outputs, graph_out)):
        by_name = {t.name: t for t in graph}
        for t in declared:
            g = by_name.get(t.name)
            if g is None:
                problems.append(f"model.{what}[{t.name}] is not in the graph (it has {sorted(by_name)})")
            elif g.data_type != t.data_type:
                problems.append(f"model.{what}[{t.name}].dataType is {t.data_type}, the graph has {g.data_type}")
            elif len(g.dims) != len(t.dims) or any(
                a != b and -1 not in (a, b) for a, b in zip(g.dims, t.dims, strict=False)
            ):
                problems.append(f"model.{what}[{t.name}].dims is {list(t.dims)}, the graph has {list(g.dims)}")
    return "; ".join(problems)


def check_marker(cache: Path, key: str, data: dict[str, Array], checks: Sequence[acc.Check]) -> Path:
    """The marker saying the export with ``key`` passed ``checks`` against torch on ``data``."""
    digest = hashlib.sha256(key.encode())
    digest.update(json.dumps([c.__dict__ for c in checks], sort_keys=True).encode())
    for name in sorted(data):
        digest.update(name.encode() + np.ascontiguousarray(data[name]).tobytes())
    return cache / f"{key}.checked-{digest.hexdigest()[:16]}"


def check_against_torch(
    model_path: Path,
    fmt: str,
    *,
    exported: Exported,
    data: dict[str, Array],
    reference: dict[str, Array],
    checks: Sequence[acc.Check],
    batch: int,
) -> str:
    """ "" when the export's outputs pass ``checks`` against the torch model's, else why not."""
    from model_repo_builder import export as exp

    try:
        torch_out = exp.torch_outputs(model_path, fmt, data, [t.name for t in exported.graph_out], batch)
    except Exception as error:
        return f"could not run the torch model to check the export: {exp.key_line(error)}"
    evaluation = acc.evaluate(torch_out, reference, checks)
    if evaluation.passed:
        return ""
    return (
        f"the ONNX export differs from the torch model ({', '.join(evaluation.failures)}): an exporter bug or an "
        "operation it does not translate faithfully; try the other source format or export to ONNX yourself "
        "(format: onnx)"
    )

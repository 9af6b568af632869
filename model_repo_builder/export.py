"""Source model -> one fp32 ONNX file with a dynamic batch dimension, opset pinned.

- ``onnx``: checked and copied (weights pulled into the file);
- ``torch-export`` (``.pt2``, ``torch.export.save``): ``torch.export.load`` and the dynamo exporter;
- ``torchscript`` (``torch.jit.save``): ``torch.jit.load`` and the TorchScript exporter (the only one that
  takes a ScriptModule), with ``dynamic_axes`` on the batch dimension.

Pickled ``nn.Module`` files (``torch.save(model)``) are refused before anything reads them: unpickling runs
arbitrary code. Every failure raises :class:`ExportError` with a message a user can act on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from model_repo_builder.dtypes import Array, TensorInfo, numpy_dtype

FileKind = Literal["pickle", "torchscript", "torch-export", "onnx", "unknown"]

PICKLE_HELP = (
    "it is a pickled nn.Module (torch.save(model)), which Fulcrum never loads because unpickling runs arbitrary "
    "code. Save it as torch-export (torch.export.save(torch.export.export(model, example_inputs, "
    "dynamic_shapes=...), 'model.pt2')), as TorchScript (torch.jit.save(torch.jit.script(model), 'model.pt')) "
    "or as ONNX, and set model.source.format to match"
)


class ExportError(RuntimeError):
    """The source could not be turned into ONNX; the message says why and what to try."""


def classify_file(path: Path) -> FileKind:
    """What a model file is, from its bytes (no unpickling)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head[:1] == b"\x80":  # a pickle stream (protocol >= 2): the legacy torch.save format
        return "pickle"
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if any(n.endswith("/archive_format") or "/models/" in n for n in names):
            return "torch-export"
        if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/data.pkl") for n in names):
            return "pickle"
        return "unknown"
    return "onnx" if head[:1] == b"\x08" else "unknown"  # ModelProto starts with field 1 (ir_version)


def check_format(path: Path, declared: str) -> None:
    kind = classify_file(path)
    if kind == "pickle":
        raise ExportError(f"model.source: {path.name} cannot be used: {PICKLE_HELP}")
    if declared in ("torchscript", "torch-export") and kind not in (declared, "unknown"):
        raise ExportError(
            f"model.source.format is {declared!r} but {path.name} looks like {kind}; set model.source.format to "
            f"{kind!r} or re-save the model"
        )


def example_inputs(inputs: Sequence[TensorInfo], batch: int = 2, seed: int = 0) -> list[Array]:
    """Small example inputs for tracing (ints are 0/1 so embedding lookups stay in range)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in inputs:
        shape = (batch, *(d if d > 0 else 4 for d in tensor.dims))
        dtype = numpy_dtype(tensor.data_type)
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype == np.bool_:
            arrays.append(rng.integers(0, 2, shape).astype(np.bool_))
        else:
            arrays.append(rng.integers(0, 2, shape).astype(dtype))
    return arrays


def key_line(error: BaseException) -> str:
    """The line of an exporter error that says what went wrong (not the whole traceback)."""
    text = str(error).strip()
    if len(text) < 40:  # KeyError('') and the like: the type says more than the text
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"(Error|error|Unsupported|unsupported|not supported|Could not|cannot|failed)", line):
            return line[:400]
    return lines[0][:400] if lines else type(error).__name__


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Exporters print a lot; keep the build's progress readable."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _finish(model: Any, out: Path, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> None:
    """Check, name-check and save one file; the batch dimension must be dynamic."""
    import onnx

    from model_repo_builder import onnx_graph

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"the exported ONNX graph is invalid: {key_line(error)}") from error
    graph_inputs, graph_outputs = onnx_graph.graph_io(model)
    for what, declared, actual in (("inputs", inputs, graph_inputs), ("outputs", outputs, graph_outputs)):
        if declared and [t.name for t in declared] != [t.name for t in actual]:
            raise ExportError(
                f"model.{what} names {[t.name for t in declared]} do not match the exported graph's "
                f"{[t.name for t in actual]}"
            )
    static = {name: dim for name, dim in onnx_graph.batch_dims(model).items() if dim > 0}
    if static:
        raise ExportError(
            f"the exported graph has a fixed batch dimension for {sorted(static)}; export with a dynamic first "
            "dimension (torch.export dynamic_shapes={'x': {0: torch.export.Dim('batch')}}, or dim_param in ONNX)"
        )
    onnx_graph.save_single_file(model, out)


def export_onnx_source(path: Path, out: Path, outputs: Sequence[TensorInfo] = ()) -> None:
    from model_repo_builder import onnx_graph

    try:
        model = onnx_graph.load(path)
    except Exception as error:
        raise ExportError(f"model.source: {path.name} is not a readable ONNX model: {key_line(error)}") from error
    _finish(model, out, (), outputs)


def _torch_args(inputs: Sequence[TensorInfo]) -> tuple[Any, ...]:
    import torch

    return tuple(torch.from_numpy(a) for a in example_inputs(inputs))


def export_torch_export(
    path: Path, out: Path, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo], opset: int
) -> None:
    import torch

    check_format(path, "torch-export")
    try:
        program = torch.export.load(str(path))
    except Exception as error:
        raise ExportError(
            f"model.source: torch.export.load could not read {path.name}: {key_line(error)}. Save it with "
            "torch.export.save(torch.export.export(model, args, dynamic_shapes=...), 'model.pt2') using the same "
            "major torch version"
        ) from error
    try:
        with _quiet():
            onnx_program = torch.onnx.export(
                program,
                (),
                None,
                dynamo=True,
                opset_version=opset,
                input_names=[t.name for t in inputs],
                output_names=[t.name for t in outputs],
                optimize=True,
                verify=False,
            )
            assert onnx_program is not None
            model = onnx_program.model_proto
    except Exception as error:
        raise ExportError(
            f"the dynamo ONNX exporter failed on {path.name}: {key_line(error)}. Try: torch.export the model "
            "with strict=False, replace the unsupported operation, or export to ONNX yourself and use "
            "format: onnx"
        ) from error
    _finish(model, out, inputs, outputs)


def export_torchscript(
    path: Path, out: Path, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo], opset: int
) -> None:
    import torch

    check_format(path, "torchscript")
    try:
        module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as error:
        raise ExportError(
            f"model.source: torch.jit.load could not read {path.name}: {key_line(error)}. Save it with "
            "torch.jit.save(torch.jit.script(model) or torch.jit.trace(model, example), 'model.pt')"
        ) from error
    module.eval()
    names_in, names_out = [t.name for t in inputs], [t.name for t in outputs]
    buffer = io.BytesIO()
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                module,
                _torch_args(inputs),
                buffer,  # type: ignore[arg-type]
                dynamo=False,
                opset_version=opset,
                input_names=names_in,
                output_names=names_out,
                dynamic_axes={name: {0: "batch"} for name in [*names_in, *names_out]},
                do_constant_folding=True,
            )
    except Exception as error:
        raise ExportError(
            f"the TorchScript ONNX exporter failed on {path.name}: {key_line(error)}. Try: save the model as "
            "torch-export (.pt2) instead, check model.inputs dataType/dims, or export to ONNX yourself and use "
            "format: onnx"
        ) from error
    import onnx

    _finish(onnx.load_from_string(buffer.getvalue()), out, inputs, outputs)


def export(
    path: Path,
    fmt: str,
    out: Path,
    *,
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    opset: int | None = None,
) -> None:
    """Write ``out`` (one fp32 ONNX file). Raises :class:`ExportError`."""
    from model_repo_builder.onnx_graph import OPSET

    opset = opset or OPSET
    if fmt == "onnx":
        export_onnx_source(path, out, outputs)
    elif fmt == "torch-export":
        export_torch_export(path, out, inputs, outputs, opset)
    elif fmt == "torchscript":
        export_torchscript(path, out, inputs, outputs, opset)
    else:
        raise ExportError(f"model.source.format {fmt!r} is not supported (onnx, torchscript, torch-export)")


def torch_outputs(
    path: Path, fmt: str, inputs: Mapping[str, Array], output_names: Sequence[str], batch: int
) -> dict[str, Array]:
    """Run the torch source itself (``torch.export.load`` / ``torch.jit.load``) on the inputs, in batches."""
    import torch

    if fmt == "torch-export":
        module: Any = torch.export.load(str(path)).module()
    else:
        module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        module.eval()
    names = list(inputs)
    n = len(inputs[names[0]])
    parts: dict[str, list[Array]] = {name: [] for name in output_names}
    with torch.no_grad():
        for start in range(0, n, batch):
            args = [torch.from_numpy(np.ascontiguousarray(inputs[k][start : start + batch])) for k in names]
            result = module(*args)
            values = list(result) if isinstance(result, (tuple, list)) else [result]
            for name, value in zip(output_names, values, strict=True):
                parts[name].append(value.detach().cpu().numpy())
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}

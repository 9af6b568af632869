"""The build's inputs: the model and validation files, their digests, and the content key they determine.

``fetch_inputs`` is the first stage of every build. ``fulcrum build`` runs it in process; the operator's build
Job runs it alone (``python -m model_repo_builder fetch``) in a container that holds the storage credentials
and writes ``inputs.json`` plus the fetched files into a directory that the build container then mounts
read-only: the container that runs the model's code never sees a credential, and cannot change the key its
output is published under.

The content key hashes every input of a build (``keys.content_key``) plus the *platform* it runs on (the node
pool: TensorRT engines and profiles belong to the hardware). It is computed from the bytes, not the URIs, so
two ModelDeployments share a repository only when their files are the same.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fulcrum.api import ModelDeployment
from model_repo_builder import sources
from model_repo_builder.keys import content_key

INPUTS_FILE = "inputs.json"
PUBLISHED_MANIFEST = "published-manifest.json"


@dataclass(frozen=True)
class InputFile:
    uri: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class Inputs:
    """What the fetch stage found. ``failure`` (reason, message) when a source could not be used."""

    model: InputFile | None = None
    validation: InputFile | None = None
    key: str = ""
    failure: tuple[str, str] | None = None
    transient: bool = False
    published: str | None = None  # where the key is already published (the build is reused, not rebuilt)

    def to_json(self) -> str:
        def file(f: InputFile | None) -> dict[str, str] | None:
            return None if f is None else {"uri": f.uri, "path": str(f.path), "sha256": f.sha256}

        document: dict[str, Any] = {
            "model": file(self.model),
            "validation": file(self.validation),
            "key": self.key,
            "failure": None if self.failure is None else {"reason": self.failure[0], "message": self.failure[1]},
            "transient": self.transient,
            "published": self.published,
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def load(cls, directory: Path) -> Inputs:
        document = json.loads((directory / INPUTS_FILE).read_text())

        def file(d: dict[str, str] | None) -> InputFile | None:
            return None if d is None else InputFile(d["uri"], Path(d["path"]), d["sha256"])

        failure = document.get("failure")
        return cls(
            model=file(document.get("model")),
            validation=file(document.get("validation")),
            key=str(document.get("key", "")),
            failure=None if failure is None else (str(failure["reason"]), str(failure["message"])),
            transient=bool(document.get("transient", False)),
            published=document.get("published"),
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{INPUTS_FILE}.tmp"
        tmp.write_text(self.to_json())
        tmp.replace(directory / INPUTS_FILE)


def build_key(
    md: ModelDeployment,
    *,
    model_sha256: str,
    validation_sha256: str | None,
    target: str,
    platform: dict[str, Any],
    search: dict[str, Any] | None = None,
) -> str:
    """The content key of building ``md`` from these bytes on ``platform`` (``search``: the config search's
    inputs when it is on)."""
    from model_repo_builder.onnx_graph import OPSET

    spec = md.spec
    model_io = {
        "inputs": [t.model_dump(by_alias=True, mode="json") for t in spec.model.inputs or []],
        "outputs": [t.model_dump(by_alias=True, mode="json") for t in spec.model.outputs or []],
        "maxBatchSize": spec.model.max_batch_size,
    }
    return content_key(
        model_sha256=model_sha256,
        source_format=spec.model.source.format,
        target=target,
        model_io=model_io,
        tiers=[t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in spec.tiers],
        accuracy={
            "checks": [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in spec.accuracy.checks]
        },
        validation_sha256=validation_sha256,
        serving=spec.serving.model_dump(
            by_alias=True, exclude_none=True, mode="json", include={"dynamic_batching", "instances_per_replica"}
        ),
        opset=OPSET,
        search=search,
        platform=platform,
    )


def fetch_inputs(
    md: ModelDeployment,
    *,
    base_dir: Path,
    cache_dir: Path,
    target: str,
    platform: dict[str, Any],
    search: dict[str, Any] | None = None,
    copy_into: Path | None = None,
    relative_files: bool = True,
    pvc_root: str | None = None,
) -> Inputs:
    """Fetch and verify the model (and validation data) and compute the content key.

    ``copy_into``: put every input file inside this directory (the build Job's hand-over to the build
    container, which mounts neither the claims nor the network credentials)."""
    spec = md.spec
    fetched: list[InputFile] = []
    wanted = [("model.source.uri", spec.model.source.uri, spec.model.source.sha256)]
    if spec.accuracy.validation_data is not None:
        data = spec.accuracy.validation_data
        wanted.append(("accuracy.validationData.uri", data.uri, data.sha256))
    for field, uri, sha256 in wanted:
        try:
            path, digest = sources.fetch(
                uri,
                base_dir=base_dir,
                cache_dir=copy_into or cache_dir,
                expected_sha256=sha256,
                field=field,
                pvc_root=pvc_root,
                relative_files=relative_files,
            )
        except sources.SourceError as error:
            return Inputs(failure=("SourceFailed", str(error)), transient=error.transient)
        if copy_into is not None and not path.is_relative_to(copy_into):
            local = copy_into / "files" / digest / path.name
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, local)
            path = local
        fetched.append(InputFile(uri, path, digest))
    model = fetched[0]
    validation = fetched[1] if len(fetched) > 1 else None
    key = build_key(
        md,
        model_sha256=model.sha256,
        validation_sha256=validation.sha256 if validation else None,
        target=target,
        platform=platform,
        search=search,
    )
    return Inputs(model=model, validation=validation, key=key)

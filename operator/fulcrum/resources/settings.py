"""Operator-wide settings that shape the manifests (set by `fulcrum run` flags and the Helm chart's values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StorageKind = Literal["hostPath", "pvc", "uri"]

DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
DEFAULT_BUILDER_IMAGE = "ghcr.io/fulcrum-dev/fulcrum-builder:0.1.0"
MODELS_MOUNT = "/models"


@dataclass(frozen=True)
class RepositoryStorage:
    """Where model repositories live, as pods see them.

    ``hostPath``: a directory on the node (the dev cluster's single local node); ``pvc``: a ReadWriteMany claim
    in the namespace the pod runs in; ``uri``: object storage (s3:// or gs://) that the builder writes and
    Triton reads natively, with optional credentials from ``secret``.
    """

    kind: StorageKind
    location: str
    secret: str | None = None

    @classmethod
    def parse(cls, text: str) -> RepositoryStorage:
        """``hostpath:///var/lib/fulcrum``, ``pvc://model-repo`` or ``s3://bucket/prefix``."""
        if text.startswith("hostpath://"):
            return cls("hostPath", text.removeprefix("hostpath://"))
        if text.startswith("pvc://"):
            return cls("pvc", text.removeprefix("pvc://"))
        if text.startswith(("s3://", "gs://")):
            return cls("uri", text)
        raise ValueError(f"repository storage {text!r}: expected hostpath:///dir, pvc://<claim> or s3://|gs://<prefix>")

    @property
    def identity(self) -> str:
        """What distinguishes one storage from another (part of build keys)."""
        return f"{self.kind}:{self.location}"

    def repository_path(self, key: str) -> str:
        """The path (or URI) of one build's repository, as the pods see it."""
        if self.kind == "uri":
            return f"{self.location.rstrip('/')}/{key}"
        return f"{MODELS_MOUNT}/{key}"


@dataclass(frozen=True)
class OperatorSettings:
    build_namespace: str = "fulcrum-system"
    storage: RepositoryStorage = field(default_factory=lambda: RepositoryStorage("hostPath", "/var/lib/fulcrum/models"))
    triton_image: str = DEFAULT_TRITON_IMAGE
    builder_image: str = DEFAULT_BUILDER_IMAGE
    build_target: Literal["triton", "local"] = "triton"
    build_timeout_seconds: int = 3600
    build_ttl_seconds: int = 86400
    run_as_user: int = 1000

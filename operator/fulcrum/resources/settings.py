"""Operator-wide settings that shape the manifests (set by `fulcrum run` flags and the Helm chart's values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StorageKind = Literal["s3", "pvc", "hostPath"]

DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
DEFAULT_BUILDER_IMAGE = "ghcr.io/fulcrum-dev/fulcrum-builder:0.1.0"
DEFAULT_STORAGE_IMAGE = "ghcr.io/fulcrum-dev/fulcrum:0.1.0"
MODELS_MOUNT = "/models"
DAY = 86400


@dataclass(frozen=True)
class RepositoryStorage:
    """Where model repositories live.

    ``s3``: object storage (``s3://bucket/prefix``, or ``gs://`` through Cloud Storage's S3 API): build Jobs
    publish each build under ``<prefix>/<content key>/`` and serving pods download it before Triton starts.
    ``endpoint``/``region``: an S3-compatible store (None: AWS, or what the Secret's AWS_ENDPOINT_URL says).
    ``secret``: the credentials of builds (read sources, publish), a Secret in the namespace the build runs in;
    ``serving_secret``: read-only credentials of serving pods, a Secret in each namespace that serves
    (None: unsigned requests; access keys are the only credentials the S3 client takes).
    ``pvc``: a ReadWriteMany claim; ``hostPath``: a node directory, for single-node dev clusters only.
    """

    kind: StorageKind
    location: str
    endpoint: str | None = None
    region: str | None = None
    secret: str | None = None
    serving_secret: str | None = None

    @classmethod
    def parse(cls, text: str, **options: str | None) -> RepositoryStorage:
        """``s3://bucket/prefix`` (``gs://``), ``pvc://model-repo`` or ``hostpath:///var/lib/fulcrum``."""
        if text.startswith("hostpath://"):
            path = text.removeprefix("hostpath://")
            if not path.startswith("/"):
                raise ValueError(f"repository storage {text!r}: hostpath:// needs an absolute path")
            return cls("hostPath", path, **options)
        if text.startswith("pvc://"):
            return cls("pvc", text.removeprefix("pvc://").strip("/"), **options)
        if text.startswith(("s3://", "gs://")) and len(text.split("/")[2]) > 0:
            return cls("s3", text.rstrip("/"), **options)
        raise ValueError(
            f"repository storage {text!r}: expected s3://bucket/prefix, gs://bucket/prefix, pvc://<claim> "
            "or hostpath:///dir"
        )

    @property
    def identity(self) -> str:
        """What distinguishes one storage from another (part of build keys): a build record is only reused where
        its files are."""
        where = f"@{self.endpoint}" if self.kind == "s3" and self.endpoint else ""
        return f"{self.kind}:{self.location}{where}"

    @property
    def pod_location(self) -> str:
        """The repository root as build pods see it: the bucket prefix, or the volume's mount."""
        return self.location if self.kind == "s3" else MODELS_MOUNT

    def owns(self, repository: str) -> bool:
        """Whether ``repository`` (a build's published location) is one key directly under this storage."""
        parent, _, key = repository.rstrip("/").rpartition("/")
        return bool(key) and parent == self.pod_location.rstrip("/")


@dataclass(frozen=True)
class OperatorSettings:
    build_namespace: str = "fulcrum-system"
    storage: RepositoryStorage = field(default_factory=lambda: RepositoryStorage("hostPath", "/var/lib/fulcrum/models"))
    triton_image: str = DEFAULT_TRITON_IMAGE
    builder_image: str = DEFAULT_BUILDER_IMAGE
    storage_image: str = DEFAULT_STORAGE_IMAGE
    """Runs ``fulcrum storage pull`` before Triton starts (the operator's own image: small, no torch)."""
    build_target: Literal["triton", "local"] = "triton"
    build_timeout_seconds: int = 3600
    build_ttl_seconds: int = DAY
    build_retries: int = 2
    """Times a build pod that failed for a reason outside the model (evicted, killed, storage unreachable) is
    started again (the Job's backoffLimit); a bad spec fails at once."""
    run_as_user: int = 1000

"""Build results: the record format the operator stores, and how tiers merge across pools' builds."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from fulcrum.api import BuildManifest, ManifestTier, Profile, TierStatus, ValidationSplit
from fulcrum.api.status import TierState
from fulcrum.resources.routing import ServedIO
from fulcrum.resources.settings import RepositoryStorage

BuildPhase = Literal["Pending", "Running", "Retrying", "Succeeded", "Failed"]

BUILD_ATTEMPTS = 4
"""A build that fails for reasons of the infrastructure (its pod evicted, killed, out of memory, out of time) is
retried this many times in all; then the failure is final until the record is deleted or the inputs change."""
RETRY_BASE_SECONDS = 60.0
RETRY_FACTOR = 4.0  # 1 min, 4 min, 16 min


@dataclass(frozen=True)
class BuildResult:
    """What one build (one key, one pool) produced, as kept in its build record."""

    phase: BuildPhase
    reason: str = ""
    message: str = ""
    manifest: BuildManifest | None = None
    repository: str | None = None
    serving_image: str | None = None
    """The Triton image the build gated and profiled its tiers with (None: a record from before it was kept)."""
    transient: bool = False
    """A failure of the infrastructure, not of the model: retried at ``retry_at``."""
    attempts: int = 1
    retry_at: str | None = None
    """When a transient failure is retried (RFC 3339, wall clock: the record outlives the operator process)."""
    job_uid: str | None = None
    """The Job this result was read from (so a second harvest of the same Job is recognised)."""

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "phase": self.phase,
            "reason": self.reason,
            "message": self.message,
            "repository": self.repository,
            "servingImage": self.serving_image,
            "manifest": self.manifest.model_dump(mode="json", by_alias=True) if self.manifest else None,
        }
        if self.transient:
            record.update(transient=True, attempts=self.attempts, retryAt=self.retry_at)
        elif self.attempts > 1:
            record["attempts"] = self.attempts
        if self.job_uid:
            record["jobUid"] = self.job_uid
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BuildResult:
        manifest = record.get("manifest")
        return cls(
            phase=record.get("phase", "Failed"),
            reason=str(record.get("reason", "")),
            message=str(record.get("message", "")),
            manifest=BuildManifest.model_validate(manifest) if manifest else None,
            repository=record.get("repository"),
            serving_image=record.get("servingImage"),
            transient=bool(record.get("transient", False)),
            attempts=int(record.get("attempts", 1)),
            retry_at=record.get("retryAt"),
            job_uid=record.get("jobUid"),
        )

    @property
    def final(self) -> bool:
        """A success, or a failure that is not retried."""
        return not (self.phase == "Failed" and self.transient)


def retry_delay(attempts: int) -> float:
    """Seconds before retrying a build that failed ``attempts`` times for transient reasons."""
    return RETRY_BASE_SECONDS * RETRY_FACTOR ** max(0, attempts - 1)


def job_failure(job: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[bool, str, str]:
    """Why a build Job failed: (transient, reason, message), from its Failed condition and its last pod.

    Permanent: the builder exited 2 (the Job's pod failure policy failed the Job at once: the spec or model is
    unusable; its termination message says why). Transient: anything else the infrastructure did to the pod
    (evicted, preempted beyond the pod failure policy, OOMKilled, killed, out of time).
    """
    conditions: list[dict[str, Any]] = (job.get("status") or {}).get("conditions") or []
    condition: dict[str, Any] = next((c for c in conditions if c.get("type") == "Failed"), {})
    job_reason = str(condition.get("reason", ""))
    if job_reason == "PodFailurePolicy":
        return False, "BuildFailed", str(condition.get("message", "the builder rejected the build"))
    details = [str(condition.get("message") or job_reason or "the build Job failed")]
    for pod in pods[-1:]:
        pod_status = pod.get("status") or {}
        if pod_status.get("reason"):
            details.append(f"pod {pod['metadata']['name']}: {pod_status['reason']} {pod_status.get('message', '')}")
        for container in pod_status.get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated:
                details.append(
                    f"container {container.get('name')}: {terminated.get('reason', 'Terminated')} "
                    f"(exit code {terminated.get('exitCode')})"
                )
    return True, "BuildInterrupted", "; ".join(d.strip() for d in details if d.strip())


def with_retry(result: BuildResult, transient: bool, previous: BuildResult | None, now: float) -> BuildResult:
    """A failed build's record: retried later while attempts remain, final after the last one."""
    attempts = (previous.attempts if previous is not None and previous.transient else 0) + 1
    if result.phase != "Failed" or not transient:
        return replace(result, attempts=attempts, transient=False, retry_at=None)
    if attempts >= BUILD_ATTEMPTS:
        return replace(
            result,
            transient=False,
            attempts=attempts,
            retry_at=None,
            message=f"failed {attempts} times, the last: {result.message}"[:1000],
        )
    retry_at = datetime.fromtimestamp(now + retry_delay(attempts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return replace(result, transient=True, attempts=attempts, retry_at=retry_at)


DEFLATED = "z:"


def _unpacked(text: str) -> str:
    """A termination message's JSON: the builder deflates it (``z:`` + base64) when plain JSON is longer than the
    share of the kubelet's 12 KiB per pod each of the build pod's containers gets (model_repo_builder.termination)."""
    if text.startswith(DEFLATED):
        return zlib.decompress(base64.b64decode(text[len(DEFLATED) :], validate=True)).decode()
    return text


def result_from_termination_message(text: str | None, *, succeeded: bool, storage: RepositoryStorage) -> BuildResult:
    """Interpret the build pod's termination message: the publish step's result (compact manifest and where
    the repository was published), or an error object from whichever step stopped the build."""

    if not text:
        if succeeded:
            return BuildResult("Failed", "NoBuildResult", "the build pod exited 0 but wrote no termination message")
        return BuildResult("Failed", "BuildFailed", "the build pod failed without a message; see its logs")
    try:
        data = json.loads(_unpacked(text))
    except (json.JSONDecodeError, binascii.Error, zlib.error, UnicodeDecodeError):
        return BuildResult("Failed", "BuildFailed", text.strip()[-600:])
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return BuildResult("Failed", str(error.get("reason", "BuildFailed")), str(error.get("message", "")))
    if isinstance(error, str):
        return BuildResult("Failed", "InvalidBuildSpec", error)
    try:
        manifest = BuildManifest.model_validate(data.get("manifest", data))
    except ValidationError as exc:
        return BuildResult("Failed", "BadBuildResult", f"the builder's result does not parse: {exc.errors()[0]['msg']}")
    repository = str(data.get("repository") or "") or None
    if repository is not None and not storage.owns(repository):
        return BuildResult(
            "Failed",
            "BadBuildResult",
            f"the build reported repository {repository}, which is not a key of {storage.pod_location}",
        )
    if not succeeded:
        return BuildResult("Failed", "BuildFailed", "the build pod failed", manifest, repository)
    if repository is None and any(t.state == "Ready" for t in manifest.tiers):
        return BuildResult("Failed", "BadBuildResult", "the build has Ready tiers but published no repository")
    return BuildResult("Succeeded", "BuildSucceeded", "", manifest, repository)


@dataclass
class MergedTier:
    """One tier across all pools' builds: Ready where any build made it Ready, with every pool's profile."""

    name: str
    state: TierState = "Unavailable"
    reason: str = "Building"
    message: str = "waiting for a build"
    accuracy: dict[str, float] = field(default_factory=dict)
    validation: ValidationSplit | None = None
    profiles: list[Profile] = field(default_factory=list)
    paths: dict[str, tuple[str, str]] = field(default_factory=dict)  # pool -> (repository, model dir)
    sizes: dict[str, int | None] = field(default_factory=dict)  # pool -> bytes of the model dir (None: unknown)
    io: dict[str, ServedIO] = field(default_factory=dict)  # pool -> what the build's tiers take and return
    backend: str = ""

    def to_status(self) -> TierStatus:
        repository = next(iter(self.paths.values()), (None, ""))[0]
        return TierStatus(
            name=self.name,
            state=self.state,
            reason=self.reason,
            message=self.message,
            accuracy={k: f"{v:.6g}" for k, v in sorted(self.accuracy.items())},
            validation=self.validation,
            profiles=self.profiles,
            repository=repository,
            size_bytes=next(iter(self.sizes.values()), None),
        )


def merge_tiers(tier_names: list[str], results: dict[str, BuildResult]) -> list[MergedTier]:
    """Merge per-pool build results into per-tier state, in spec order."""
    merged = {name: MergedTier(name) for name in tier_names}
    for pool, result in sorted(results.items()):
        if result.manifest is None:
            if result.phase == "Failed":
                for tier in merged.values():
                    if tier.state != "Ready":
                        tier.state, tier.reason, tier.message = "Failed", result.reason, result.message
            continue
        io = served_io(result.manifest)
        for mtier in result.manifest.tiers:
            if mtier.name in merged:
                checked = _engine_checked(mtier, result, pool)
                _merge_one(merged[mtier.name], checked, pool, result.repository or "", io)
    return [merged[name] for name in tier_names]


def served_io(manifest: BuildManifest) -> ServedIO | None:
    """The IO every tier of a build serves, when its manifest records it (builds before served names did not)."""
    if manifest.inputs is None or manifest.outputs is None or manifest.max_batch_size is None:
        return None
    return ServedIO(tuple(manifest.inputs), tuple(manifest.outputs), manifest.max_batch_size)


def _engine_checked(mtier: ManifestTier, result: BuildResult, pool: str) -> ManifestTier:
    """A Ready TensorRT tier serves only where its plan's TensorRT and GPU are known to be the serving pods'.

    Serving pods run the image the build recorded and are pinned to the GPU model it recorded; a build record
    that lacks either (one from an older operator, or a GPU the builder could not name) would leave the plan to
    meet another TensorRT or GPU and crash-loop, so the tier is ``Unavailable`` on that pool instead.
    """
    if mtier.state != "Ready" or mtier.backend != "tensorrt" or result.manifest is None:
        return mtier
    missing = [
        what
        for what, value in (("Triton image", result.serving_image), ("GPU model", result.manifest.gpu_product))
        if not value
    ]
    if not missing:
        return mtier
    message = (
        f"the build on pool {pool} did not record the {' or the '.join(missing)} its TensorRT plan was built and "
        "measured with, so no serving pod can be held to them; delete its build record to rebuild"
    )
    return mtier.model_copy(update={"state": "Unavailable", "reason": "EngineUnpinned", "message": message})


def _merge_one(tier: MergedTier, mtier: ManifestTier, pool: str, repository: str, io: ServedIO | None) -> None:
    tier.backend = mtier.backend
    if mtier.state == "Ready":
        if tier.state != "Ready":
            tier.state, tier.reason, tier.message = "Ready", "BuildSucceeded", mtier.message
        tier.accuracy = tier.accuracy or dict(mtier.accuracy)
        tier.validation = tier.validation or mtier.validation
        # a build profiles the pool it ran on, whatever name the builder was given
        tier.profiles.extend(p.model_copy(update={"node_pool": pool}) for p in mtier.profiles[:1])
        model_dir = (mtier.path or mtier.name).rstrip("/").rsplit("/", 1)[-1]
        tier.paths[pool] = (repository, model_dir)
        tier.sizes[pool] = mtier.size_bytes
        if io is not None:
            tier.io[pool] = io
    elif tier.state != "Ready":
        tier.state, tier.reason, tier.message = mtier.state, mtier.reason, mtier.message
        tier.accuracy = tier.accuracy or dict(mtier.accuracy)
        tier.validation = tier.validation or mtier.validation

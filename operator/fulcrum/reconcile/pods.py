"""Why a Triton Deployment's pods do not start, read from the pods as the kubelet reports them. Pure.

A Deployment's own status never says that its image cannot be pulled: it just has no ready replicas, and
``Progressing`` turns False only after ``progressDeadlineSeconds`` (ten minutes). The kubelet says it at once,
in each container's ``state.waiting``. This turns that into a condition reason and a message that names the pod
and the image, so a typo in ``spec.serving.image`` shows in ``kubectl get md`` instead of a silent wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# waiting reasons a user must act on (the image, the pod's configuration); plain start-up reasons are not here
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff")


@dataclass(frozen=True)
class PodProblem:
    """A reason (the kubelet's, e.g. ``ImagePullBackOff``) and a message naming the pod and its image."""

    reason: str
    message: str


def pod_problem(pods: Iterable[dict[str, Any]]) -> PodProblem | None:
    """The first container (in pod-name order) that waits for a reason a user must act on, else None."""
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", ""))):
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        status = pod.get("status") or {}
        statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        for container in statuses:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = str(waiting.get("reason", ""))
            if reason not in IMAGE_REASONS + CONFIG_REASONS:
                continue
            name = pod["metadata"].get("name", "?")
            image = container.get("image", "?")
            detail = str(waiting.get("message", "")).strip()
            if reason in IMAGE_REASONS:
                text = f"pod {name}: image {image} cannot be pulled ({reason})"
            else:
                text = f"pod {name}: container {container.get('name', '?')} ({image}) cannot run ({reason})"
            return PodProblem(reason, f"{text}: {detail}" if detail else text)
    return None

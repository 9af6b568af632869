"""Why pods do not get on, read from the pods as the kubelet and the scheduler report them. Pure.

A Deployment's own status never says that its image cannot be pulled: it just has no ready replicas, and
``Progressing`` turns False only after ``progressDeadlineSeconds`` (ten minutes). The kubelet says it at once, in
each container's ``state.waiting``. Likewise a serving pod that cannot download its repository (wrong or missing
read-only keys, a deleted key) fails in its init container, whose termination message names the object and the
store's error; a build pod whose Secret is missing waits in ``CreateContainerConfigError`` (the kubelet retries,
so creating the Secret lets it go on), and one whose claim is missing is never scheduled. This turns the first
such problem into a condition reason and a message that names the pod, the container and its image or error, so
``kubectl get md`` says why instead of a silent wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# waiting reasons a user must act on (the image, the pod's configuration); plain start-up reasons are not here
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff")
UNSCHEDULABLE = "Unschedulable"  # the scheduler's reason: here, a claim that is missing or not bound
EXITED = "ContainerExited"  # a container (e.g. the repository download) exited non-zero and is not yet backing off
REASONS = IMAGE_REASONS + CONFIG_REASONS + (UNSCHEDULABLE, EXITED)
"""Every reason :func:`pod_problem` gives."""
LIMIT = 600


@dataclass(frozen=True)
class PodProblem:
    """A reason (the kubelet's or scheduler's, e.g. ``ImagePullBackOff``) and a message naming the pod and what
    went wrong (its image, the Secret, the claim, the store's error)."""

    reason: str
    message: str


def _missing_claim(status: dict[str, Any]) -> str | None:
    """The scheduler's word on a pod that waits for a claim (missing, or not bound); capacity is the
    autoscaler's business and is left out."""
    for condition in status.get("conditions") or []:
        message = str(condition.get("message") or "")
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and "persistentvolumeclaim" in message.lower()
        ):
            return message
    return None


def _failed_exit(container: dict[str, Any]) -> dict[str, Any] | None:
    """The container's last non-zero exit (now or before its restart), if any."""
    for state in (container.get("state") or {}, container.get("lastState") or {}):
        terminated = state.get("terminated") or {}
        if terminated and int(terminated.get("exitCode", 0) or 0) != 0:
            return dict(terminated)
    return None


def _container_problem(pod: str, kind: str, container: dict[str, Any], exits: bool) -> PodProblem | None:
    waiting = (container.get("state") or {}).get("waiting") or {}
    reason = str(waiting.get("reason", ""))
    image = container.get("image", "?")
    what = f"pod {pod}: {kind} {container.get('name', '?')}"
    failed = _failed_exit(container) if exits else None
    if failed is not None:
        # e.g. the repository download: its termination message names the object and the store's error
        detail = str(failed.get("message") or failed.get("reason") or "").strip()
        text = f"{what} exited {failed.get('exitCode')}" + (f": {detail}" if detail else "")
        return PodProblem(reason if reason in CONFIG_REASONS else EXITED, text)
    if reason not in IMAGE_REASONS + CONFIG_REASONS:
        return None
    detail = str(waiting.get("message", "")).strip()
    if reason in IMAGE_REASONS:
        text = f"pod {pod}: image {image} cannot be pulled ({reason})"
    else:
        text = f"{what} ({image}) cannot run ({reason})"
    return PodProblem(reason, f"{text}: {detail}" if detail else text)


def pod_problem(pods: Iterable[dict[str, Any]], *, exits: bool = True) -> PodProblem | None:
    """The first problem (in pod-name order) a user must act on, else None.

    ``exits=False`` (build pods, ``restartPolicy: Never``): only pods still pending or running that wait on
    something a person must fix (an image, a Secret, a claim); a failed pod is the Job's to retry and its result
    says why.
    """
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", ""))):
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        status = pod.get("status") or {}
        if not exits and status.get("phase") not in (None, "Pending", "Running"):
            continue
        name = pod.get("metadata", {}).get("name", "?")
        claim = _missing_claim(status)
        if claim is not None:
            return PodProblem(UNSCHEDULABLE, f"pod {name}: not scheduled: {claim}"[:LIMIT])
        kinds = (
            ("init container", status.get("initContainerStatuses")),
            ("container", status.get("containerStatuses")),
        )
        for kind, statuses in kinds:
            for container in statuses or []:
                problem = _container_problem(name, kind, container, exits)
                if problem is not None:
                    return PodProblem(problem.reason, problem.message[:LIMIT])
    return None

"""Why pods do not get on, from their container statuses (pure): the first problem a person can act on.

A serving pod that cannot download its repository (wrong or missing read-only keys, a deleted key) fails in its
init container; its termination message names the object and the store's error. A build pod whose Secret or
claim is missing waits forever in ``CreateContainerConfigError`` (the kubelet retries, so creating the Secret
lets it go on). Without this, the ModelDeployment would only say that it is waiting for replicas or building.
"""

from __future__ import annotations

from typing import Any

STUCK = {"CreateContainerConfigError", "CreateContainerError", "ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff"}
LIMIT = 400


def _terminated_problem(status: dict[str, Any]) -> str | None:
    for state in (status.get("state") or {}, status.get("lastState") or {}):
        terminated = state.get("terminated") or {}
        if terminated and int(terminated.get("exitCode", 0) or 0) != 0:
            detail = (terminated.get("message") or terminated.get("reason") or "").strip()
            return f"exited {terminated.get('exitCode')}" + (f": {detail}" if detail else "")
    return None


def _missing_claim(status: dict[str, Any]) -> str | None:
    """The scheduler's word on a pod that waits for a claim (missing, or not bound); capacity is the
    autoscaler's business and is left out."""
    for condition in status.get("conditions") or []:
        message = condition.get("message") or ""
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and "persistentvolumeclaim" in message.lower()
        ):
            return f"not scheduled: {message}"
    return None


def pod_problem(pods: list[dict[str, Any]], *, exits: bool = True) -> str | None:
    """``pod P: init container C: <what went wrong>`` for the first pod that is stuck, or None.

    ``exits=False`` (build pods, ``restartPolicy: Never``): only pods still pending or running that wait on
    something a person must fix (a Secret, a claim); a failed pod is the Job's to retry and its result says why.
    """
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("name", "")):
        if not exits and (pod.get("status") or {}).get("phase") not in (None, "Pending", "Running"):
            continue
        name = pod.get("metadata", {}).get("name", "?")
        status = pod.get("status") or {}
        unschedulable = _missing_claim(status)
        if unschedulable is not None:
            return f"pod {name}: {unschedulable}"[:LIMIT]
        kinds = (
            ("init container", status.get("initContainerStatuses")),
            ("container", status.get("containerStatuses")),
        )
        for kind, statuses in kinds:
            for container in statuses or []:
                waiting = (container.get("state") or {}).get("waiting") or {}
                problem = _terminated_problem(container) if exits else None
                if problem is None and waiting.get("reason") in STUCK:
                    problem = f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
                if problem is not None:
                    return f"pod {name}: {kind} {container.get('name', '?')} {problem}"[:LIMIT]
    return None

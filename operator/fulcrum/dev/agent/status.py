"""Pod status as a kubelet reports it, computed from the agent's view of its processes. Pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Terminated:
    exit_code: int
    reason: str
    message: str
    started_at: str | None
    finished_at: str
    signal: int | None = None

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exitCode": self.exit_code, "reason": self.reason, "finishedAt": self.finished_at}
        if self.message:
            out["message"] = self.message
        if self.started_at:
            out["startedAt"] = self.started_at
        if self.signal is not None:
            out["signal"] = self.signal
        return out


@dataclass
class ContainerView:
    """What the agent knows about one container."""

    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str | None = None
    terminated: Terminated | None = None
    last_terminated: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_api(self, init: bool = False) -> dict[str, Any]:
        state: dict[str, Any]
        if self.state == "running":
            state = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated" and self.terminated is not None:
            state = {"terminated": self.terminated.to_api()}
        else:
            waiting: dict[str, Any] = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": f"local://{self.image}",
            "containerID": f"fulcrum-local://{self.pid}" if self.pid else "",
            "restartCount": self.restart_count,
            "ready": self.ready,
            "started": self.state == "running" and self.started,
            "state": state,
            "lastState": {"terminated": self.last_terminated.to_api()} if self.last_terminated else {},
        }
        if not out["containerID"]:
            del out["containerID"]
        return out


def phase(restart_policy: str, init: list[ContainerView], main: list[ContainerView], init_failed: bool) -> str:
    if init_failed:
        return "Failed"
    if any(c.state != "terminated" or (c.terminated and c.terminated.exit_code != 0) for c in init):
        return "Pending"
    if any(c.state == "running" for c in main):
        return "Running"
    if main and all(c.state == "terminated" for c in main):
        if restart_policy == "Always":
            return "Running"
        codes = [c.terminated.exit_code if c.terminated else 1 for c in main]
        if all(code == 0 for code in codes):
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    if any(c.restart_count > 0 for c in main):
        return "Running"
    return "Pending"


def _condition(ctype: str, ok: bool, previous: dict[str, dict[str, Any]], reason: str = "") -> dict[str, Any]:
    status = "True" if ok else "False"
    old = previous.get(ctype)
    transition = (
        old["lastTransitionTime"]
        if old and old.get("status") == status and old.get("lastTransitionTime")
        else now_iso()
    )
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastTransitionTime": transition, "lastProbeTime": None}
    if not ok and reason:
        cond["reason"] = reason
    return cond


def pod_status(
    pod: dict[str, Any],
    init: list[ContainerView],
    main: list[ContainerView],
    *,
    pod_ip: str | None,
    host_ip: str,
    start_time: str,
    init_failed: bool = False,
    message: str = "",
    reason: str = "",
) -> dict[str, Any]:
    restart_policy = pod.get("spec", {}).get("restartPolicy", "Always")
    ph = phase(restart_policy, init, main, init_failed)
    previous = {c["type"]: c for c in (pod.get("status", {}) or {}).get("conditions", []) or []}
    initialized = all(c.state == "terminated" and c.terminated and c.terminated.exit_code == 0 for c in init)
    terminal = ph in ("Succeeded", "Failed")
    containers_ready = bool(main) and all(c.ready for c in main) and not terminal
    conditions = [
        _condition("PodReadyToStartContainers", pod_ip is not None and not terminal, previous),
        _condition("Initialized", initialized, previous, "ContainersNotInitialized"),
        _condition("ContainersReady", containers_ready, previous, "PodCompleted" if terminal else "ContainersNotReady"),
        _condition("Ready", containers_ready, previous, "PodCompleted" if terminal else "ContainersNotReady"),
    ]
    if "PodScheduled" in previous:
        conditions.insert(0, previous["PodScheduled"])
    status: dict[str, Any] = {
        "phase": ph,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [c.to_api() for c in main],
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
    }
    if init:
        status["initContainerStatuses"] = [c.to_api(init=True) for c in init]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    return status

"""One thread per pod bound to ``local-0``: sandbox, volumes, containers, probes, status, deletion."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fulcrum.dev.agent import images, podspec, probes, volumes
from fulcrum.dev.agent.runtime import ContainerProcess, LaunchSpec, run_to_exit
from fulcrum.dev.agent.status import ContainerView, Terminated, now_iso, pod_status
from fulcrum.dev.network import NetworkError, PodNet
from fulcrum.dev.rest import ApiError, Rest

log = logging.getLogger("fulcrum.dev.agent")

TICK = 0.2
MAX_BACKOFF = 30.0
HOST_IP = "127.0.0.1"


@dataclass
class WorkerContext:
    rest: Rest
    pods_dir: Path
    logs_dir: Path
    python: str
    venv_bin: str
    base_env: dict[str, str]
    lookups: volumes.VolumeLookups
    acquire_net: Callable[[dict[str, Any]], PodNet]
    release_net: Callable[[str], None]


@dataclass
class Slot:
    """A container of the pod with its process and probe state."""

    spec: dict[str, Any]
    view: ContainerView
    init: bool = False
    proc: ContainerProcess | None = None
    finished: bool = False
    next_start: float = 0.0
    backoff: float = 1.0
    readiness: probes.ProbeState | None = None
    liveness: probes.ProbeState | None = None
    startup: probes.ProbeState | None = None
    termination_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    net_wrap: Callable[[list[str]], list[str]] | None = None


def _pre_stop_sleep(container: dict[str, Any]) -> float:
    """Seconds of a container's ``lifecycle.preStop.sleep`` hook (0 without one)."""
    hook = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
    return float(hook.get("seconds", 0) or 0)


def _deleting(pod: dict[str, Any]) -> bool:
    return bool(pod.get("metadata", {}).get("deletionTimestamp"))


class PodWorker(threading.Thread):
    def __init__(self, ctx: WorkerContext, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.ctx = ctx
        self.uid: str = meta["uid"]
        self.ns: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self._pod = pod
        self._lock = threading.Lock()
        self._removed = threading.Event()
        self._shutdown = threading.Event()
        self.done = threading.Event()
        self.pod_dir = ctx.pods_dir / self.uid
        self.log_dir = ctx.logs_dir / "pods" / f"{self.ns}_{self.pod_name}_{self.uid}"
        self.net: PodNet | None = None
        self.slots: list[Slot] = []
        self.init_slots: list[Slot] = []
        self.init_failed = False
        self.last_status: dict[str, Any] | None = None
        self.message = ""
        self.start_time = pod.get("status", {}).get("startTime") or now_iso()

    # -- inputs from the sync loop -------------------------------------------------------------------------
    def update(self, pod: dict[str, Any]) -> None:
        with self._lock:
            self._pod = pod

    def removed(self) -> None:
        """The pod is gone from the API (force deleted): stop everything."""
        self._removed.set()

    def shutdown(self) -> None:
        """The agent stops: kill processes quickly, leave the API alone."""
        self._shutdown.set()

    @property
    def pod(self) -> dict[str, Any]:
        with self._lock:
            return self._pod

    # -- main loop -----------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s: worker failed", self.ns, self.pod_name)
            self._stop_all(0)
        finally:
            if self.net is not None:
                self.ctx.release_net(self.uid)
                self.net = None
            self.done.set()

    def _run(self) -> None:
        pod = self.pod
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            # finished before this agent started: nothing to run, only the final delete
            self._wait_deleted()
            return
        spec = pod["spec"]
        self.init_slots = [
            Slot(c, ContainerView(c["name"], c.get("image", ""), reason="PodInitializing"), init=True)
            for c in spec.get("initContainers", []) or []
        ]
        self.slots = [
            Slot(
                c,
                ContainerView(
                    c["name"], c.get("image", ""), reason="PodInitializing" if self.init_slots else "ContainerCreating"
                ),
            )
            for c in spec.get("containers", []) or []
        ]
        vols: dict[str, Path] | None = None
        while not self._stopping():
            pod = self.pod
            if _deleting(pod):
                self._terminate(pod)
                return
            if self.net is None:
                try:
                    self.net = self.ctx.acquire_net(pod)
                    self.message = ""
                except NetworkError as exc:
                    self.message = f"pod sandbox: {exc}"
            if self.net is not None and vols is None:
                try:
                    self.pod_dir.mkdir(parents=True, exist_ok=True)
                    vols = volumes.materialise(pod, self.pod_dir, self.ctx.lookups, self.net.ip)
                    self.message = ""
                except (podspec.SpecError, ApiError, OSError) as exc:
                    self.message = f"volumes: {exc}"
            if self.net is not None and vols is not None:
                self._step(pod, vols)
            self._push_status(pod)
            if self._terminal() and self.net is not None:
                self._stop_all(0)
                self.ctx.release_net(self.uid)
                self.net = None
            time.sleep(TICK)
        self._stop_all(0 if self._shutdown.is_set() else 2)

    def _stopping(self) -> bool:
        return self._removed.is_set() or self._shutdown.is_set()

    def _wait_deleted(self) -> None:
        while not self._stopping():
            if _deleting(self.pod):
                self._final_delete()
                return
            time.sleep(0.5)

    def _terminal(self) -> bool:
        return self.last_status is not None and self.last_status.get("phase") in ("Succeeded", "Failed")

    # -- containers ----------------------------------------------------------------------------------------
    def _step(self, pod: dict[str, Any], vols: dict[str, Path]) -> None:
        now = time.monotonic()
        if self.init_failed or self._terminal():
            return
        pending_init = [s for s in self.init_slots if not s.finished]
        if pending_init:
            slot = pending_init[0]
            self._advance(pod, vols, slot, now)
            return
        for slot in self.slots:
            self._advance(pod, vols, slot, now)
            if slot.proc is not None:
                self._probe(slot, now)

    def _advance(self, pod: dict[str, Any], vols: dict[str, Path], slot: Slot, now: float) -> None:
        if slot.finished:
            return
        if slot.proc is None:
            if now >= slot.next_start:
                self._start(pod, vols, slot)
            return
        code = slot.proc.poll()
        if code is None:
            return
        self._record_exit(slot, code)
        policy = pod["spec"].get("restartPolicy", "Always")
        if slot.init:
            restart = code != 0 and policy != "Never"
            if code == 0:
                slot.finished = True
            elif not restart:
                slot.finished = True
                self.init_failed = True
        else:
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            if not restart:
                slot.finished = True
        if restart:
            ran = time.monotonic() - slot.view.extra.get("started_mono", now)
            if ran > 60:
                slot.backoff = 1.0
            slot.next_start = time.monotonic() + slot.backoff
            slot.backoff = min(slot.backoff * 2, MAX_BACKOFF)
            slot.view.last_terminated = slot.view.terminated
            slot.view.restart_count += 1
            slot.view.state = "waiting"
            slot.view.reason = "CrashLoopBackOff"
            slot.view.message = f"back-off restarting failed container {slot.view.name}"

    def _record_exit(self, slot: Slot, code: int) -> None:
        assert slot.proc is not None
        file_text = None
        if slot.termination_file is not None and slot.termination_file.exists():
            file_text = slot.termination_file.read_text(errors="replace")
        tail = ""
        if slot.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and code != 0:
            tail = slot.proc.log.read_text(errors="replace")[-16384:]
        message = podspec.termination_message(file_text, tail, code, slot.spec.get("terminationMessagePolicy"))
        slot.view.terminated = Terminated(
            exit_code=code,
            reason="Completed" if code == 0 else "Error",
            message=message,
            started_at=slot.view.started_at,
            finished_at=now_iso(),
            signal=code - 128 if code > 128 else None,
        )
        slot.view.state = "terminated"
        slot.view.ready = False
        slot.view.started = False
        slot.proc = None
        slot.readiness = slot.liveness = slot.startup = None

    def _start(self, pod: dict[str, Any], vols: dict[str, Path], slot: Slot) -> None:
        assert self.net is not None
        container = slot.spec
        name = container["name"]
        cdir = self.pod_dir / "containers" / name
        cdir.mkdir(parents=True, exist_ok=True)
        term_file = cdir / "termination-log"
        try:
            env = podspec.container_env(pod, container, self.ctx.lookups.objects, self.net.ip, HOST_IP)
            mapping = volumes.mounts(container, vols)
            mapping[podspec.termination_path(container)] = str(term_file)
            rewrite = podspec.path_rewriter(mapping)
            env = {k: rewrite(v) for k, v in env.items()}
            command = [rewrite(podspec.expand(a, env)) for a in container.get("command", []) or []]
            args = [rewrite(podspec.expand(a, env)) for a in container.get("args", []) or []]
            local = images.local_command(container.get("image", ""), command, args, self.ctx.python, self.ctx.venv_bin)
        except (podspec.SpecError, images.NoLocalCommandError, ApiError) as exc:
            slot.view.state = "waiting"
            slot.view.reason = "CreateContainerConfigError"
            slot.view.message = str(exc)
            slot.next_start = time.monotonic() + 2
            return
        full_env = dict(self.ctx.base_env)
        full_env.update(
            {"HOSTNAME": self.pod_name, podspec.TERMINATION_ENV: str(term_file), "FULCRUM_POD_DIR": str(self.pod_dir)}
        )
        full_env.update(env)
        full_env = images.with_path(full_env, local.path_prefix)
        working_dir = container.get("workingDir")
        cwd = rewrite(working_dir) if working_dir else str(cdir / "work")
        if working_dir and cwd == working_dir and not Path(cwd).is_dir():
            cwd = str(cdir / "work" / working_dir.lstrip("/"))
        term_file.write_text("")
        restart = slot.view.restart_count
        spec = LaunchSpec(self.net.wrap(local.argv), full_env, cwd, self.log_dir / name / f"{restart}.log")
        try:
            slot.proc = ContainerProcess(spec)
        except OSError as exc:
            slot.view.state = "waiting"
            slot.view.reason = "RunContainerError"
            slot.view.message = f"cannot start {local.argv[0]!r}: {exc}"
            slot.next_start = time.monotonic() + slot.backoff
            slot.backoff = min(slot.backoff * 2, MAX_BACKOFF)
            return
        slot.termination_file = term_file
        slot.env, slot.cwd, slot.net_wrap = full_env, cwd, self.net.wrap
        slot.view.state = "running"
        slot.view.reason = ""
        slot.view.message = ""
        slot.view.started_at = now_iso()
        slot.view.extra["started_mono"] = time.monotonic()
        slot.view.pid = slot.proc.pid
        slot.view.terminated = None
        for attr in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = container.get(attr)
            state = None
            if probe and not slot.init:
                timing = probes.ProbeTiming.from_spec(probe)
                state = probes.ProbeState(timing, initially=attr == "livenessProbe")
                state.next_at = time.monotonic() + timing.initial_delay
            setattr(
                slot,
                {"readinessProbe": "readiness", "livenessProbe": "liveness", "startupProbe": "startup"}[attr],
                state,
            )
        slot.view.started = slot.startup is None
        slot.view.ready = slot.readiness is None and slot.startup is None

    def _probe(self, slot: Slot, now: float) -> None:
        assert self.net is not None
        container = slot.spec
        ip = self.net.ip

        def exec_runner(argv: list[str], timeout: float) -> int:
            wrap = slot.net_wrap or (lambda a: a)
            return run_to_exit(wrap(argv), slot.env, slot.cwd, timeout)

        def due(state: probes.ProbeState | None) -> bool:
            return state is not None and now >= state.next_at

        if slot.startup is not None and not slot.view.started:
            if due(slot.startup):
                ok = probes.run_probe(container["startupProbe"], container, ip, exec_runner)
                slot.startup.next_at = now + slot.startup.timing.period
                if slot.startup.record(ok):
                    slot.view.started = True
                    slot.view.ready = slot.readiness is None
                elif slot.startup.failures >= slot.startup.timing.failure_threshold:
                    self._kill_for_restart(slot, "startup probe failed")
            return
        if due(slot.liveness):
            assert slot.liveness is not None
            alive = slot.liveness.record(probes.run_probe(container["livenessProbe"], container, ip, exec_runner))
            slot.liveness.next_at = now + slot.liveness.timing.period
            if not alive:
                self._kill_for_restart(slot, "liveness probe failed")
                return
        if due(slot.readiness):
            assert slot.readiness is not None
            slot.view.ready = slot.readiness.record(
                probes.run_probe(container["readinessProbe"], container, ip, exec_runner)
            )
            slot.readiness.next_at = now + slot.readiness.timing.period

    def _kill_for_restart(self, slot: Slot, why: str) -> None:
        log.info("pod %s/%s container %s: %s, restarting", self.ns, self.pod_name, slot.view.name, why)
        if slot.proc is not None:
            grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30) or 0)
            slot.proc.stop(min(grace, 10.0))

    # -- status and deletion -------------------------------------------------------------------------------
    def _push_status(self, pod: dict[str, Any]) -> None:
        if self.net is None and self.last_status is None and not self.message:
            return
        basis = {"spec": pod["spec"], "status": dict(pod.get("status") or {})}
        if self.last_status is not None:
            scheduled = [c for c in basis["status"].get("conditions", []) or [] if c.get("type") == "PodScheduled"]
            basis["status"]["conditions"] = scheduled + self.last_status.get("conditions", [])
        ip = self.net.ip if self.net else (self.last_status or {}).get("podIP")
        status = pod_status(
            basis,
            [s.view for s in self.init_slots],
            [s.view for s in self.slots],
            pod_ip=ip,
            host_ip=HOST_IP,
            start_time=self.start_time,
            init_failed=self.init_failed,
            message=self.message,
        )
        if status == self.last_status:
            return
        try:
            self.ctx.rest.patch(f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}/status", {"status": status})
            self.last_status = status
        except ApiError as exc:
            if exc.status == 404:
                self._removed.set()
            else:
                log.warning("pod %s/%s: status update failed: %s", self.ns, self.pod_name, exc)
        except OSError as exc:
            log.warning("pod %s/%s: status update failed: %s", self.ns, self.pod_name, exc)

    def _stop_all(self, grace: float) -> None:
        live = [s for s in (*self.init_slots, *self.slots) if s.proc is not None]
        for slot in live:
            assert slot.proc is not None
            slot.proc.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(s.proc is not None and s.proc.poll() is None for s in live):
            time.sleep(0.05)
        for slot in live:
            if slot.proc is not None:
                code = slot.proc.stop(0)
                self._record_exit(slot, code)

    def _terminate(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        grace = float(grace or 0)
        # preStop sleep hooks (the only kind this node runs) take their time out of the grace period, as a kubelet's
        running = [s for s in self.slots if s.proc is not None and s.proc.poll() is None]
        pause = max((_pre_stop_sleep(s.spec) for s in running), default=0.0)
        if pause > 0:
            started = time.monotonic()
            self._shutdown.wait(min(pause, grace))
            grace = max(0.0, grace - (time.monotonic() - started))
        self._stop_all(grace)
        for slot in self.slots:
            slot.finished = True
        self._push_status(pod)
        self._final_delete()

    def _final_delete(self) -> None:
        """Remove the pod object once its processes are gone (kubelet's grace-period-0 delete)."""
        if self.net is not None:
            self.ctx.release_net(self.uid)
            self.net = None
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        while not self._shutdown.is_set():
            try:
                self.ctx.rest.delete(f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}", body)
                break
            except ApiError as exc:
                if exc.status in (404, 409):
                    break
                log.warning("pod %s/%s: final delete failed: %s", self.ns, self.pod_name, exc)
            except OSError as exc:
                log.warning("pod %s/%s: final delete failed: %s", self.ns, self.pod_name, exc)
            time.sleep(1)
        self._removed.set()

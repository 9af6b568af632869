"""The operator process: watches feeding the cache, leader election, workers, health endpoints, a clean stop.

1. Every replica lists and watches what it needs (``fulcrum.handlers.WATCHES``) into its cache; ``/readyz`` turns
   200 once every watch has listed, so a rolling update waits for the new replica's cache.
2. With leader election on, a replica then waits for the Lease (a standby keeps its cache warm meanwhile). Only
   the leader runs workers, control ticks, the resync and garbage collection: nothing is reconciled before the
   cache has listed, and two replicas never act at once.
3. The leader enqueues every ModelDeployment, then every change of an object enqueues the ModelDeployments it
   concerns; ``workers`` coroutines reconcile from the queue.
4. SIGTERM stops the workers first, then releases the Lease (the standby takes over within a retry period), then
   closes the watches. A leader that cannot renew its Lease stops acting and exits non-zero, so its pod restarts
   as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import start_http_server

from fulcrum.controller import telemetry
from fulcrum.controller.cache import Body, Key
from fulcrum.controller.collector import BuildCollector, collector_store
from fulcrum.controller.informer import Informer
from fulcrum.controller.kube import KubeError
from fulcrum.controller.leader import LeaderElectionConfig, LeaderElector
from fulcrum.controller.metrics_server import KubeAuthorizer, SecureMetricsServer
from fulcrum.controller.queue import WorkQueue
from fulcrum.controller.reconciler import Reconciler
from fulcrum.handlers import WATCHES, keys_for

log = logging.getLogger("fulcrum")

NAMESPACE_GONE_RETRY = 60.0
"""Seconds before a ModelDeployment whose namespace is being deleted is reconciled again (unless an event comes
first, or its deletion drops it)."""


@dataclass(frozen=True)
class ManagerOptions:
    namespaces: tuple[str, ...] = ()
    """Namespaces whose ModelDeployments are served; empty: all."""
    workers: int = 8
    health: str = "http://0.0.0.0:8080/healthz"
    """Liveness URL; ``/readyz`` on the same port is the readiness endpoint."""
    metrics_port: int = 0
    metrics_address: str = "0.0.0.0"  # noqa: S104 - in a pod: the pod's own network
    metrics_secure: bool = False
    """``/metrics`` over HTTPS for clients allowed to ``get /metrics`` (TokenReview + SubjectAccessReview)."""
    metrics_cert_dir: Path | None = None
    resync_seconds: float = 300.0
    gc_seconds: float = 600.0
    build_retention_seconds: float = 7 * 86400.0
    leader_election: LeaderElectionConfig | None = None


class Manager:
    def __init__(self, reconciler: Reconciler, options: ManagerOptions) -> None:
        self.reconciler = reconciler
        self.kube = reconciler.kube
        self.cache = reconciler.cache
        self.options = options
        self.queue: WorkQueue[Key] = WorkQueue()
        self.informers = self._informers()
        self.elector = None if options.leader_election is None else LeaderElector(self.kube, options.leader_election)
        settings = reconciler.settings
        self.collector = BuildCollector(
            self.kube, self.cache, settings, options.build_retention_seconds, collector_store(settings)
        )
        self.leading = False
        self.stopping = asyncio.Event()
        self.errors = 0
        self._informer_tasks: list[asyncio.Task[None]] = []
        self._leader_tasks: list[asyncio.Task[None]] = []

    def _informers(self) -> list[Informer]:
        informers = []
        build_namespace = self.reconciler.settings.build_namespace
        for watch in WATCHES:
            namespaces: list[str | None] = []
            if watch.in_models:
                namespaces += list(self.options.namespaces) or [None]
            if watch.in_builds and None not in namespaces and build_namespace not in namespaces:
                namespaces.append(build_namespace)
            informers += [
                Informer(self.kube, self.cache, watch.kind, ns, self._on_change, label_selector=watch.label_selector)
                for ns in namespaces
            ]
        return informers

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers)

    # --- events ---------------------------------------------------------------------------------------------------

    def _on_change(self, kind: str, old: Body | None, new: Body | None) -> None:
        if not self.leading:
            return  # a standby only keeps its cache; the leader enqueues everything when it starts
        for key in keys_for(kind, old, new, self.cache, self.reconciler.builders):
            if kind == "ModelDeployment" and new is None:
                self.queue.drop(key)
            self.queue.add(key)

    async def _reconcile(self, key: Key) -> float | None:
        with telemetry.RECONCILE_SECONDS.time():
            return await self.reconciler.reconcile(key)

    def _on_error(self, key: Key, exc: Exception) -> float | None:
        self.errors += 1
        telemetry.RECONCILE_ERRORS.inc()
        if isinstance(exc, KubeError) and exc.conflict:
            log.info("reconciling %s/%s: %s; again shortly", key[0], key[1], exc)
            return 1.0
        if isinstance(exc, KubeError) and exc.namespace_terminating:
            # every child deleted with the namespace is an event that reconciles the key again: without this, one
            # warning per event while the namespace goes away, for an object that goes with it
            log.info(
                "reconciling %s/%s: its namespace is being deleted; looking again in %.0f s", *key, NAMESPACE_GONE_RETRY
            )
            return NAMESPACE_GONE_RETRY
        log.warning("reconciling %s/%s failed (will retry with backoff): %s", key[0], key[1], exc)
        return None

    # --- the process ----------------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (exit code 0) or until leadership is lost (1)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        health = await self._serve_health()
        metrics_server = await self._serve_metrics()
        telemetry.LEADER.set(0)  # 1 only while this replica leads (see _lead and _shutdown)
        telemetry.track_queue(lambda: len(self.queue))
        lost = False
        try:
            await self.kube.ensure_namespace(self.reconciler.settings.build_namespace)
            self._informer_tasks = [asyncio.create_task(i.run(), name=repr(i)) for i in self.informers]
            if not await self._until(self._all_synced()):
                return 0
            log.info(
                "cache synced: %d watches, %d ModelDeployments",
                len(self.informers),
                self.cache.count("ModelDeployment"),
            )
            if self.elector is not None and not await self._until(self.elector.acquire()):
                return 0
            self._lead()
            if self.elector is None:
                await self.stopping.wait()
            else:
                lost = await self._until(self.elector.hold())  # hold() returns only when leadership is lost
            return 1 if lost else 0
        finally:
            await self._shutdown(release=not lost)
            await health.cleanup()
            if metrics_server is not None:
                await metrics_server.stop()

    async def _until(self, work: Awaitable[None]) -> bool:
        """Run ``work`` until it is done (True) or the process is asked to stop first (False)."""
        task = asyncio.ensure_future(work)
        stop = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        for pending in (task, stop):
            if pending not in done:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
        if task in done:
            task.result()
            return True
        return False

    async def _all_synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.informers))

    def _lead(self) -> None:
        self.leading = True
        telemetry.LEADER.set(1)
        for key in self.cache.keys("ModelDeployment"):
            self.queue.add(key)
        log.info("leading: reconciling %d ModelDeployments", len(self.queue))
        self._leader_tasks = [
            asyncio.create_task(self.queue.run_worker(self._reconcile, self._on_error), name=f"worker-{n}")
            for n in range(self.options.workers)
        ]
        self._leader_tasks += [
            asyncio.create_task(self._every(self.options.resync_seconds, self._resync), name="resync"),
            asyncio.create_task(self._every(self.options.gc_seconds, self._collect), name="gc"),
        ]

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s failed: %s", job.__name__, exc)

    async def _collect(self) -> None:
        await self.collector.collect()

    async def _resync(self) -> None:
        """A safety net for a missed event: every object without a look already scheduled (a tick, a retry)."""
        for key in self.cache.keys("ModelDeployment"):
            if self.queue.pending(key) is None:
                self.queue.add(key)

    async def _shutdown(self, *, release: bool) -> None:
        self.leading = False
        telemetry.LEADER.set(0)
        await _cancel(self._leader_tasks)  # nothing acts on the Lease's behalf any more...
        self.queue.close()
        if self.elector is not None and release:
            await self.elector.release()  # ...before the standby may take it at once
        await _cancel(self._informer_tasks)
        await self.kube.close()
        if self.reconciler.metrics is not None:
            await self.reconciler.metrics.close()

    async def _serve_metrics(self) -> SecureMetricsServer | None:
        """Start ``/metrics`` (plain HTTP, or HTTPS for authorized clients); the secure server, to stop it later."""
        options = self.options
        if not options.metrics_port:
            return None
        if not options.metrics_secure:
            start_http_server(options.metrics_port, addr=options.metrics_address)
            return None
        kube = self.kube
        server = SecureMetricsServer(
            KubeAuthorizer(lambda path, body: kube.request("POST", path, body=body)),
            options.metrics_address,
            options.metrics_port,
            options.metrics_cert_dir,
        )
        await server.start()
        return server

    async def _serve_health(self) -> web.AppRunner:
        url = urlsplit(self.options.health)
        app = web.Application()
        app.router.add_get(url.path or "/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, url.hostname or "0.0.0.0", url.port or 8080).start()  # noqa: S104
        return runner

    async def _healthz(self, _request: web.Request) -> web.Response:
        broken = [t.get_name() for t in self._informer_tasks if t.done() and not t.cancelled()]
        if broken:
            return web.json_response({"ok": False, "stopped watches": broken}, status=500)
        return web.json_response({"ok": True, "leading": self.leading, "queue": len(self.queue)})

    async def _readyz(self, _request: web.Request) -> web.Response:
        waiting = [repr(i) for i in self.informers if not i.synced.is_set()]
        if waiting:
            return web.json_response({"ready": False, "waiting for": waiting}, status=503)
        return web.json_response({"ready": True, "leading": self.leading})


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    tasks.clear()

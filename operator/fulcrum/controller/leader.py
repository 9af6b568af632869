"""Leader election on a ``coordination.k8s.io/v1`` Lease, with the semantics of client-go's ``leaderelection``.

Every replica runs the same loop; the Lease names the holder:

- A candidate reads the Lease every ``retry_period`` (x 1.0-1.2 jitter). It takes the Lease when nobody holds it,
  or when the record it has seen has not changed for ``lease_duration`` *by its own monotonic clock*: expiry is
  never judged from the holder's timestamps, so clock skew between nodes does not matter, only clock rates.
- Taking or renewing is an update carrying the Lease's ``resourceVersion``: of two candidates that saw the same
  expired record only one update succeeds, the other gets 409 and stays a candidate.
- The leader renews every ``retry_period``; if it has not renewed for ``renew_deadline`` (the API unreachable,
  the process starved) it has lost: it must stop acting before ``lease_duration`` has passed for the others.
- On a clean shutdown the leader first stops its work, then releases the Lease (empty holder, duration 1 s), so
  a standby takes over within a retry period instead of a lease duration.

Constraints (as client-go checks them): ``lease_duration > renew_deadline > retry_period x 1.2``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from fulcrum.controller.kube import KubeClient, KubeError

log = logging.getLogger("fulcrum.leader")

JITTER = 1.2
DEFAULT_LEASE_NAME = "fulcrum-operator"


def micro_time(seconds: float | None = None) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    moment = datetime.now(UTC) if seconds is None else datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaderElectionConfig:
    namespace: str
    identity: str
    name: str = DEFAULT_LEASE_NAME
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs a non-empty identity")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(
                f"--leader-elect-lease-duration ({self.lease_duration:g} s) must be longer than "
                f"--leader-elect-renew-deadline ({self.renew_deadline:g} s)"
            )
        if self.renew_deadline <= self.retry_period * JITTER:
            raise ValueError(
                f"--leader-elect-renew-deadline ({self.renew_deadline:g} s) must be longer than "
                f"{JITTER} x --leader-elect-retry-period ({self.retry_period:g} s)"
            )
        if self.lease_duration < 1 or self.retry_period <= 0:
            raise ValueError("--leader-elect-lease-duration must be >= 1 s and the retry period positive")


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    lease_duration_seconds: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


class LeaderElector:
    def __init__(
        self,
        kube: KubeClient,
        config: LeaderElectionConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], str] = micro_time,
        on_new_leader: Callable[[str], None] | None = None,
    ) -> None:
        self.kube = kube
        self.config = config
        self.clock = clock
        self.wall = wall
        self.on_new_leader = on_new_leader
        self.observed: LeaseRecord | None = None
        self.observed_at = 0.0  # our clock when the observed record last changed
        self._lease: dict[str, Any] | None = None  # the Lease object last read or written (its resourceVersion)
        self._reported = ""

    # --- state -------------------------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.observed is not None and self.observed.holder == self.config.identity

    @property
    def leader(self) -> str:
        """The holder last observed ('' when none)."""
        return "" if self.observed is None else self.observed.holder

    def _lease_valid(self) -> bool:
        if self.observed is None:
            return False
        return self.observed_at + self.observed.lease_duration_seconds > self.clock()

    def _observe(self, record: LeaseRecord, lease: dict[str, Any] | None) -> None:
        if record != self.observed:
            self.observed = record
            self.observed_at = self.clock()
        self._lease = lease
        if record.holder != self._reported:
            self._reported = record.holder
            if self.on_new_leader is not None:
                self.on_new_leader(record.holder)

    # --- one attempt ---------------------------------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """Take or renew the Lease once; True when this replica holds it afterwards."""
        now = self.wall()
        mine = LeaseRecord(self.config.identity, int(self.config.lease_duration), now, now, 0)
        # 1. the leader's fast path: update the record it wrote last, assuming nobody changed it
        if self.is_leader and self._lease_valid() and self._lease is not None and self.observed is not None:
            renewed = LeaseRecord(
                mine.holder, mine.lease_duration_seconds, self.observed.acquire_time, now, self.observed.transitions
            )
            try:
                self._observe(renewed, await self._write(renewed, self._lease))
                return True
            except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("renewing the Lease failed (%s); reading it again", exc)
        # 2. read (or create) the Lease
        try:
            lease = await self.kube.get("Lease", self.config.namespace, self.config.name)
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("reading Lease %s/%s failed: %s", self.config.namespace, self.config.name, exc)
            return False
        if lease is None:
            try:
                created = await self.kube.create(self._manifest(mine, None))
            except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("creating Lease %s/%s failed: %s", self.config.namespace, self.config.name, exc)
                return False
            if created is None:
                return False  # another candidate created it first
            self._observe(mine, created)
            return True
        # 3. held by someone else and not expired by our clock: wait
        record = LeaseRecord.from_lease(lease)
        self._observe(record, lease)
        if record.holder and self._lease_valid() and not self.is_leader:
            return False
        # 4. take it over (or renew through the slow path)
        if self.is_leader:
            taken = LeaseRecord(mine.holder, mine.lease_duration_seconds, record.acquire_time, now, record.transitions)
        else:
            taken = LeaseRecord(mine.holder, mine.lease_duration_seconds, now, now, record.transitions + 1)
        try:
            self._observe(taken, await self._write(taken, lease))
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("taking Lease %s/%s failed: %s", self.config.namespace, self.config.name, exc)
            return False
        return True

    def _manifest(self, record: LeaseRecord, lease: dict[str, Any] | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.config.name, "namespace": self.config.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": record.to_spec(),
        }

    async def _write(self, record: LeaseRecord, lease: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.wait_for(
            self.kube.update(self._manifest(record, lease)), timeout=self.config.renew_deadline
        )

    # --- loops ---------------------------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Return once this replica leads (keeps trying every retry period)."""
        log.info(
            "waiting to lead (Lease %s/%s, identity %s)", self.config.namespace, self.config.name, self.config.identity
        )
        while not await self._attempt():
            await asyncio.sleep(self.config.retry_period * random.uniform(1.0, JITTER))  # noqa: S311
        log.info("leading (Lease %s/%s)", self.config.namespace, self.config.name)

    async def _attempt(self) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout=self.config.renew_deadline)
        except TimeoutError:
            return False

    async def hold(self) -> None:
        """Renew every retry period; return when leadership is lost (no renewal for ``renew_deadline``)."""
        while True:
            await asyncio.sleep(self.config.retry_period)
            deadline = self.clock() + self.config.renew_deadline
            while not await self._attempt():
                if not self.is_leader:
                    log.error("the Lease is held by %s now", self.leader or "nobody")
                    return
                if self.clock() + self.config.retry_period >= deadline:
                    log.error("could not renew the Lease for %.0f s: stepping down", self.config.renew_deadline)
                    self.observed = None
                    return
                await asyncio.sleep(self.config.retry_period)

    async def release(self) -> None:
        """Give the Lease up at once (after this replica stopped acting on it)."""
        if not self.is_leader or self._lease is None or self.observed is None:
            return
        now = self.wall()
        released = LeaseRecord("", 1, now, now, self.observed.transitions)
        try:
            self._observe(released, await self._write(released, self._lease))
            log.info("released Lease %s/%s", self.config.namespace, self.config.name)
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("releasing the Lease failed (%s); it expires after %.0f s", exc, self.config.lease_duration)

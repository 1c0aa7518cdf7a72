"""Leader election on a coordination.k8s.io/v1 Lease: client-go's algorithm, Flux's defaults.

client-go (``tools/leaderelection``) semantics, which Flux gets through controller-runtime:

- A candidate tries every ``retry_period`` (stretched by a random fraction of up to 1.2 of itself)
  to acquire the Lease: create it if missing; otherwise take it over only when it has no holder or
  when the record has not changed for the record's ``leaseDurationSeconds`` *as measured on this
  candidate's own clock* since it last saw it change. Timestamps in the Lease are never compared
  with the local clock, so clock skew between nodes cannot hand out two leases.
- Every write is a PUT carrying the resourceVersion that was read, so two candidates racing for
  an expired Lease cannot both win: the loser gets 409 Conflict.
- The leader renews every ``retry_period``. A renewal that keeps failing for ``renew_deadline``
  ends the leadership: ``on_started_leading``'s task is cancelled and ``on_stopped_leading`` runs.
  Flux's controllers exit at that point; here ``run()`` returns and the caller decides.
- Taking over increments ``leaseTransitions``; renewing keeps ``acquireTime``.
- With ``release_on_cancel`` (Flux's ``--leader-election-release-on-cancel`` defaults to true) a
  graceful stop first waits for the leading task to end, then writes an empty holder with
  ``leaseDurationSeconds: 1``, so a standby takes over at its next retry instead of waiting out
  the lease.

Flux's flags default to lease 35s, renew deadline 30s, retry 5s; the Lease is named
``<controller>-leader-election`` (:func:`lease_name`) in the controller's namespace, and
controller-runtime's identity is ``<hostname>_<uuid>`` (:func:`default_identity`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from tidal.kube.client import ApiError, Kube

DEFAULT_LEASE_DURATION = 35.0
DEFAULT_RENEW_DEADLINE = 30.0
DEFAULT_RETRY_PERIOD = 5.0
JITTER_FACTOR = 1.2

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

log = logging.getLogger(__name__)


def lease_name(controller: str) -> str:
    """Flux's leader election ID for a controller, e.g. ``source-controller-leader-election``."""
    return f"{controller}-leader-election"


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def micro_time(moment: datetime) -> str:
    """metav1.MicroTime's wire format: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LeaderElectionRecord:
    """The Lease spec fields leader election reads and writes."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str = ""
    renew_time: str = ""
    leader_transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LeaderElectionRecord:
        return cls(
            holder_identity=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            leader_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.leader_transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


class LeaderElector:
    """One candidate for one Lease. ``await run()`` (returns when leadership ends or the task is
    cancelled), or ``start()``/``await stop()``, or ``async with``.

    ``on_started_leading`` is an async callable run as a task while this candidate leads, and
    cancelled (and awaited) before leadership is given up. ``on_stopped_leading`` (sync or async)
    runs once after leading ends (client-go also calls it when a candidate that never led is
    stopped; here it means "was leading"); ``on_new_leader(identity)`` whenever a new holder is
    seen, this candidate included.
    """

    def __init__(
        self,
        kube: Kube,
        *,
        name: str,
        namespace: str,
        identity: str | None = None,
        lease_duration: float = DEFAULT_LEASE_DURATION,
        renew_deadline: float = DEFAULT_RENEW_DEADLINE,
        retry_period: float = DEFAULT_RETRY_PERIOD,
        release_on_cancel: bool = True,
        on_started_leading: Callable[[], Awaitable[object]] | None = None,
        on_stopped_leading: Callable[[], object] | None = None,
        on_new_leader: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_duration <= renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if renew_deadline <= JITTER_FACTOR * retry_period:
            raise ValueError("renew_deadline must be greater than retry_period * 1.2")
        if retry_period <= 0 or lease_duration < 1:
            raise ValueError("retry_period must be > 0 and lease_duration >= 1s")
        self.kube = kube
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._clock = clock
        self._rand = random.Random().random  # noqa: S311 - only spreads retries
        self._collection = LEASES.format(namespace=namespace)
        self._path = f"{self._collection}/{name}"
        self._lease: dict[str, Any] | None = None  # last Lease read or written (for its RV)
        self._observed = LeaderElectionRecord()
        self._observed_at = 0.0
        self._reported_leader = ""
        self._task: asyncio.Task[None] | None = None
        self.transitions = 0  # times this candidate became leader

    # -- state ------------------------------------------------------------------------------------

    @property
    def leader(self) -> str:
        """The holder last observed (empty if none yet)."""
        return self._observed.holder_identity

    @property
    def is_leader(self) -> bool:
        return self._observed.holder_identity == self.identity

    @property
    def observed_record(self) -> LeaderElectionRecord:
        return self._observed

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            raise RuntimeError("leader elector already running")
        self._task = asyncio.create_task(self.run(), name=f"leader election {self.name}")

    async def stop(self) -> None:
        """Cancel the election; the lease is released first if ``release_on_cancel``."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def run(self) -> None:
        await self._acquire()
        self.transitions += 1
        log.info("%s became leader of lease %s/%s", self.identity, self.namespace, self.name)
        leading = (
            asyncio.create_task(_call_leading(self._on_started), name=f"leading {self.name}")
            if self._on_started is not None
            else None
        )
        try:
            await self._renew()
            log.warning("%s lost lease %s/%s", self.identity, self.namespace, self.name)
        finally:
            if leading is not None:
                leading.cancel()
                await asyncio.gather(leading, return_exceptions=True)
            if self.release_on_cancel:
                await self._release()
            if self._on_stopped is not None:
                try:
                    result = self._on_stopped()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("on_stopped_leading raised")

    # -- the algorithm ----------------------------------------------------------------------------

    async def _acquire(self) -> None:
        while True:
            acquired = await self._try_acquire_or_renew()
            self._maybe_report_transition()
            if acquired:
                return
            await asyncio.sleep(self.retry_period * (1.0 + JITTER_FACTOR * self._rand()))

    async def _renew(self) -> None:
        """Renew every retry period; return once renewing failed for a whole renew deadline."""
        while True:
            renewed = False
            try:
                async with asyncio.timeout(self.renew_deadline):
                    while True:
                        renewed = await self._try_acquire_or_renew()
                        if renewed:
                            break
                        await asyncio.sleep(self.retry_period)
            except TimeoutError:
                pass
            self._maybe_report_transition()
            if not renewed:
                return
            await asyncio.sleep(self.retry_period)

    def _lease_valid(self, now: float) -> bool:
        return self._observed_at + self._observed.lease_duration_seconds > now

    def _observe(self, record: LeaderElectionRecord) -> None:
        self._observed = record
        self._observed_at = self._clock()

    async def _try_acquire_or_renew(self) -> bool:
        now = micro_time(datetime.now(UTC))
        desired = LeaderElectionRecord(
            holder_identity=self.identity,
            # The API field is whole seconds; sub-second test durations round up to 1.
            lease_duration_seconds=max(1, int(self.lease_duration)),
            acquire_time=now,
            renew_time=now,
        )
        # Fast path: a leader within its lease writes over the Lease it last wrote, skipping the
        # GET; a stale resourceVersion makes the PUT fail and we fall back to reading.
        if self.is_leader and self._lease_valid(self._clock()) and self._lease is not None:
            renewed = replace(
                desired,
                acquire_time=self._observed.acquire_time,
                leader_transitions=self._observed.leader_transitions,
            )
            if await self._write(renewed):
                return True

        try:
            self._lease = await self.kube.get(self._path)
        except ApiError as e:
            if e.status != 404:
                log.error("cannot read lease %s/%s: %s", self.namespace, self.name, e)
                return False
            return await self._create(desired)
        except Exception as e:
            log.error("cannot read lease %s/%s: %s", self.namespace, self.name, e)
            return False

        current = LeaderElectionRecord.from_spec(self._lease.get("spec") or {})
        if current != self._observed:
            self._observe(current)
        if current.holder_identity and self._lease_valid(self._clock()) and not self.is_leader:
            return False

        if self.is_leader:
            desired = replace(
                desired,
                acquire_time=current.acquire_time,
                leader_transitions=current.leader_transitions,
            )
        else:
            desired = replace(desired, leader_transitions=current.leader_transitions + 1)
        return await self._write(desired)

    async def _create(self, record: LeaderElectionRecord) -> bool:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.to_spec(),
        }
        try:
            self._lease = await self.kube.create(self._collection, lease)
        except Exception as e:
            log.error("cannot create lease %s/%s: %s", self.namespace, self.name, e)
            return False
        self._observe(record)
        return True

    async def _write(self, record: LeaderElectionRecord) -> bool:
        assert self._lease is not None
        lease = {**self._lease, "spec": record.to_spec()}
        try:
            self._lease = await self.kube.replace(self._path, lease)
        except Exception as e:
            log.info("cannot update lease %s/%s: %s", self.namespace, self.name, e)
            return False
        self._observe(record)
        return True

    async def _release(self) -> None:
        if not self.is_leader or self._lease is None:
            return
        now = micro_time(datetime.now(UTC))
        released = LeaderElectionRecord(
            lease_duration_seconds=1,
            acquire_time=now,
            renew_time=now,
            leader_transitions=self._observed.leader_transitions,
        )
        if await self._write(released):
            return
        # A renew cancelled mid-flight may have landed on the server after all, leaving our copy's
        # resourceVersion stale: read the Lease again and release it if it is still ours.
        try:
            self._lease = await self.kube.get(self._path)
        except Exception as e:
            log.error("failed to release lease %s/%s: %s", self.namespace, self.name, e)
            return
        holder = LeaderElectionRecord.from_spec(self._lease.get("spec") or {}).holder_identity
        if holder != self.identity:
            return
        if not await self._write(released):
            log.error("failed to release lease %s/%s", self.namespace, self.name)

    def _maybe_report_transition(self) -> None:
        holder = self._observed.holder_identity
        if holder == self._reported_leader:
            return
        self._reported_leader = holder
        if holder and self._on_new_leader is not None:
            try:
                self._on_new_leader(holder)
            except Exception:
                log.exception("on_new_leader raised")


async def _call_leading(fn: Callable[[], Awaitable[object]] | None) -> None:
    if fn is None:
        return
    try:
        await fn()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("on_started_leading raised")

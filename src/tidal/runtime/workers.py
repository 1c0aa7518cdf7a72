"""N concurrent workers (Flux's ``--concurrent``) that feed queue keys to a reconcile function.

What happens to a key after its reconcile follows controller-runtime's reconcile handler:

- error (returned, or any exception raised, which is logged with the key): ``add_rate_limited``,
  i.e. per-key exponential backoff; a requeue delay given alongside the error is ignored.
- ``requeue_after`` > 0 without error: ``forget`` then ``add_after``. A success interval is
  jittered (Flux jitters ``spec.interval``); ``Result.retry_after`` is not (Kustomization's
  ``retryInterval`` is a plain delay).
- otherwise: ``forget``; the key comes back only when something adds it.

A raising reconcile never stops its worker: one bad object must not stop a controller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tidal.runtime.jitter import IntervalJitter
from tidal.runtime.queue import QueueShutDown, WorkQueue

K = TypeVar("K", bound=Hashable)

DEFAULT_CONCURRENCY = 4
# controller-runtime's default graceful shutdown timeout; helm-controller raises it to 600s.
DEFAULT_STOP_TIMEOUT = 30.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one reconcile. Build it with the class methods."""

    requeue_after: float | None = None
    error: BaseException | str | None = None
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.requeue_after is not None and self.requeue_after < 0:
            raise ValueError(f"requeue_after must be >= 0, got {self.requeue_after}")

    @classmethod
    def success(cls, requeue_after: float | None = None) -> Result:
        """Reconciled; come back after ``requeue_after`` seconds (jittered), or only on change."""
        return cls(requeue_after=requeue_after)

    @classmethod
    def failure(cls, error: BaseException | str) -> Result:
        """Failed; retry with the queue's exponential backoff."""
        return cls(error=error)

    @classmethod
    def retry_after(cls, delay: float) -> Result:
        """Not done (e.g. failed with a fixed retryInterval): retry after exactly ``delay``."""
        return cls(requeue_after=delay, jitter=False)

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class WorkerMetrics:
    """Reconcile counters, by controller-runtime's ``controller_runtime_reconcile_*`` names.

    ``total`` is keyed by the ``result`` label of ``controller_runtime_reconcile_total``
    (success, error, requeue_after); ``errors`` and ``panics`` mirror
    ``controller_runtime_reconcile_errors_total`` and ``..._panics_total`` (here: exceptions).
    """

    success: int = 0
    error: int = 0
    requeue_after: int = 0
    errors: int = 0
    panics: int = 0

    @property
    def total(self) -> dict[str, int]:
        return {"success": self.success, "error": self.error, "requeue_after": self.requeue_after}


Reconcile = Callable[[K], Awaitable[Result]]


class Workers(Generic[K]):
    """Runs ``concurrency`` workers over ``queue``; ``start()`` them, then ``await stop()``."""

    def __init__(
        self,
        queue: WorkQueue[K],
        reconcile: Reconcile[K],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        jitter: Callable[[float], float] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.queue = queue
        self.concurrency = concurrency
        self.metrics = WorkerMetrics()
        self._reconcile = reconcile
        self._jitter = jitter if jitter is not None else IntervalJitter()
        self._log = logger if logger is not None else log
        self._tasks: list[asyncio.Task[None]] = []
        self._active: set[K] = set()

    @property
    def active(self) -> frozenset[K]:
        """Keys being reconciled right now."""
        return frozenset(self._active)

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def start(self) -> None:
        """Start the workers on the running loop."""
        if self._tasks:
            raise RuntimeError("workers already started")
        name = self.queue.name or "workqueue"
        self._tasks = [
            asyncio.create_task(self._work(), name=f"{name}-worker-{i}")
            for i in range(self.concurrency)
        ]

    async def stop(self, grace_period: float = DEFAULT_STOP_TIMEOUT) -> bool:
        """Shut the queue down, let in-flight reconciles finish for up to ``grace_period``
        seconds, then cancel the rest. True if everything finished in time."""
        self.queue.shutdown()
        tasks = [t for t in self._tasks if not t.done()]
        if not tasks:
            return True
        try:
            _, pending = await asyncio.wait(tasks, timeout=grace_period)
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            raise
        for t in pending:
            t.cancel()
        for outcome in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                self._log.error("worker failed", exc_info=outcome)
        if pending:
            self._log.warning(
                "cancelled %d reconcile(s) still running after %.1fs", len(pending), grace_period
            )
        return not pending

    async def _work(self) -> None:
        queue = self.queue
        while True:
            try:
                key = await queue.get()
            except QueueShutDown:
                return
            self._active.add(key)
            try:
                try:
                    result = await self._reconcile(key)
                    if not isinstance(result, Result):
                        # Untyped callers exist; a wrong return must cost one key, not a worker.
                        raise TypeError(f"reconcile returned {result!r}, not a Result")
                except Exception as e:
                    self.metrics.panics += 1
                    self._log.exception("reconcile of %r raised", key, extra={"key": key})
                    self._requeue(key, Result.failure(e), logged=True)
                else:
                    self._requeue(key, result, logged=False)
            finally:
                self._active.discard(key)
                queue.done(key)
            # get() does not suspend while keys are ready, and a reconcile that has nothing to do
            # (a suspended object) may not either: yield so a long queue cannot starve the loop.
            await asyncio.sleep(0)

    def _requeue(self, key: K, result: Result, *, logged: bool) -> None:
        queue = self.queue
        if result.error is not None:
            self.metrics.error += 1
            self.metrics.errors += 1
            if not logged:
                self._log.error("reconcile of %r failed: %s", key, result.error, extra={"key": key})
            queue.add_rate_limited(key)
        elif result.requeue_after:
            self.metrics.requeue_after += 1
            queue.forget(key)
            delay = self._jitter(result.requeue_after) if result.jitter else result.requeue_after
            queue.add_after(key, delay)
        else:
            self.metrics.success += 1
            queue.forget(key)

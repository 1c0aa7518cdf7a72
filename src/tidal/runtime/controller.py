"""One controller: an informer on a kind, a work queue of object keys, N workers.

Which changes wake a reconcile follows Flux's predicates for its controllers
(GenerationChangedPredicate OR ReconcileRequestedPredicate): a new object, a spec change (a new
metadata.generation), a new `reconcile.fluxcd.io/requestedAt` token, the start of deletion, and
the final delete. A status write, a label edit or a resync does not, so a controller never wakes
itself by patching its own status. Everything else comes back through the work queue's
requeue-after (spec.interval) or failure backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tidal.api.meta import RECONCILE_REQUEST_ANNOTATION
from tidal.runtime.informer import Informer, Key, Obj
from tidal.runtime.metrics import Registry
from tidal.runtime.queue import WorkQueue
from tidal.runtime.workers import Result, Workers

log = logging.getLogger(__name__)

ReconcileFn = Callable[[Obj], Awaitable[Result]]
DeletedFn = Callable[[Key], Awaitable[None]]


def _meta(obj: Obj) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def wants_reconcile(old: Obj, new: Obj) -> bool:
    """Flux's update predicates: generation changed, requestedAt changed, deletion started."""
    o, n = _meta(old), _meta(new)
    if o.get("generation") != n.get("generation"):
        return True
    old_token = (o.get("annotations") or {}).get(RECONCILE_REQUEST_ANNOTATION)
    new_token = (n.get("annotations") or {}).get(RECONCILE_REQUEST_ANNOTATION)
    if new_token is not None and new_token != old_token:
        return True
    return bool(n.get("deletionTimestamp")) and not o.get("deletionTimestamp")


class Controller:
    """Reconciles one kind. `reconcile` gets the cached object (a read-only dict) and returns
    a Result; `deleted` runs once an object has left the cluster (finalizer work is the
    reconcile's, on deletionTimestamp)."""

    def __init__(
        self,
        name: str,
        kind: str,
        informer: Informer,
        reconcile: ReconcileFn,
        *,
        metrics: Registry,
        concurrency: int = 4,
        min_retry_delay: float = 0.75,
        max_retry_delay: float = 900.0,
        jitter: Callable[[float], float] | None = None,
        deleted: DeletedFn | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.informer = informer
        self.metrics = metrics
        self._reconcile = reconcile
        self._deleted = deleted
        self._queue_observer = metrics.queue_observer(name)
        self.queue: WorkQueue[Key] = WorkQueue(
            name,
            min_delay=min_retry_delay,
            max_delay=max_retry_delay,
            observer=self._queue_observer,
        )
        self.workers: Workers[Key] = Workers(
            self.queue, self._run_one, concurrency=concurrency, jitter=jitter, logger=log
        )
        metrics.max_concurrent.labels(name).set(concurrency)
        informer.add_handler(
            on_add=self._on_add, on_update=self._on_update, on_delete=self._on_delete
        )

    # informer handlers: enqueue and return

    @staticmethod
    def key_of(obj: Obj) -> Key:
        meta = _meta(obj)
        return (str(meta.get("namespace", "")), str(meta.get("name", "")))

    def _on_add(self, obj: Obj) -> None:
        self.queue.add(self.key_of(obj))

    def _on_update(self, old: Obj, new: Obj) -> None:
        if wants_reconcile(old, new):
            self.queue.add(self.key_of(new))

    def _on_delete(self, obj: Obj) -> None:
        self.queue.add(self.key_of(obj))

    def enqueue(self, namespace: str, name: str) -> None:
        """Wake one object from outside (a watched dependency changed)."""
        self.queue.add((namespace, name))

    def sync_metrics(self) -> None:
        self._queue_observer.sync(self.queue)
        self.metrics.active_workers.labels(self.name).set(len(self.workers.active))

    async def _run_one(self, key: Key) -> Result:
        namespace, name = key
        obj = self.informer.get(namespace, name)
        if obj is None:
            self.metrics.forget_object(self.kind, name, namespace)
            if self._deleted is not None:
                await self._deleted(key)
            return Result.success()
        start = time.monotonic()
        result = Result.failure("reconcile raised")
        try:
            result = await self._reconcile(obj)
            return result
        finally:
            seconds = time.monotonic() - start
            suspended = bool((obj.get("spec") or {}).get("suspend"))
            self.metrics.observe_object(self.kind, name, namespace, seconds, suspended)
            outcome = (
                "error" if result.failed else "requeue_after" if result.requeue_after else "success"
            )
            self.metrics.observe_reconcile(self.name, outcome, seconds)

    async def start(self) -> None:
        """Start the informer, wait for its first list, then the workers."""
        if not self.informer.running:
            self.informer.start()
        await self.informer.wait_synced()
        self.workers.start()
        log.info("controller started", extra={"controller": self.name})

    async def stop(self, grace_period: float = 30.0) -> bool:
        done = await self.workers.stop(grace_period)
        await self.informer.stop()
        return done

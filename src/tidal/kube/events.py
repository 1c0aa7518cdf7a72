"""Kubernetes Events recorded the way Flux's controllers record them.

Flux's recorder (fluxcd/pkg ``runtime/events``) wraps controller-runtime's recorder, which is
client-go's ``tools/record`` broadcaster writing **core/v1** Events (events.k8s.io/v1 is only an
opt-in there). So an Event written here has:

- ``involvedObject``: apiVersion, kind, name, namespace, uid, resourceVersion of the object;
- ``type`` Normal or Warning (Flux's Trace type is written as Normal), ``reason``, ``message``;
- ``source.component`` and ``reportingComponent``: the controller name, e.g. ``source-controller``
  (controller-runtime sets no host, so ``reportingInstance`` stays empty unless ``host`` is given);
- ``metadata.annotations``: the event metadata, e.g. ``source.toolkit.fluxcd.io/revision``;
- ``metadata.name`` ``<object name>.<unix nanoseconds in hex>``, in the object's namespace
  (``default`` for cluster-scoped objects), ``count``, ``firstTimestamp``, ``lastTimestamp``.

Repeats are folded as client-go's EventCorrelator folds them, with the same defaults:

- an identical event (same source, object, type, reason and message) within the life of the
  dedup cache PATCHes ``count``, ``lastTimestamp`` (and ``message``) of the Event already written;
  if that Event is gone (Events expire after an hour) it is created again with the count carried on;
- once 10 events differing only in message arrive for one object and reason within 10 minutes,
  further ones are folded into one Event whose message starts "(combined from similar events): ";
- a token bucket per object (burst 25, refilled one per 5 minutes) drops the rest of a flood.
All three caches are LRUs of 4096 entries, so memory stays bounded however many objects exist.

Messages are cut to :data:`MAX_MESSAGE_LENGTH` characters, the limit Flux's event API declares for
the notification payload. (The API server's 1024-character ``note`` limit applies only to Events
with an ``eventTime``, i.e. events.k8s.io/v1 ones, which is why Flux stays on core/v1.)

Writes happen in one background task, in order, so ``event()`` never blocks a reconcile; a full
queue (1000 events) drops the event, like client-go. Network errors are retried (12 tries, 10 s
apart, the first randomised); an error status from the server abandons the event. Nothing raises
to the caller: failures are logged. ``await flush()`` waits for queued writes.

``forward`` is the hook for ``--events-addr``: it receives every non-trace event as an
:class:`EventRecord` (the fields of Flux's ``event.toolkit.fluxcd.io`` payload) regardless of the
folding above, as Flux posts every event to notification-controller. Posting it is left to the
hook.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from tidal.kube.client import ApiError, Kube

NORMAL = "Normal"
WARNING = "Warning"
TRACE = "Trace"  # Flux's extra type: a Normal Kubernetes Event, never forwarded

MAX_MESSAGE_LENGTH = 39_000
TRUNCATION_MARKER = "..."
# Prefix of object annotations Flux copies into every forwarded event's metadata (RFC-0008).
EVENT_ANNOTATION_PREFIX = "event.toolkit.fluxcd.io/"

CACHE_SIZE = 4096
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600.0
AGGREGATE_PREFIX = "(combined from similar events): "
MAX_TRIES = 12
RETRY_SLEEP = 10.0
MAX_QUEUED = 1000

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def truncate(message: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    if len(message) <= limit:
        return message
    return message[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def timestamp(moment: datetime) -> str:
    """metav1.Time's wire format: RFC 3339 in whole seconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ObjectReference:
    api_version: str
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectReference:
        meta = obj.get("metadata") or {}
        return cls(
            api_version=str(obj.get("apiVersion") or ""),
            kind=str(obj.get("kind") or ""),
            name=str(meta.get("name") or ""),
            namespace=str(meta.get("namespace") or ""),
            uid=str(meta.get("uid") or ""),
            resource_version=str(meta.get("resourceVersion") or ""),
        )

    def to_json(self) -> dict[str, str]:
        ref = {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "apiVersion": self.api_version,
            "resourceVersion": self.resource_version,
        }
        return {k: v for k, v in ref.items() if v}


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event as the notification hook sees it (Flux's event.toolkit.fluxcd.io Event)."""

    involved_object: ObjectReference
    severity: Literal["info", "error", "trace"]
    timestamp: datetime
    message: str
    reason: str
    metadata: dict[str, str]
    reporting_controller: str
    reporting_instance: str = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "involvedObject": self.involved_object.to_json(),
            "severity": self.severity,
            "timestamp": timestamp(self.timestamp),
            "message": self.message,
            "reason": self.reason,
            "reportingController": self.reporting_controller,
        }
        if self.metadata:
            body["metadata"] = self.metadata
        if self.reporting_instance:
            body["reportingInstance"] = self.reporting_instance
        return body


ForwardHook = Callable[[EventRecord], Awaitable[object] | object]


# -- the correlator (pure, client-go's EventCorrelator) ----------------------------------------


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class _Similar:
    messages: set[str]
    at: float


@dataclass(slots=True)
class _Written:
    name: str
    count: int
    first_timestamp: str


@dataclass(frozen=True, slots=True)
class Correlated:
    """What to write: ``patch`` is set when an earlier Event of ``event`` is to be updated."""

    event: dict[str, Any]
    key: str
    patch: dict[str, Any] | None = None


@dataclass
class Correlator:
    """Spam filter, aggregation and dedup of core/v1 Event dicts; see the module docstring."""

    cache_size: int = CACHE_SIZE
    burst: int = SPAM_BURST
    qps: float = SPAM_QPS
    max_similar: int = AGGREGATE_MAX_EVENTS
    similar_interval: float = AGGREGATE_INTERVAL
    clock: Callable[[], float] = time.monotonic
    _buckets: LRU[str, _Bucket] = field(init=False)
    _similar: LRU[str, _Similar] = field(init=False)
    _written: LRU[str, _Written] = field(init=False)

    def __post_init__(self) -> None:
        self._buckets = LRU(self.cache_size)
        self._similar = LRU(self.cache_size)
        self._written = LRU(self.cache_size)

    def correlate(self, event: dict[str, Any]) -> Correlated | None:
        """The write for ``event``, or None if the spam filter drops it."""
        if not self._allow(_spam_key(event)):
            return None
        event, key = self._aggregate(event)
        seen = self._written.get(key)
        if seen is None:
            return Correlated(event, key)
        event = {
            **event,
            "metadata": {**event["metadata"], "name": seen.name},
            "count": seen.count + 1,
            "firstTimestamp": seen.first_timestamp,
        }
        patch = {
            "count": event["count"],
            "lastTimestamp": event["lastTimestamp"],
            "message": event["message"],
        }
        return Correlated(event, key, patch)

    def written(self, key: str, event: Mapping[str, Any]) -> None:
        """Remember what the server stored, so the next repeat patches it."""
        self._written.put(
            key,
            _Written(
                name=str(event["metadata"]["name"]),
                count=int(event.get("count") or 1),
                first_timestamp=str(event.get("firstTimestamp") or ""),
            ),
        )

    def _allow(self, key: str) -> bool:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.qps)
        bucket.at = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self._buckets.put(key, bucket)
        return allowed

    def _aggregate(self, event: dict[str, Any]) -> tuple[dict[str, Any], str]:
        now = self.clock()
        group = _aggregate_key(event)
        similar = self._similar.get(group)
        if similar is None or now - similar.at > self.similar_interval:
            similar = _Similar(set(), now)
        similar.messages.add(str(event["message"]))
        similar.at = now
        self._similar.put(group, similar)
        if len(similar.messages) < self.max_similar:
            return event, _event_key(event)
        # Keep the set bounded, as client-go does, once aggregation has begun.
        similar.messages.pop()
        combined = {
            **event,
            "message": truncate(AGGREGATE_PREFIX + str(event["message"])),
        }
        return combined, group


def _source(event: Mapping[str, Any]) -> tuple[str, str]:
    src = event.get("source") or {}
    return str(src.get("component") or ""), str(src.get("host") or "")


def _object(event: Mapping[str, Any]) -> tuple[str, ...]:
    ref = event.get("involvedObject") or {}
    return tuple(str(ref.get(k) or "") for k in ("kind", "namespace", "name", "uid", "apiVersion"))


def _spam_key(event: Mapping[str, Any]) -> str:
    return "\x00".join((*_source(event), *_object(event)))


def _aggregate_key(event: Mapping[str, Any]) -> str:
    return "\x00".join(
        (
            *_source(event),
            *_object(event),
            str(event.get("type")),
            str(event.get("reason")),
            str(event.get("reportingComponent") or ""),
            str(event.get("reportingInstance") or ""),
        )
    )


def _event_key(event: Mapping[str, Any]) -> str:
    field_path = str((event.get("involvedObject") or {}).get("fieldPath") or "")
    return "\x00".join(
        (
            *_source(event),
            *_object(event),
            field_path,
            str(event.get("type")),
            str(event.get("reason")),
            str(event.get("message")),
        )
    )


# -- the recorder -------------------------------------------------------------------------------


class EventRecorder:
    """Records Events for one controller (``controller`` is the source component name)."""

    def __init__(
        self,
        kube: Kube,
        controller: str,
        *,
        host: str = "",
        forward: ForwardHook | None = None,
        correlator: Correlator | None = None,
        max_tries: int = MAX_TRIES,
        retry_sleep: float = RETRY_SLEEP,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.kube = kube
        self.controller = controller
        self.host = host
        self.forward = forward
        self.correlator = correlator if correlator is not None else Correlator()
        self.max_tries = max_tries
        self.retry_sleep = retry_sleep
        self.dropped = 0  # events lost to a full queue or the spam filter
        self.failed = 0  # events the server refused or that ran out of retries
        self._queue: asyncio.Queue[tuple[dict[str, Any], EventRecord | None]] = asyncio.Queue(
            max_queued
        )
        self._writer: asyncio.Task[None] | None = None
        self._rand = random.Random().random  # noqa: S311 - only spreads retries

    # -- recording ------------------------------------------------------------------------------

    def event(
        self,
        obj: Mapping[str, Any],
        event_type: str,
        reason: str,
        message: str,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Record an event about ``obj`` (a dict with apiVersion, kind and metadata). Never
        raises and never waits; must be called on the running event loop."""
        try:
            self._enqueue(obj, event_type, reason, message, annotations)
        except Exception:
            log.exception("cannot record event %s for %s", reason, _describe(obj))

    def normal(
        self,
        obj: Mapping[str, Any],
        reason: str,
        message: str,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        self.event(obj, NORMAL, reason, message, annotations)

    def warning(
        self,
        obj: Mapping[str, Any],
        reason: str,
        message: str,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        self.event(obj, WARNING, reason, message, annotations)

    async def flush(self) -> None:
        """Wait until every event recorded so far has been written or given up."""
        await self._queue.join()

    async def close(self) -> None:
        """Flush, then stop the writer."""
        if self._writer is not None:
            await self.flush()
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None

    def build(
        self,
        obj: Mapping[str, Any],
        event_type: str,
        reason: str,
        message: str,
        annotations: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The core/v1 Event dict for one occurrence (before correlation)."""
        now = now or datetime.now(UTC)
        ref = ObjectReference.of(obj)
        at = timestamp(now)
        metadata: dict[str, Any] = {
            "name": f"{ref.name}.{time.time_ns():x}",
            "namespace": ref.namespace or "default",
        }
        if annotations:
            metadata["annotations"] = dict(annotations)
        source = {"component": self.controller}
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": metadata,
            "involvedObject": ref.to_json(),
            "reason": reason,
            "message": truncate(message),
            "source": source,
            "firstTimestamp": at,
            "lastTimestamp": at,
            "count": 1,
            "type": WARNING if event_type == WARNING else NORMAL,
            "reportingComponent": self.controller,
        }
        if self.host:
            source["host"] = self.host
            event["reportingInstance"] = self.host
        return event

    def _enqueue(
        self,
        obj: Mapping[str, Any],
        event_type: str,
        reason: str,
        message: str,
        annotations: Mapping[str, str] | None,
    ) -> None:
        if event_type not in (NORMAL, WARNING, TRACE):
            raise ValueError(f"unsupported event type {event_type!r}")
        now = datetime.now(UTC)
        event = self.build(obj, event_type, reason, message, annotations, now)
        record = None
        if event_type != TRACE and self.forward is not None:
            meta = (obj.get("metadata") or {}).get("annotations") or {}
            # Object annotations rank below the controller's own metadata (RFC-0008).
            metadata = {k: v for k, v in meta.items() if k.startswith(EVENT_ANNOTATION_PREFIX)}
            metadata.update(annotations or {})
            record = EventRecord(
                involved_object=ObjectReference.of(obj),
                severity="error" if event_type == WARNING else "info",
                timestamp=now,
                message=event["message"],
                reason=reason,
                metadata=metadata,
                reporting_controller=self.controller,
                reporting_instance=self.host,
            )
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="event recorder")
        try:
            self._queue.put_nowait((event, record))
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("event queue full, dropped event %s for %s", reason, _describe(obj))

    # -- writing --------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            event, record = await self._queue.get()
            try:
                if record is not None:
                    await self._forward(record)
                await self._record(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event writer failed")
            finally:
                self._queue.task_done()

    async def _forward(self, record: EventRecord) -> None:
        assert self.forward is not None
        try:
            result = self.forward(record)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("event forwarding hook failed for %s", record.reason)

    async def _record(self, event: dict[str, Any]) -> None:
        correlated = self.correlator.correlate(event)
        if correlated is None:
            self.dropped += 1
            log.debug("event %s dropped by the spam filter", event["reason"])
            return
        for attempt in range(1, self.max_tries + 1):
            try:
                stored = await self._write(correlated)
            except ApiError as e:
                self.failed += 1
                log.error("server rejected event %s (will not retry): %s", event["reason"], e)
                return
            except Exception as e:
                if attempt == self.max_tries:
                    break
                delay = self.retry_sleep * (self._rand() if attempt == 1 else 1.0)
                log.warning("cannot write event %s (retrying): %s", event["reason"], e)
                await asyncio.sleep(delay)
                continue
            self.correlator.written(correlated.key, stored)
            return
        self.failed += 1
        log.error("unable to write event %s (retry limit exceeded)", event["reason"])

    async def _write(self, correlated: Correlated) -> dict[str, Any]:
        event = correlated.event
        namespace = event["metadata"]["namespace"]
        collection = f"/api/v1/namespaces/{namespace}/events"
        if correlated.patch is not None:
            path = f"{collection}/{event['metadata']['name']}"
            try:
                return await self.kube.patch(path, correlated.patch, patch_type="strategic")
            except ApiError as e:
                if e.status != 404:
                    raise
                # Expired (Events live an hour): create it again, keeping the count.
        return await self.kube.create(collection, event)


def _describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name', '')}"

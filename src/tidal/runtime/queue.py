"""A de-duplicating, delaying, rate-limited work queue of hashable keys, for asyncio.

Semantics follow client-go's workqueue (``util/workqueue``) as wrapped by controller-runtime:

- A key is *dirty* while it waits to be processed. Adding a dirty key again is a no-op, so a key is
  never queued twice.
- ``get()`` moves a key from dirty to *processing*. Adding a key while it is processing marks it
  dirty without queueing it; ``done()`` then queues it once more. So no two workers ever hold the
  same key, and a change seen during a reconcile is never lost.
- Delayed adds keep one pending deadline per key in a single heap driven by one ``loop.call_at``
  timer (no task per key). As in controller-runtime's priority queue, the earliest readiness wins:
  a sooner ``add_after`` replaces a later one, a later one never postpones a sooner one (nor a key
  that is already dirty), and an immediate ``add`` supersedes a pending delayed one. (Plain
  client-go would let the stale delayed entry fire later and cause one extra reconcile.)
- ``add_rate_limited`` delays by a per-key exponential failure backoff: ``min_delay * 2**failures``
  capped at ``max_delay`` (client-go's ItemExponentialFailureRateLimiter; Flux binds it to
  ``--min-retry-delay`` 750ms and ``--max-retry-delay`` 15m and uses it alone, with no overall
  token bucket). ``forget`` resets the count but, as in client-go, leaves a pending add in place.
- After ``shutdown()`` adds are ignored and every ``get()``, waiting or future, raises
  :class:`QueueShutDown`; keys already handed out can still be ``done()``.

The queue is not thread-safe: call it from the event loop's thread (use
``loop.call_soon_threadsafe`` from elsewhere).

Metrics (read by the Prometheus exporter; controller-runtime exports these names with the labels
``name`` and ``controller``, both set to the queue name):

- ``workqueue_depth`` (gauge): :attr:`WorkQueue.depth`, keys waiting to be processed.
- ``workqueue_adds_total`` (counter): :attr:`QueueMetrics.adds`, keys that became dirty.
- ``workqueue_retries_total`` (counter): :attr:`QueueMetrics.retries`, delayed adds.
- ``workqueue_queue_duration_seconds`` (histogram): seconds from becoming dirty to ``get()``.
- ``workqueue_work_duration_seconds`` (histogram): seconds from ``get()`` to ``done()``.
- ``workqueue_unfinished_work_seconds`` / ``workqueue_longest_running_processor_seconds``
  (gauges): :meth:`WorkQueue.unfinished_work_seconds`, :meth:`WorkQueue.longest_running_seconds`.

Histogram samples go to ``QueueMetrics.observer(metric_name, seconds)`` when one is set; their
running sums and counts are kept as attributes either way.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_MIN_RETRY_DELAY = 0.75
DEFAULT_MAX_RETRY_DELAY = 900.0

QUEUE_DURATION = "workqueue_queue_duration_seconds"
WORK_DURATION = "workqueue_work_duration_seconds"


class QueueShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down: the worker should exit."""


class ExponentialBackoff(Generic[K]):
    """Per-key failure backoff: ``min_delay * 2**n`` for the n-th failure since the last forget."""

    def __init__(
        self, min_delay: float = DEFAULT_MIN_RETRY_DELAY, max_delay: float = DEFAULT_MAX_RETRY_DELAY
    ) -> None:
        if min_delay < 0 or max_delay < min_delay:
            raise ValueError(f"need 0 <= min_delay <= max_delay, got {min_delay}, {max_delay}")
        self.min_delay = min_delay
        self.max_delay = max_delay
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        """Count one more failure of ``key`` and return how long to wait before retrying it."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        # Past 2**1023 a float overflows; the cap has long been reached by then anyway.
        if n >= 1023:
            return self.max_delay
        return min(self.min_delay * math.ldexp(1.0, n), self.max_delay)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)


@dataclass
class QueueMetrics:
    """Counters and histogram sums of one queue; see the module docstring for metric names."""

    name: str = ""
    adds: int = 0
    retries: int = 0
    queue_duration_count: int = 0
    queue_duration_sum: float = 0.0
    work_duration_count: int = 0
    work_duration_sum: float = 0.0
    observer: Callable[[str, float], None] | None = field(default=None, repr=False)

    def _observe_queue(self, seconds: float) -> None:
        self.queue_duration_count += 1
        self.queue_duration_sum += seconds
        if self.observer is not None:
            self.observer(QUEUE_DURATION, seconds)

    def _observe_work(self, seconds: float) -> None:
        self.work_duration_count += 1
        self.work_duration_sum += seconds
        if self.observer is not None:
            self.observer(WORK_DURATION, seconds)


class WorkQueue(Generic[K]):
    """See the module docstring. Create it anywhere; use it inside one running event loop."""

    def __init__(
        self,
        name: str = "",
        *,
        min_delay: float = DEFAULT_MIN_RETRY_DELAY,
        max_delay: float = DEFAULT_MAX_RETRY_DELAY,
        observer: Callable[[str, float], None] | None = None,
    ) -> None:
        self.name = name
        self.metrics = QueueMetrics(name=name, observer=observer)
        self.rate_limiter: ExponentialBackoff[K] = ExponentialBackoff(min_delay, max_delay)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Invariant: every key in _ready is in _dirty and not in _processing; _dirty keys that are
        # processing wait for done() to be appended to _ready.
        self._ready: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: dict[K, float] = {}  # key -> time get() handed it out
        self._added_at: dict[K, float] = {}  # key -> time it became dirty
        # Invariant: live getters exist only while _ready is empty (a new key goes straight to one).
        self._getters: deque[asyncio.Future[K]] = deque()
        # Delayed keys: _pending holds the one live (deadline, seq) per key; _heap may also hold
        # stale entries, recognised by a seq that no longer matches and dropped lazily.
        self._pending: dict[K, tuple[float, int]] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._shutting_down = False

    # -- inspection ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys waiting to be processed (ready, or re-added while processing); not delayed ones."""
        return len(self._dirty)

    @property
    def depth(self) -> int:
        return len(self._dirty)

    @property
    def delayed(self) -> int:
        """Keys with a pending ``add_after`` deadline."""
        return len(self._pending)

    @property
    def processing(self) -> int:
        return len(self._processing)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def is_queued(self, key: K) -> bool:
        """True if ``key`` is dirty, processing or delayed."""
        return key in self._dirty or key in self._processing or key in self._pending

    def unfinished_work_seconds(self) -> float:
        now = self._now()
        return sum(now - t for t in self._processing.values())

    def longest_running_seconds(self) -> float:
        if not self._processing:
            return 0.0
        return self._now() - min(self._processing.values())

    # -- adding -------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Mark ``key`` as needing processing now; supersedes a pending delayed add of it."""
        if self._shutting_down:
            return
        if self._pending:
            self._pending.pop(key, None)
        self._mark_dirty(key, self._now())

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds, unless it becomes ready sooner some other way."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        self.metrics.retries += 1
        if key in self._dirty:
            return
        loop = self._get_loop()
        deadline = loop.time() + delay
        current = self._pending.get(key)
        if current is not None and current[0] <= deadline:
            return
        seq = next(self._seq)
        self._pending[key] = (deadline, seq)
        heapq.heappush(self._heap, (deadline, seq, key))
        if len(self._heap) > 2 * len(self._pending) + 64:
            self._compact()
        if deadline < self._timer_at:
            self._arm(loop, deadline)

    def add_rate_limited(self, key: K) -> None:
        """Add ``key`` after its next exponential failure backoff."""
        if self._shutting_down:
            return
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset the failure backoff of ``key`` (call it when a key succeeds or gives up)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        """Failures counted for ``key`` since it was last forgotten."""
        return self.rate_limiter.num_requeues(key)

    # -- consuming ----------------------------------------------------------------------------

    async def get(self) -> K:
        """Wait for the next ready key and mark it processing; call ``done(key)`` afterwards."""
        if self._ready:
            key = self._ready.popleft()
            self._take(key)
            return key
        if self._shutting_down:
            raise QueueShutDown(f"work queue {self.name!r} is shut down")
        fut: asyncio.Future[K] = self._get_loop().create_future()
        self._getters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # A key was handed to us in the same loop iteration we were cancelled: give it
                # back at the front, so cancelling a worker never loses or delays work.
                self._untake(fut.result())
            else:
                with suppress(ValueError):
                    self._getters.remove(fut)
            raise

    def done(self, key: K) -> None:
        """Finish processing ``key``; if it was added meanwhile, queue it again."""
        started = self._processing.pop(key, None)
        if started is None:
            return
        self.metrics._observe_work(self._now() - started)
        if key in self._dirty and not self._shutting_down:
            self._push_ready(key)

    def shutdown(self) -> None:
        """Stop accepting adds, drop waiting keys and make every ``get()`` raise QueueShutDown."""
        if self._shutting_down:
            return
        self._shutting_down = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf
        self._heap.clear()
        self._pending.clear()
        self._ready.clear()
        self._dirty.clear()
        self._added_at.clear()
        getters, self._getters = self._getters, deque()
        for fut in getters:
            if not fut.done():
                fut.set_exception(QueueShutDown(f"work queue {self.name!r} is shut down"))

    # -- internals ----------------------------------------------------------------------------

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @staticmethod
    def _now() -> float:
        # Metrics use the monotonic clock, so add() and done() work before a loop runs; deadlines
        # use the loop's clock, which is what call_at() fires on.
        return time.monotonic()

    def _mark_dirty(self, key: K, now: float) -> None:
        if key in self._dirty:
            return
        self.metrics.adds += 1
        self._dirty.add(key)
        self._added_at[key] = now
        if key not in self._processing:
            self._push_ready(key)

    def _push_ready(self, key: K) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                self._take(key)
                fut.set_result(key)
                return
        self._ready.append(key)

    def _take(self, key: K) -> None:
        now = self._now()
        self._dirty.discard(key)
        self.metrics._observe_queue(now - self._added_at.pop(key, now))
        self._processing[key] = now

    def _untake(self, key: K) -> None:
        self._processing.pop(key, None)
        if self._shutting_down:
            return
        self._dirty.add(key)
        self._added_at[key] = self._now()
        self._ready.appendleft(key)
        # Another getter may be waiting already; hand the key on instead of parking it.
        while self._getters and self._ready:
            fut = self._getters.popleft()
            if not fut.done():
                nxt = self._ready.popleft()
                self._take(nxt)
                fut.set_result(nxt)

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        loop = self._get_loop()
        # The loop may run a timer up to its clock resolution early; it judged our deadline
        # reached, so everything due by then is due now.
        now = max(loop.time(), self._timer_at)
        self._timer = None
        self._timer_at = math.inf
        heap = self._heap
        stamp = self._now()
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            live = self._pending.get(key)
            if live is None or live[1] != seq:
                continue
            del self._pending[key]
            self._mark_dirty(key, stamp)
        while heap:
            deadline, seq, key = heap[0]
            live = self._pending.get(key)
            if live is not None and live[1] == seq:
                self._arm(loop, deadline)
                break
            heapq.heappop(heap)

    def _compact(self) -> None:
        self._heap = [(d, s, k) for k, (d, s) in self._pending.items()]
        heapq.heapify(self._heap)

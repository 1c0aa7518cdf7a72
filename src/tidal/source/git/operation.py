"""One Git operation's deadline and cancellation, shared by its transport and its thread.

asyncio cannot stop a thread, so the blocking code checks this object between reads and the
event loop, on timeout, cancels it: every registered closer runs (open sockets are shut, so
a blocked read returns), and the next check raises GitTimeoutError. Nothing partial is kept:
a pack is only added to the mirror once it is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tidal.source.git.errors import GitTimeoutError

T = TypeVar("T")

# A socket read may wait this long at most even when the deadline is further away, so a
# cancelled operation whose closer could not interrupt a read still ends soon.
_MAX_WAIT = 30.0

# After a timeout the worker thread gets this long to notice the cancellation and let go of
# the mirror before the coroutine gives up waiting for it.
_CANCEL_GRACE = 10.0


class Operation:
    def __init__(self, timeout: float, what: str = "git operation") -> None:
        self.timeout = timeout
        self.what = what
        self.deadline = time.monotonic() + timeout
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._closers: list[Callable[[], object]] = []

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def remaining(self) -> float:
        """Seconds left, never below a millisecond (0 would mean "no timeout" to sockets)."""
        return max(0.001, self.deadline - time.monotonic())

    def wait_limit(self) -> float:
        return min(self.remaining(), _MAX_WAIT)

    def expired(self) -> bool:
        return self.cancelled or time.monotonic() >= self.deadline

    def check(self) -> None:
        if self.expired():
            raise self.timeout_error()

    def timeout_error(self) -> GitTimeoutError:
        return GitTimeoutError(f"{self.what} timed out after {self.timeout:g}s")

    def on_cancel(self, closer: Callable[[], object]) -> None:
        with self._lock:
            if not self._cancelled.is_set():
                self._closers.append(closer)
                return
        with contextlib.suppress(Exception):
            closer()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            closers, self._closers = self._closers, []
        for closer in closers:
            with contextlib.suppress(Exception):
                closer()


async def run_in_thread(op: Operation, fn: Callable[[], T]) -> T:
    """Run blocking `fn` in a worker thread under `op`'s deadline: on timeout (or when the
    caller is cancelled) `op` is cancelled and the thread given a moment to let go."""
    task: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        done, _ = await asyncio.wait({task}, timeout=op.remaining())
    except asyncio.CancelledError:
        op.cancel()
        await asyncio.wait({task}, timeout=_CANCEL_GRACE)
        raise
    if task in done:
        return task.result()
    op.cancel()
    done, _ = await asyncio.wait({task}, timeout=_CANCEL_GRACE)
    if task in done and not task.cancelled():
        task.exception()  # retrieved: the timeout is what the caller hears about
    raise op.timeout_error()

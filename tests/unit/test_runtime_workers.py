"""Workers: what each Result does to the key, backoff timing, exclusivity, errors, graceful stop."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tidal.runtime.jitter import no_jitter
from tidal.runtime.queue import WorkQueue
from tidal.runtime.workers import Result, Workers

LATE = 0.2  # timers never fire early; a busy machine may run them late


@dataclass
class Attempt:
    key: str
    at: float
    requeues: int


@dataclass
class Scripted:
    """A reconcile that plays back a list of outcomes per key and records every attempt."""

    queue: WorkQueue[str]
    script: dict[str, Iterator[Result | Exception]]
    attempts: list[Attempt] = field(default_factory=list)

    async def __call__(self, key: str) -> Result:
        self.attempts.append(Attempt(key, time.monotonic(), self.queue.num_requeues(key)))
        outcome = next(self.script[key], Result.success())
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def of(self, key: str) -> list[Attempt]:
        return [a for a in self.attempts if a.key == key]


async def until(pred: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


def gaps(attempts: list[Attempt]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(attempts)]


def test_result_is_a_small_frozen_dataclass() -> None:
    r = Result.success(60)
    assert (r.requeue_after, r.error, r.jitter, r.failed) == (60, None, True, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.requeue_after = 1  # type: ignore[misc]
    assert Result.failure("boom").failed
    assert Result.retry_after(5) == Result(requeue_after=5, jitter=False)
    assert Result.success() == Result()
    with pytest.raises(ValueError, match="requeue_after"):
        Result.success(-1)


async def test_backoff_doubles_then_caps_and_success_forgets() -> None:
    q: WorkQueue[str] = WorkQueue(min_delay=0.02, max_delay=0.08)
    boom = Result.failure("boom")
    rec = Scripted(q, {"a": iter([boom] * 5 + [Result.success()])})
    w = Workers(q, rec, concurrency=2, jitter=no_jitter)
    w.start()
    q.add("a")
    await until(lambda: len(rec.of("a")) == 6)
    await until(lambda: w.metrics.success == 1)
    assert [a.requeues for a in rec.of("a")] == [0, 1, 2, 3, 4, 5]
    for gap, want in zip(gaps(rec.of("a")), [0.02, 0.04, 0.08, 0.08, 0.08], strict=True):
        assert want <= gap < want + LATE
    assert q.num_requeues("a") == 0
    assert q.delayed == 0
    assert (w.metrics.error, w.metrics.errors) == (5, 5)
    assert await w.stop(1)


async def test_success_requeue_after_is_jittered_and_forgets() -> None:
    q: WorkQueue[str] = WorkQueue(min_delay=0.01)
    asked: list[float] = []

    def half(d: float) -> float:
        asked.append(d)
        return d / 2

    rec = Scripted(q, {"a": iter([Result.failure("x"), Result.success(0.08), Result.success()])})
    w = Workers(q, rec, jitter=half)
    w.start()
    q.add("a")
    await until(lambda: len(rec.of("a")) == 3)
    assert [a.requeues for a in rec.of("a")] == [0, 1, 0]
    assert asked == [0.08]
    assert 0.04 <= gaps(rec.of("a"))[1] < 0.04 + LATE
    assert w.metrics.total == {"success": 1, "error": 1, "requeue_after": 1}
    assert await w.stop(1)


async def test_retry_after_forgets_and_is_not_jittered() -> None:
    q: WorkQueue[str] = WorkQueue(min_delay=0.01)
    script = iter([Result.failure("x"), Result.failure("x"), Result.retry_after(0.03)])
    rec = Scripted(q, {"a": script})

    def never(d: float) -> float:
        raise AssertionError("retry_after must not be jittered")

    w = Workers(q, rec, jitter=never)
    w.start()
    q.add("a")
    await until(lambda: len(rec.of("a")) == 4)
    assert [a.requeues for a in rec.of("a")] == [0, 1, 2, 0]
    assert 0.03 <= gaps(rec.of("a"))[2] < 0.03 + LATE
    assert await w.stop(1)


async def test_error_wins_over_requeue_after() -> None:
    q: WorkQueue[str] = WorkQueue(min_delay=0.01)
    rec = Scripted(q, {"a": iter([Result(requeue_after=30, error="x")])})
    w = Workers(q, rec, jitter=no_jitter)
    w.start()
    q.add("a")
    await until(lambda: len(rec.of("a")) == 2)
    assert gaps(rec.of("a"))[0] < 1
    assert await w.stop(1)


async def test_exception_is_logged_with_key_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    q: WorkQueue[str] = WorkQueue(min_delay=0.01)
    rec = Scripted(
        q,
        {
            "bad": iter([RuntimeError("kaput"), KeyError("missing"), Result.failure("plain")]),
            "good": iter([]),
        },
    )
    w = Workers(q, rec, concurrency=1, jitter=no_jitter)
    with caplog.at_level(logging.ERROR, logger="tidal.runtime.workers"):
        w.start()
        q.add("bad")
        q.add("good")
        await until(lambda: len(rec.of("bad")) == 4 and len(rec.of("good")) == 1)
        await until(lambda: w.metrics.success == 2)
    assert w.running  # the single worker survived both exceptions
    assert w.metrics.panics == 2
    assert w.metrics.errors == 3
    raised = [r for r in caplog.records if r.exc_info]
    assert len(raised) == 2
    assert all("'bad'" in r.getMessage() and r.__dict__["key"] == "bad" for r in raised)
    assert raised[0].exc_info is not None and isinstance(raised[0].exc_info[1], RuntimeError)
    returned = [r for r in caplog.records if not r.exc_info]
    assert [r.getMessage() for r in returned] == ["reconcile of 'bad' failed: plain"]
    assert await w.stop(1)


async def test_one_key_never_runs_twice_at_once_with_8_workers() -> None:
    q: WorkQueue[str] = WorkQueue()
    keys = [f"k{i}" for i in range(4)]
    rnd = random.Random(3)  # noqa: S311  (seeded: a reproducible interleaving)
    active: set[str] = set()
    overlaps: list[str] = []
    peak = 0
    runs = dict.fromkeys(keys, 0)

    async def reconcile(key: str) -> Result:
        nonlocal peak
        if key in active:
            overlaps.append(key)
        active.add(key)
        peak = max(peak, len(active))
        try:
            for _ in range(3):
                q.add(rnd.choice(keys))  # keep every key, including this one, coming back
                await asyncio.sleep(rnd.uniform(0, 0.004))
        finally:
            active.discard(key)
        runs[key] += 1
        return Result.success()

    w = Workers(q, reconcile, concurrency=8, jitter=no_jitter)
    w.start()
    for k in keys:
        q.add(k)
    await until(lambda: min(runs.values()) >= 15)
    assert await w.stop(1)
    assert overlaps == []
    assert peak > 1  # the workers did run different keys in parallel


async def test_workers_run_concurrently() -> None:
    q: WorkQueue[str] = WorkQueue()
    finished: list[str] = []

    async def slow(key: str) -> Result:
        await asyncio.sleep(0.1)
        finished.append(key)
        return Result.success()

    w = Workers(q, slow, concurrency=4, jitter=no_jitter)
    w.start()
    start = time.monotonic()
    for k in "abcd":
        q.add(k)
    await until(lambda: len(finished) == 4)
    assert time.monotonic() - start < 0.1 + LATE  # not 4 x 0.1
    assert await w.stop(1)


async def test_graceful_stop_waits_for_in_flight_work() -> None:
    q: WorkQueue[str] = WorkQueue()
    finished: list[str] = []

    async def slow(key: str) -> Result:
        await asyncio.sleep(0.05)
        finished.append(key)
        return Result.success(0.01)

    w = Workers(q, slow, concurrency=2, jitter=no_jitter)
    w.start()
    q.add("a")
    await until(lambda: w.active == {"a"})
    assert await w.stop(1)
    assert finished == ["a"]
    assert not w.running
    assert q.processing == 0
    assert q.delayed == 0  # the requeue after shutdown was dropped


async def test_stop_cancels_work_that_outlives_the_grace_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    q: WorkQueue[str] = WorkQueue()
    cancelled: list[str] = []

    async def stuck(key: str) -> Result:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(key)
            raise
        return Result.success()

    w = Workers(q, stuck, concurrency=2, jitter=no_jitter)
    w.start()
    q.add("a")
    await until(lambda: w.active == {"a"})
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="tidal.runtime.workers"):
        assert not await w.stop(0.05)
    assert 0.05 <= time.monotonic() - start < 0.05 + LATE
    assert cancelled == ["a"]
    assert not w.running
    assert q.processing == 0
    assert w.active == frozenset()
    assert "cancelled 1 reconcile" in caplog.text


async def test_stop_unblocks_idle_workers() -> None:
    q: WorkQueue[str] = WorkQueue()

    async def never(key: str) -> Result:
        raise AssertionError("nothing was queued")

    w = Workers(q, never, concurrency=8)
    w.start()
    await asyncio.sleep(0)
    assert w.running
    assert await asyncio.wait_for(w.stop(1), 0.5)
    assert not w.running
    assert await w.stop(1)  # idempotent


async def test_non_result_return_is_an_error_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    q: WorkQueue[str] = WorkQueue(min_delay=0.01)
    calls: list[str] = []

    async def sloppy(key: str) -> Result:
        calls.append(key)
        return None  # type: ignore[return-value]

    w = Workers(q, sloppy, concurrency=1)
    with caplog.at_level(logging.ERROR, logger="tidal.runtime.workers"):
        w.start()
        q.add("a")
        await until(lambda: len(calls) >= 2)
    assert w.running
    assert "not a Result" in caplog.text
    assert await w.stop(1)


async def test_start_twice_and_bad_concurrency() -> None:
    q: WorkQueue[str] = WorkQueue()

    async def ok(key: str) -> Result:
        return Result.success()

    with pytest.raises(ValueError, match="concurrency"):
        Workers(q, ok, concurrency=0)
    w = Workers(q, ok, concurrency=1)
    w.start()
    with pytest.raises(RuntimeError, match="already started"):
        w.start()
    assert await w.stop(1)

"""WorkQueue: de-duplication, processing exclusivity, delays, backoff, shutdown, metrics, scale."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest

from tidal.runtime.queue import (
    QUEUE_DURATION,
    WORK_DURATION,
    ExponentialBackoff,
    QueueShutDown,
    WorkQueue,
)

# Timers never fire early, but a loaded machine may run them late: check lower bounds tightly and
# upper bounds loosely.
LATE = 0.2


async def get_now(q: WorkQueue[str]) -> str:
    """get() that must not block: the key has to be ready already."""
    return await asyncio.wait_for(q.get(), 0.5)


async def nothing_ready(q: WorkQueue[str], within: float = 0.02) -> bool:
    try:
        key = await asyncio.wait_for(q.get(), within)
    except TimeoutError:
        return True
    q.done(key)
    return False


async def test_fifo_and_dedup_while_queued() -> None:
    q: WorkQueue[str] = WorkQueue()
    for k in ["a", "b", "a", "c", "b", "a"]:
        q.add(k)
    assert len(q) == 3
    got = [await get_now(q) for _ in range(3)]
    assert got == ["a", "b", "c"]
    for k in got:
        q.done(k)
    assert len(q) == 0
    assert await nothing_ready(q)


async def test_tuple_keys() -> None:
    q: WorkQueue[tuple[str, str]] = WorkQueue()
    q.add(("flux-system", "apps"))
    q.add(("flux-system", "apps"))
    assert len(q) == 1
    assert await asyncio.wait_for(q.get(), 0.5) == ("flux-system", "apps")


async def test_add_while_processing_requeues_once_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await get_now(q) == "a"
    for _ in range(3):
        q.add("a")
    assert len(q) == 1
    # A second worker must not get the key while the first still holds it.
    assert await nothing_ready(q)
    q.done("a")
    assert await get_now(q) == "a"
    q.done("a")
    assert await nothing_ready(q)
    assert q.metrics.adds == 2


async def test_waiting_getter_gets_key_added_later() -> None:
    q: WorkQueue[str] = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.add("a")
    q.add("b")
    done, pending = await asyncio.wait(getters, timeout=0.05)
    assert sorted(t.result() for t in done) == ["a", "b"]
    assert len(pending) == 1
    q.shutdown()
    with pytest.raises(QueueShutDown):
        await next(iter(pending))


async def test_cancelled_getter_does_not_lose_key() -> None:
    q: WorkQueue[str] = WorkQueue()
    t = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("a")  # handed to the waiting getter...
    t.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await t
    assert q.processing == 0
    assert await get_now(q) == "a"

    idle = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    idle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await idle
    q.add("b")
    assert await get_now(q) == "b"


async def test_add_after_waits_for_the_delay() -> None:
    q: WorkQueue[str] = WorkQueue()
    start = time.monotonic()
    q.add_after("a", 0.05)
    assert len(q) == 0
    assert q.delayed == 1
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert 0.05 <= time.monotonic() - start < 0.05 + LATE
    assert q.delayed == 0


async def test_zero_or_negative_delay_is_immediate() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0)
    q.add_after("b", -1)
    assert [await get_now(q), await get_now(q)] == ["a", "b"]


async def test_sooner_add_after_replaces_later() -> None:
    q: WorkQueue[str] = WorkQueue()
    start = time.monotonic()
    q.add_after("a", 0.3)
    q.add_after("a", 0.04)
    assert q.delayed == 1
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert time.monotonic() - start < 0.3
    q.done("a")
    # The replaced deadline must not fire a second time.
    assert await nothing_ready(q, 0.35)


async def test_later_add_after_does_not_postpone() -> None:
    q: WorkQueue[str] = WorkQueue()
    start = time.monotonic()
    q.add_after("a", 0.04)
    q.add_after("a", 0.5)
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert time.monotonic() - start < 0.04 + LATE
    q.done("a")
    assert q.delayed == 0


async def test_immediate_add_supersedes_delayed() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0.05)
    q.add("a")
    assert q.delayed == 0
    assert await get_now(q) == "a"
    q.done("a")
    assert await nothing_ready(q, 0.1)


async def test_add_after_of_a_queued_key_is_absorbed() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add_after("a", 0.02)
    assert q.delayed == 0
    assert await get_now(q) == "a"
    q.done("a")
    assert await nothing_ready(q, 0.06)


async def test_delayed_key_fires_while_processing_then_runs_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await get_now(q) == "a"
    q.add_after("a", 0.02)
    await asyncio.sleep(0.05)
    assert len(q) == 1
    assert await nothing_ready(q)
    q.done("a")
    assert await get_now(q) == "a"


async def test_deadlines_fire_in_order_with_one_timer() -> None:
    q: WorkQueue[str] = WorkQueue()
    for k, d in [("c", 0.06), ("a", 0.02), ("b", 0.04)]:
        q.add_after(k, d)
    got = []
    for _ in range(3):
        k = await asyncio.wait_for(q.get(), 1)
        q.done(k)
        got.append(k)
    assert got == ["a", "b", "c"]


def test_exponential_backoff_doubles_then_caps_and_forget_resets() -> None:
    rl: ExponentialBackoff[str] = ExponentialBackoff()  # Flux defaults: 750ms .. 15m
    delays = [rl.when("a") for _ in range(14)]
    assert delays[:5] == [0.75, 1.5, 3.0, 6.0, 12.0]
    assert delays[10] == 768.0
    assert delays[11:] == [900.0, 900.0, 900.0]
    assert rl.num_requeues("a") == 14
    assert rl.num_requeues("b") == 0
    assert rl.when("b") == 0.75  # per key
    rl.forget("a")
    assert rl.num_requeues("a") == 0
    assert rl.when("a") == 0.75
    for _ in range(5000):  # no float overflow however long a key keeps failing
        rl.when("c")
    assert rl.when("c") == 900.0


def test_backoff_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="min_delay"):
        ExponentialBackoff(2.0, 1.0)
    with pytest.raises(ValueError, match="min_delay"):
        ExponentialBackoff(-1.0, 1.0)


async def test_add_rate_limited_backs_off_per_key() -> None:
    q: WorkQueue[str] = WorkQueue(min_delay=0.02, max_delay=0.04)
    gaps = []
    last = time.monotonic()
    for _ in range(4):
        q.add_rate_limited("a")
        assert await asyncio.wait_for(q.get(), 1) == "a"
        q.done("a")
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    for gap, want in zip(gaps, [0.02, 0.04, 0.04, 0.04], strict=True):
        assert want <= gap < want + LATE
    assert q.num_requeues("a") == 4
    q.forget("a")
    assert q.num_requeues("a") == 0


async def test_forget_leaves_a_pending_add_in_place() -> None:
    q: WorkQueue[str] = WorkQueue(min_delay=0.02)
    q.add_rate_limited("a")
    q.forget("a")
    assert q.delayed == 1
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_shutdown_wakes_getters_and_ignores_adds() -> None:
    q: WorkQueue[str] = WorkQueue("demo")
    q.add("held")
    assert await get_now(q) == "held"
    q.add("queued")
    q.add_after("delayed", 0.01)
    getters = [asyncio.create_task(q.get()) for _ in range(8)]
    await asyncio.sleep(0)
    q.shutdown()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), 0.5)
    assert results[0] == "queued"
    q.done("queued")
    assert all(isinstance(r, QueueShutDown) for r in results[1:])
    assert "demo" in str(results[1])
    with pytest.raises(QueueShutDown):
        await q.get()
    q.add("new")
    q.add_after("new", 0.01)
    q.add_rate_limited("new")
    assert len(q) == 0
    assert q.delayed == 0
    q.done("held")  # in-flight work can still finish
    assert q.processing == 0
    q.shutdown()  # idempotent
    await asyncio.sleep(0.03)
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_metrics() -> None:
    seen: list[tuple[str, float]] = []
    q: WorkQueue[str] = WorkQueue("kustomization", observer=lambda m, v: seen.append((m, v)))
    q.add("a")
    q.add("a")
    q.add("b")
    assert q.depth == 2
    assert q.metrics.adds == 2
    await asyncio.sleep(0.02)
    key = await get_now(q)
    assert q.depth == 1
    assert q.processing == 1
    await asyncio.sleep(0.02)
    assert q.unfinished_work_seconds() >= 0.02
    assert q.longest_running_seconds() >= 0.02
    q.done(key)
    assert q.longest_running_seconds() == 0.0
    q.add_after("c", 0.01)
    q.add_after("c", 0.5)
    q.add_rate_limited("d")
    assert q.metrics.retries == 3
    assert q.metrics.adds == 2  # delayed keys count as adds only once they become ready
    assert q.metrics.queue_duration_count == 1
    assert q.metrics.queue_duration_sum >= 0.02
    assert q.metrics.work_duration_count == 1
    assert q.metrics.work_duration_sum >= 0.02
    assert [m for m, _ in seen] == [QUEUE_DURATION, WORK_DURATION]
    assert seen[0][1] >= 0.02
    q.shutdown()


async def test_done_of_unknown_key_is_ignored() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.done("never-got")
    assert q.metrics.work_duration_count == 0


async def test_ten_thousand_delayed_keys_drain_in_deadline_order() -> None:
    n, max_delay = 10_000, 0.3
    rnd = random.Random(42)  # noqa: S311  (seeded: a reproducible workload)
    delays = {f"k{i}": rnd.uniform(0, max_delay) for i in range(n)}
    q: WorkQueue[str] = WorkQueue()
    loop = asyncio.get_running_loop()
    tasks_before = len(asyncio.all_tasks())
    t0 = loop.time()
    for key, d in delays.items():
        q.add_after(key, d)
    t1 = loop.time()
    assert len(asyncio.all_tasks()) == tasks_before  # no task per key
    assert q.delayed == n

    got: list[str] = []
    early: list[str] = []
    while len(got) < n:
        key = await asyncio.wait_for(q.get(), 2)
        if loop.time() < t0 + delays[key]:
            early.append(key)
        got.append(key)
        q.done(key)
    elapsed = loop.time() - t0

    assert sorted(got) == sorted(delays)
    assert not early
    # Each key's real deadline lies in [t0 + delay, t1 + delay]: order may only differ within that.
    slack = t1 - t0
    assert all(delays[a] <= delays[b] + slack for a, b in itertools.pairwise(got))
    assert elapsed < max_delay + 1.5
    assert q.delayed == 0
    assert len(q._heap) == 0

"""The runtime work queue under load, against asyncio.Queue as the floor, in one run.

Each scenario moves N distinct keys through add -> get -> done with 4 consumers (Flux's default
--concurrent for most controllers):

- asyncio.Queue: put + get + task_done, no de-duplication: the cheapest asyncio hand-off.
- WorkQueue, pre-filled: all adds first, then 4 consumers drain.
- WorkQueue, interleaved: a producer adds in batches of 1,000 while 4 consumers run.
- WorkQueue delayed: add_after with random delays in [0, 0.5) s (one heap, one timer), drained.
- Workers: the full worker pool (4 workers) around a reconcile that returns Result.success().

    python bench/runtime_queue.py [--keys 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tidal.runtime.jitter import no_jitter
from tidal.runtime.queue import QueueShutDown, WorkQueue
from tidal.runtime.workers import Result, Workers

CONSUMERS = 4

Scenario = Callable[[int], Coroutine[Any, Any, None]]


async def consume(q: WorkQueue[int], left: list[int], finished: asyncio.Event) -> None:
    while True:
        try:
            key = await q.get()
        except QueueShutDown:
            return
        q.done(key)
        left[0] -= 1
        if left[0] == 0:
            finished.set()


async def drain(q: WorkQueue[int], n: int, fill: Callable[[], Awaitable[None]]) -> None:
    left, finished = [n], asyncio.Event()
    tasks = [asyncio.create_task(consume(q, left, finished)) for _ in range(CONSUMERS)]
    await fill()
    await finished.wait()
    q.shutdown()
    await asyncio.gather(*tasks)


async def asyncio_queue(n: int) -> None:
    q: asyncio.Queue[int] = asyncio.Queue()

    async def consumer() -> None:
        while True:
            await q.get()
            q.task_done()

    for i in range(n):
        q.put_nowait(i)
    tasks = [asyncio.create_task(consumer()) for _ in range(CONSUMERS)]
    await q.join()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def prefilled(n: int) -> None:
    q: WorkQueue[int] = WorkQueue()

    async def fill() -> None:
        for i in range(n):
            q.add(i)

    await drain(q, n, fill)


async def interleaved(n: int) -> None:
    q: WorkQueue[int] = WorkQueue()

    async def fill() -> None:
        for start in range(0, n, 1000):
            for i in range(start, min(start + 1000, n)):
                q.add(i)
            await asyncio.sleep(0)

    await drain(q, n, fill)


async def delayed(n: int) -> None:
    q: WorkQueue[int] = WorkQueue()
    rnd = random.Random(1)

    async def fill() -> None:
        for i in range(n):
            q.add_after(i, rnd.uniform(0, 0.5))

    await drain(q, n, fill)


async def workers(n: int) -> None:
    q: WorkQueue[int] = WorkQueue()
    left, finished = [n], asyncio.Event()

    async def reconcile(key: int) -> Result:
        left[0] -= 1
        if left[0] == 0:
            finished.set()
        return Result.success()

    pool = Workers(q, reconcile, concurrency=CONSUMERS, jitter=no_jitter)
    pool.start()
    for i in range(n):
        q.add(i)
    await finished.wait()
    await pool.stop(5)


# (label, scenario, seconds of deliberate delay to leave out of the per-key figure)
SCENARIOS: list[tuple[str, Scenario, float]] = [
    ("asyncio.Queue (floor, no dedup)", asyncio_queue, 0.0),
    ("WorkQueue, pre-filled", prefilled, 0.0),
    ("WorkQueue, interleaved adds", interleaved, 0.0),
    ("WorkQueue, add_after 0-0.5 s", delayed, 0.5),
    ("Workers pool, no-op reconcile", workers, 0.0),
]


def measure(fn: Scenario, n: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        asyncio.run(fn(n))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.keys

    print("Work queue benchmark (tidal bench/runtime_queue.py)")
    print(
        f"{n} distinct keys, add + get + done, {CONSUMERS} consumers; median of {args.runs} runs; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print("(x) = time relative to asyncio.Queue, <1 is faster")
    print("add_after: total includes the 0.5 s of delay; per key and keys/s leave it out")
    print()
    print(f"{'scenario':34} {'total':>10} {'per key':>10} {'keys/s':>10} {'ratio':>8}")
    print("-" * 76)
    floor = None
    for label, fn, wait in SCENARIOS:
        t = measure(fn, n, args.runs)
        work = max(t - wait, 1e-9)
        floor = floor if floor is not None else work
        print(
            f"{label:34} {t * 1000:8.1f} ms {work / n * 1e6:7.2f} us {n / work:10,.0f} "
            f"{work / floor:7.2f}x"
        )


if __name__ == "__main__":
    main()

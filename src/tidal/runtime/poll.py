"""Waiting for a condition by polling, the way every controller and CLI wait here does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def poll_until(
    check: Callable[[], Awaitable[bool]],
    within: float,
    every: float = 0.5,
    *,
    first: float | None = None,
) -> None:
    """Await `check` until true; TimeoutError after `within` seconds. With `first`, the
    delay starts there and doubles up to `every` (most waits end within a second)."""
    delay = every if first is None else min(first, every)
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(delay)
            delay = min(delay * 2, every)

"""Short-lived access tokens kept between reconciles, as fluxcd/pkg `cache.TokenCache` keeps them.

A token is reused until 80% of the lifetime it had when it was stored has passed (kubelet's
rotation threshold, which Flux copies), and never longer than `max_duration` (Flux's
--token-cache-max-duration, at most an hour). Like Flux, expiry is checked against both the
monotonic clock and the wall clock, so neither a suspended machine nor a clock step keeps an
expired token in use. The cache is a small LRU (Flux's --token-cache-max-size default).

Concurrent misses of one key share a single fetch: without that, every GitRepository on the
same GitHub App would ask the API for a token of its own after a controller restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

DEFAULT_CAPACITY = 100
MAX_DURATION = 3600.0  # seconds; Flux's TokenMaxDuration
RENEW_AT = 0.8  # of a token's lifetime


class Token(Protocol):
    @property
    def expires_at(self) -> float:
        """Unix time at which the issuer stops accepting the token."""
        ...


T = TypeVar("T", bound=Token)


@dataclass(frozen=True, slots=True, repr=False)
class BearerToken:
    """An access token a provider issued and the Unix time it expires; never printed."""

    token: str
    expires_at: float

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token=<set>, expires_at={self.expires_at!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class _Item(Generic[T]):
    token: T
    mono_deadline: float
    wall_deadline: float


class TokenCache(Generic[T]):
    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        max_duration: float = MAX_DURATION,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.max_duration = min(max_duration, MAX_DURATION)
        self._wall = wall_clock
        self._mono = monotonic
        self._items: OrderedDict[str, _Item[T]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> T | None:
        """The stored token for `key` if it is still fresh."""
        item = self._items.get(key)
        if item is None:
            return None
        if self._mono() >= item.mono_deadline or self._wall() >= item.wall_deadline:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item.token

    def put(self, key: str, token: T) -> None:
        lifetime = max(0.0, token.expires_at - self._wall())
        keep = min(lifetime * RENEW_AT, self.max_duration)
        # Whole seconds on the wall clock, as Flux's Unix timestamp: never later than the
        # monotonic deadline.
        wall_deadline = float(int(self._wall() + keep))
        self._items[key] = _Item(token, self._mono() + keep, wall_deadline)
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            evicted, _ = self._items.popitem(last=False)
            self._locks.pop(evicted, None)

    async def get_or_fetch(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """The fresh token for `key`, fetching (and storing) a new one when there is none.
        A failed fetch stores nothing, so the next call tries again."""
        token = self.get(key)
        if token is not None:
            return token
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                token = self.get(key)
                if token is not None:
                    return token
                token = await fetch()
                self.put(key, token)
                return token
        finally:
            self._prune_locks()

    def _prune_locks(self) -> None:
        # Keys whose fetches keep failing are never stored, so nothing evicts their locks.
        if len(self._locks) > 2 * self.capacity:
            for key in [k for k, lk in self._locks.items() if not lk.locked()]:
                if key not in self._items:
                    del self._locks[key]

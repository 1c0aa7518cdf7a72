"""Jitter for the requeue-after-success interval (Flux's ``--interval-jitter-percentage``).

Flux (fluxcd/pkg ``runtime/jitter``) scales a positive interval ``d`` by ``1 + p * (2u - 1)`` with
``u`` uniform in [0, 1): a symmetric ±p spread, not an added delay. A percentage of 0 disables it,
one of 100 or more is rejected, and a zero interval (no requeue) is left alone. The controllers
default the flag to 5 (%).
"""

from __future__ import annotations

import random
from collections.abc import Callable

DEFAULT_INTERVAL_JITTER_PERCENTAGE = 5.0


class IntervalJitter:
    """Callable ``interval -> jittered interval`` (seconds); ``rand`` returns floats in [0, 1)."""

    def __init__(
        self,
        percentage: float = DEFAULT_INTERVAL_JITTER_PERCENTAGE,
        rand: Callable[[], float] | None = None,
    ) -> None:
        if not 0 <= percentage < 100:
            raise ValueError(
                f"the interval jitter percentage must be >= 0 and < 100, got {percentage}"
            )
        self.percentage = percentage
        self._fraction = percentage / 100.0
        # Spreading requeues needs no unpredictability, so a plain PRNG is the right tool here.
        self._rand = rand if rand is not None else random.Random().random  # noqa: S311

    def __call__(self, interval: float) -> float:
        if interval <= 0 or self._fraction == 0:
            return interval
        return interval * (1.0 + self._fraction * (2.0 * self._rand() - 1.0))

    def bounds(self, interval: float) -> tuple[float, float]:
        """The closed range a jittered ``interval`` falls in."""
        if interval <= 0:
            return interval, interval
        return interval * (1.0 - self._fraction), interval * (1.0 + self._fraction)


def no_jitter(interval: float) -> float:
    """The identity, for callers and tests that want exact intervals."""
    return interval

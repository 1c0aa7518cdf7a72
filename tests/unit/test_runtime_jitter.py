"""IntervalJitter: Flux's symmetric ±percentage spread of the success requeue interval."""

from __future__ import annotations

import random

import pytest

from tidal.runtime.jitter import DEFAULT_INTERVAL_JITTER_PERCENTAGE, IntervalJitter, no_jitter


def test_default_is_five_percent() -> None:
    assert DEFAULT_INTERVAL_JITTER_PERCENTAGE == 5
    assert IntervalJitter().bounds(600.0) == (570.0, 630.0)


@pytest.mark.parametrize(
    ("u", "want"),
    [(0.0, 90.0), (0.25, 95.0), (0.5, 100.0), (0.75, 105.0)],
)
def test_scales_by_one_plus_p_times_2u_minus_1(u: float, want: float) -> None:
    jitter = IntervalJitter(10, rand=lambda: u)
    assert jitter(100.0) == pytest.approx(want)


def test_spread_is_symmetric_and_bounded() -> None:
    jitter = IntervalJitter(rand=random.Random(7).random)  # noqa: S311  (seeded on purpose)
    samples = [jitter(60.0) for _ in range(5000)]
    assert all(57.0 <= s <= 63.0 for s in samples)
    below = sum(s < 60.0 for s in samples)
    assert 2000 < below < 3000  # both directions, about evenly
    assert min(samples) < 57.2
    assert max(samples) > 62.8
    assert sum(samples) / len(samples) == pytest.approx(60.0, abs=0.1)


def test_seeded_source_is_reproducible() -> None:
    a = IntervalJitter(rand=random.Random(1).random)  # noqa: S311  (seeded on purpose)
    b = IntervalJitter(rand=random.Random(1).random)  # noqa: S311
    assert [a(300.0) for _ in range(10)] == [b(300.0) for _ in range(10)]


def test_zero_percent_and_non_positive_intervals_are_untouched() -> None:
    assert IntervalJitter(0, rand=lambda: 0.0)(60.0) == 60.0
    jitter = IntervalJitter(50, rand=lambda: 0.0)
    assert jitter(0.0) == 0.0
    assert jitter(-1.0) == -1.0
    assert jitter.bounds(0.0) == (0.0, 0.0)
    assert no_jitter(42.5) == 42.5


@pytest.mark.parametrize("bad", [100, 150, -1])
def test_rejects_percentages_outside_0_to_100(bad: float) -> None:
    with pytest.raises(ValueError, match=r"< 100"):
        IntervalJitter(bad)

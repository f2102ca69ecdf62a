"""The rate limit as the fleet sync uses it: tiny waits within the margin are not slept."""

from __future__ import annotations

import random

import pytest
from django.core.cache import caches

from django_cronofy_conferencing.ratelimit import RateLimiter, parse_rate


class FakeClock:
    def __init__(self, now: float = 5_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def clear_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


def make(clock, *rates, margin=None):
    return RateLimiter(
        [parse_rate(r) for r in rates], clock=clock, sleep=clock.sleep, safety_margin=margin
    )


def test_min_sleep_is_a_tenth_of_the_margin_at_most_a_millisecond():
    assert make(FakeClock(), "50/s", "500/m").min_sleep == pytest.approx(0.001)
    assert make(FakeClock(), "50/s", margin=0.005).min_sleep == pytest.approx(0.0005)
    assert make(FakeClock(), "50/s", margin=0.0).min_sleep == 0.0


def test_a_tiny_wait_is_not_slept_but_a_real_one_is():
    clock = FakeClock(100.0)
    limiter = make(clock, "10/s")  # slots 0.103 s apart: 100.013, 100.116, ...
    limiter.acquire()
    assert clock.slept == [pytest.approx(0.013)]
    clock.now = 100.1155  # the next slot is half a millisecond away: not slept
    assert limiter.acquire() == pytest.approx(0.0005)
    assert clock.slept == [pytest.approx(0.013)]


@pytest.mark.parametrize("seed", range(5))
def test_windows_hold_the_limit_with_the_default_margin(seed):
    """Starting up to min_sleep early never puts more than the limit in a window."""
    rng = random.Random(seed)
    clock = FakeClock()
    rates = ["20/s", "100/m"]
    limiter = make(clock, *rates)
    starts = []
    for _ in range(400):
        clock.now += rng.choice([0.0, 0.0, rng.uniform(0, 0.2), rng.uniform(0, 0.0015)])
        limiter.acquire()
        starts.append(clock.now)
    for rate in map(parse_rate, rates):
        for i in range(len(starts) - rate.limit):
            assert starts[i + rate.limit] - starts[i] >= rate.period

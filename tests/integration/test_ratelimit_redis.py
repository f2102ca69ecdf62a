"""The rate limiter on a real Redis: limiters in several threads share one schedule."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import caches

from django_cronofy_conferencing.cronofy.ratelimit import RateLimiter, parse_rate


@pytest.fixture
def redis_cache(settings, redis_url, key_prefix):
    settings.CACHES = {
        **settings.CACHES,
        "limits": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": key_prefix,
        },
    }
    yield caches["limits"]
    caches["limits"].close()


def limiter(budget: str = "app") -> RateLimiter:
    return RateLimiter([parse_rate("10/s")], "limits", budget=budget, sleep=lambda s: None)


def test_limiters_share_the_schedule(redis_cache):
    first, second = limiter(), limiter()
    times = [first.reserve(), second.reserve(), first.reserve(), second.reserve()]
    assert len(set(times)) == 4  # no slot claimed twice
    assert max(times) - min(times) == pytest.approx(3 * 0.1 * 1.03, abs=0.35)


def test_threads_never_claim_the_same_slot(redis_cache):
    together = threading.Barrier(4, timeout=10)
    times: list[float] = []
    lock = threading.Lock()

    def claim() -> None:
        ours = limiter()
        together.wait()
        got = [ours.reserve() for _ in range(5)]
        with lock:
            times.extend(got)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(times) == len(set(times)) == 20


def test_budgets_have_slots_of_their_own(redis_cache):
    first, second = limiter("a").reserve(), limiter("b").reserve()
    # Both start now (an idle budget's slot is now): "b" is not a slot (0.1 s) behind "a".
    assert abs(second - first) < 0.05

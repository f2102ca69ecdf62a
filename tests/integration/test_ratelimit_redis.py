"""The rate limiter on a real Redis: claims on a held connection, as ``cache.add`` does."""

from __future__ import annotations

import gc
import threading

import pytest
from django.core.cache import caches

from django_cronofy_conferencing.ratelimit import RateLimiter, parse_rate

from .conftest import redis_client


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


def adder(ours: RateLimiter):
    """The limiter's claim of one key: ``add(key, timeout) -> bool``."""
    add_many = ours._adder()
    return lambda key, timeout: add_many([(key, timeout)])[0]


def test_a_claim_is_the_key_cache_add_would_set(redis_cache):
    add = adder(limiter())
    assert add("slot-1", 5) is True
    assert add("slot-1", 5) is False  # taken: SET NX
    assert redis_cache.add("slot-1", 1, timeout=5) is False  # Django sees our key
    assert redis_cache.get("slot-1") == 1
    assert redis_cache.add("slot-2", 1, timeout=5) is True
    assert add("slot-2", 5) is False  # and we see Django's


def test_many_claims_go_in_one_pipeline_and_each_gets_its_own_answer(redis_cache):
    assert redis_cache.add("many-2", 1, timeout=5) is True  # someone else holds this one
    add_many = limiter()._adder()
    keys = [(f"many-{i}", 5) for i in range(5)]
    assert add_many(keys) == [True, True, False, True, True]
    assert add_many(keys) == [False] * 5
    assert redis_client().ttl(redis_cache.make_key("many-4")) in (4, 5)


def test_claims_of_many_requests_share_the_schedule_with_single_claims(redis_cache):
    first, second = limiter(), limiter()
    times = [*first.reserve_many(3), second.reserve(), *second.reserve_many(4), first.reserve()]
    assert len(set(times)) == 9  # no slot claimed twice
    assert sorted(times)[-1] - sorted(times)[0] == pytest.approx(8 * 0.1 * 1.03, abs=0.35)


def test_limiters_on_two_pools_share_the_schedule(redis_cache):
    first, second = limiter(), limiter()
    times = [first.reserve(), second.reserve(), first.reserve(), second.reserve()]
    assert len(set(times)) == 4  # no slot claimed twice


def test_each_thread_holds_one_connection_and_gives_it_back(redis_cache):
    add = adder(limiter())
    add("warm", 5)
    pool = redis_cache._cache.get_client(write=True).connection_pool

    together = threading.Barrier(4, timeout=10)

    def claim(i: int) -> None:
        assert add(f"thread-{i}", 5) is True
        together.wait()  # all four hold a connection at once
        assert add(f"thread-{i}-again", 5) is True

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gc.collect()
    # The four threads' connections are back in the pool; only this thread's is out.
    assert len(pool._in_use_connections) == 1
    assert len(pool._available_connections) == 4


def test_a_connection_the_server_dropped_is_reconnected_without_an_outage(redis_cache, caplog):
    ours = limiter()
    add = adder(ours)
    assert add("before", 5) is True
    killed = redis_client().client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert ours.acquire() >= 0.0
    assert add("after", 5) is True
    assert "unreachable" not in caplog.text

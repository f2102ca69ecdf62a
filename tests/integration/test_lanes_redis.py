"""Lanes across processes through Redis (issue 21): one process sweeps at its whole
share of RATE_LIMITS=["10/s"] (eight threads in the background lane), this one serves
users' calls; no user waits a slot behind the sweep, and the sweep keeps its share."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from django.core.cache import caches

from django_cronofy_conferencing.cronofy.ratelimit import Lane, RateLimiter, parse_rate
from django_cronofy_conferencing.testing import max_in_window

from .conftest import PYTHON, REDIS_URL, ROOT

SWEEPER = """
import json, sys, threading, time
import django
django.setup()
from django_cronofy_conferencing.cronofy.ratelimit import Lane, RateLimiter, parse_rate
limiter = RateLimiter([parse_rate("10/s")], "default", budget="it", fleet_share=0.8)
stop, starts, lock = time.time() + float(sys.argv[1]), [], threading.Lock()
def sweep():
    while time.time() < stop:
        limiter.acquire(Lane.BACKGROUND)
        with lock:
            starts.append(time.time())
threads = [threading.Thread(target=sweep) for _ in range(8)]
for thread in threads:
    thread.start()
print("sweeping", flush=True)
for thread in threads:
    thread.join()
print(json.dumps(starts), flush=True)
"""


@pytest.fixture
def redis_limits(settings, redis_url, key_prefix):
    settings.CACHES = {
        **settings.CACHES,
        "limits": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": key_prefix,
        },
    }
    yield
    caches["limits"].close()


def test_a_sweeping_process_never_delays_another_process_users(redis_limits, key_prefix):
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "CRONOFY_CACHE_URL": REDIS_URL,
        "CRONOFY_CACHE_PREFIX": key_prefix,
        "PATH": "/usr/bin:/bin",
    }
    sweeper = subprocess.Popen(
        [PYTHON, "-c", SWEEPER, "3.0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sweeper.stdout.readline().strip() == "sweeping", sweeper.stderr.read()
        users = RateLimiter([parse_rate("10/s")], "limits", budget="it", fleet_share=0.8)
        user_starts, waits = [], []
        for _ in range(6):
            waits.append(users.acquire(Lane.USER))
            user_starts.append(time.time())
        out, err = sweeper.communicate(timeout=30)
    finally:
        if sweeper.poll() is None:
            sweeper.kill()
    assert sweeper.returncode == 0, err
    sweep = json.loads(out.strip().splitlines()[-1])
    assert len(sweep) >= 15  # it did sweep, beside the users
    interval = 0.1 * 1.03
    assert max(waits) < interval + 0.05, waits  # one slot at most (plus a busy machine)
    assert max_in_window(sweep, 1.0) <= 8 + 1  # timestamps are wake-ups: one may be late
    assert max_in_window(sweep + user_starts, 1.0) <= 10 + 1  # a late wake-up's slack

"""Integration tests against real services and real processes.

- Redis (``REDIS_URL``, default ``redis://127.0.0.1:6379/15``): the Celery broker
  and the cache that shares the rate limit between processes. Missing: skipped
  locally, a failure with ``CRONOFY_REQUIRE_SERVICES=1`` (CI).
- PostgreSQL: the worker and command tests run in the suite's PostgreSQL run
  (``DATABASE_URL=postgres://...``) and are skipped in its SQLite runs.

Every process a test starts gets the test database, the HTTP simulator, the
Redis cache (under a key prefix of the test's own) and the rate limit through
environment variables that ``tests/settings.py`` reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parent.parent.parent
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_client():
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)


@pytest.fixture
def redis_url() -> str:
    try:
        available = bool(redis_client().ping())
    except Exception:
        available = False
    require_service(available, f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL run of the suite (DATABASE_URL=postgres://...)")


@pytest.fixture
def key_prefix(redis_url):
    """A cache key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"cronofy-it-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis_client()
    keys = list(client.scan_iter(f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def database_url() -> str:
    """The test database, for a process started by the test."""
    s = connection.settings_dict
    where = f"{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}"
    return f"postgres://{s['USER'] or 'postgres'}@{where}/{s['NAME']}"


def process_env(server, *, cache_prefix: str, rate_limits: str = "", **extra: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url(),
        "CRONOFY_SIM_API_URL": server.api_url,
        "CRONOFY_SIM_APP_URL": server.app_url,
        "CRONOFY_CACHE_URL": REDIS_URL,
        "CRONOFY_CACHE_PREFIX": cache_prefix,
        "CRONOFY_RATE_LIMITS": rate_limits,
        **extra,
    }
    env.pop("PYTEST_ADDOPTS", None)
    return env


PYTHON = sys.executable


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    """``benchmarks/<script>`` with ``args`` in a process of its own (a smoke of it)."""
    return subprocess.run(
        [PYTHON, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_fleet(sim, count: int, data_center: str = "sim") -> list:
    """``count`` simulated accounts (one or two profiles each) and their LinkedAccounts."""
    from datetime import timedelta

    from django.utils import timezone

    from django_cronofy_conferencing.models import LinkedAccount

    sim_accounts = []
    for i in range(count):
        profiles = [sim.profile("zoom")]
        if i % 2:
            profiles.append(sim.profile("ms_teams", connected=i % 4 != 1))
        sim_accounts.append(
            sim.add_account(data_center=data_center, conferencing_profiles=profiles)
        )
    expires = timezone.now() + timedelta(hours=1)
    LinkedAccount.objects.bulk_create(
        LinkedAccount(
            data_center=data_center,
            sub=a.sub,
            email=a.email,
            access_token=a.access_token,
            refresh_token=a.refresh_token,
            token_expires_at=expires,
        )
        for a in sim_accounts
    )
    return sim_accounts

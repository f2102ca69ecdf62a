"""A tiny smoke of benchmarks/example_burst.py (the real burst is 2,000 requests)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import pytest

from .conftest import run_benchmark


@pytest.fixture
def burst_database_url(postgres_only):
    parts = urlsplit(os.environ["DATABASE_URL"])
    url = urlunsplit(parts._replace(path="/cronofy_burst_smoke"))
    yield url
    import psycopg

    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS cronofy_burst_smoke WITH (FORCE)")


def test_every_request_of_a_burst_gets_the_page(burst_database_url):
    done = run_benchmark(
        "example_burst.py",
        "--requests=20",
        "--concurrency=4",
        f"--database-url={burst_database_url}",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "{200: 20}" in done.stdout
    assert "still open after the burst: 0" in done.stdout

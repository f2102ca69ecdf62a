"""Two ``cronofy_sync`` processes at once over the same accounts, on PostgreSQL.

Both reach the HTTP simulator of this test, which enforces a strict sliding
window; both draw from one rate limit through the Redis cache. Without the
shared limit they would make ten times the allowed rate (2 x 8 threads at
50 ms) and see 429s.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter

import pytest

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.testing import SimulatedCronofy, serve_simulator

from .conftest import PYTHON, ROOT, make_fleet, process_env

ACCOUNTS = 60
RATE = 25  # requests per second, for the simulator and for the app

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_commands_share_the_rate_limit_and_write_no_duplicates(
    postgres_only, redis_url, key_prefix
):
    sim = SimulatedCronofy()
    with serve_simulator(sim, latency=0.05, rate_limits=[f"{RATE}/s"]) as server:
        sim_accounts = make_fleet(sim, ACCOUNTS)
        env = process_env(server, cache_prefix=key_prefix, rate_limits=f"{RATE}/s,1000/m")
        command = [PYTHON, "manage.py", "cronofy_sync", "--concurrency", "8", "-v", "2"]
        started = time.monotonic()
        processes = [
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = []
        try:
            for process in processes:
                out, err = process.communicate(timeout=90)
                outputs.append((process.returncode, out, err))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
        elapsed = time.monotonic() - started

        for returncode, out, err in outputs:
            assert returncode == 0, (out, err)
            assert "0 failed." in out, out
            assert err.strip() == "", err
        requests_made = sim.count("userinfo")
        print(
            f"{requests_made} requests in {elapsed:.1f}s; at most {server.max_in_window(1.0)} "
            f"in a second; {server.rate_limited} answered 429"
        )
        per_account = Counter(r.sub for r in sim.requests if r.endpoint == "userinfo")
        assert set(per_account) == {a.sub for a in sim_accounts}
        assert ACCOUNTS <= requests_made <= 2 * ACCOUNTS
        # The limit held in total: no 429, never more than RATE in any second.
        assert server.rate_limited == 0
        assert server.max_in_window(1.0) <= RATE
        assert elapsed >= (requests_made - RATE) / RATE

    assert LinkedAccount.objects.filter(last_synced_at__isnull=True).count() == 0
    expected_profiles = sum(len(a.conferencing_profiles) for a in sim_accounts)
    assert ConferencingProfile.objects.count() == expected_profiles
    assert LinkedAccount.objects.exclude(last_sync_error="").count() == 0

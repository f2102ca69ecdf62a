"""sync_accounts with threads: writes stay correct on SQLite (a real file) and PostgreSQL.

The suite's default SQLite database lives in memory (shared cache), which
locks differently from a file; so on SQLite the threaded test runs again in
a subprocess whose test database is a file (``DATABASE_URL=sqlite:///...``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import stream_accounts, sync_accounts

ROOT = Path(__file__).resolve().parents[2]
THREADS = 8


def _in_memory_sqlite() -> bool:
    return connection.vendor == "sqlite" and connection.is_in_memory_db()


def exercise_concurrent_sync(sim, link_account) -> None:
    """48 accounts at 8 threads: fresh, expiring (refresh), dead grants, changed profiles."""
    sim.fail("userinfo", delay=0.005, times=None)  # keep the threads overlapping
    sim.fail("token", delay=0.005, times=None)
    accounts, dead, expiring = [], set(), set()
    for i in range(48):
        profiles = [sim.profile("zoom"), sim.profile("ms_teams", connected=i % 2 == 0)]
        account, sim_account = link_account(
            conferencing_profiles=profiles, token_expires_in=60 if i % 4 == 0 else 3600
        )
        if i % 10 == 9:  # the user disconnected the app at Cronofy
            sim.revoke_grant(sim_account.sub)
            dead.add(account.pk)
        elif i % 4 == 0:
            expiring.add(account.pk)
        accounts.append((account, sim_account))
    live = 48 - len(dead)

    report = sync_accounts(
        stream_accounts(LinkedAccount.objects.all(), chunk_size=7), concurrency=THREADS
    )
    assert set(report.failures) == dead, report.failures
    assert report.failed_by_reason() == {"InvalidGrant": len(dead)}
    assert report.synced == live
    assert ConferencingProfile.objects.count() == 2 * live
    assert LinkedAccount.objects.filter(last_synced_at__isnull=False).count() == live
    needs_reauth = LinkedAccount.objects.filter(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    assert set(needs_reauth.values_list("pk", flat=True)) == dead
    # Every expiring token was refreshed, once.
    assert sim.count("token", status=200) == len(expiring)

    # Again, with half of them disconnected at Cronofy: updates, no new rows.
    for account, sim_account in accounts[::2]:
        if account.pk not in dead:
            profile = sim_account.conferencing_profiles[0]
            sim.set_connected(sim_account.sub, profile["profile_id"], False)
    report = sync_accounts(LinkedAccount.objects.active(), concurrency=THREADS)
    assert report.failed == 0
    assert report.changed == sum(1 for a, _ in accounts[::2] if a.pk not in dead)
    assert ConferencingProfile.objects.count() == 2 * live
    disconnected_zoom = ConferencingProfile.objects.disconnected().filter(provider_name="zoom")
    assert disconnected_zoom.count() == report.changed


@pytest.mark.django_db(transaction=True)
def test_concurrent_sync_on_this_database(sim, link_account):
    exercise_concurrent_sync(sim, link_account)


@pytest.mark.django_db(transaction=True)
def test_failed_batches_are_written_one_by_one(sim, link_account, monkeypatch):
    """A batch that fails (a concurrent writer, a bad row) is retried account by account;
    an account streamed twice is written twice, never in the same batch."""
    from django.db import IntegrityError

    from django_cronofy_conferencing.sync import service as sync

    sim, link_account = sim, link_account
    real = sync.apply_userinfo_many
    calls = []

    def flaky(items):
        calls.append(len(items))
        if len(calls) == 1:
            raise IntegrityError("simulated")
        return real(items)

    monkeypatch.setattr(sync, "apply_userinfo_many", flaky)
    accounts = [link_account(conferencing_profiles=[sim.profile("zoom")])[0] for _ in range(12)]
    report = sync_accounts([*accounts, accounts[0], accounts[1]], concurrency=4)
    assert report.failed == 0, report.failures
    assert report.synced == 14  # every sync done; results keeps the last one per account
    assert len(report.results) == 12
    assert ConferencingProfile.objects.count() == 12
    assert LinkedAccount.objects.filter(last_synced_at__isnull=True).count() == 0
    assert sim.count("userinfo") == 14
    assert calls and sum(calls) >= 14 - calls[0]


def test_concurrent_sync_on_file_sqlite(tmp_path):
    """The same (and cronofy_sync's threads), in a subprocess whose SQLite database is a file."""
    if os.environ.get("DATABASE_URL", "sqlite").split(":")[0] not in ("sqlite", ""):
        pytest.skip("runs on the SQLite configuration of the suite")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'concurrency.sqlite3'}",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PYTEST_ADDOPTS", None)  # no junit report or plugins of the outer run
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # starts in a second, not in several
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytest_django.plugin",
            f"{__file__}::test_concurrent_sync_on_this_database",
            f"{__file__}::test_failed_batches_are_written_one_by_one",
            f"{__file__}::test_failures_of_the_fleet_sync_are_recorded_on_each_account",
            f"{ROOT / 'tests/management/commands/test_cronofy_sync.py'}::test_threads",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    assert "4 passed" in output, output[-4000:]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("many", [False, True], ids=["apply_userinfo", "apply_userinfo_many"])
def test_profiles_are_read_under_the_accounts_row_lock(sim, link_account, row_lock_holder, many):
    """PostgreSQL, two connections: a profile another writer stores while this write waits
    on the account's row is seen and updated. Without the row lock the write planned an
    insert from what it had read before and failed on the unique key (IntegrityError,
    which ``sync_account``'s retry would have hidden)."""
    from django_cronofy_conferencing.cronofy.userinfo import parse_userinfo
    from django_cronofy_conferencing.models import ConferencingProfile
    from django_cronofy_conferencing.sync import writes

    account, sim_account = link_account(conferencing_profiles=[sim.profile("zoom")])
    profile_id = sim_account.conferencing_profiles[0]["profile_id"]
    info = parse_userinfo(sim._userinfo(sim_account), expected_sub=sim_account.sub)

    def store_meanwhile():
        ConferencingProfile.objects.create(
            account_id=account.pk,
            profile_id=profile_id,
            provider_name="zoom",
            profile_connected=False,
        )

    with row_lock_holder(account.pk, store_meanwhile):
        if many:
            writes.apply_userinfo_many([(account, info)])
        else:
            writes.apply_userinfo(account, info)
    assert ConferencingProfile.objects.filter(account=account).count() == 1


@pytest.mark.django_db(transaction=True)
def test_failures_of_the_fleet_sync_are_recorded_on_each_account(sim, link_account):
    """What ``sync_account`` records, ``sync_accounts`` records too: the error, one
    more consecutive failure; and a success resets them."""
    sim, link_account = sim, link_account
    pairs = [link_account(conferencing_profiles=[sim.profile("zoom")]) for _ in range(6)]
    failing = {account.pk for account, _ in pairs[::2]}
    for account, sim_account in pairs:
        LinkedAccount.objects.filter(pk=account.pk).update(
            consecutive_failures=2, last_sync_error="an older failure"
        )
        if account.pk in failing:
            sim.fail("userinfo", status=503, times=None, sub=sim_account.sub)
    report = sync_accounts(LinkedAccount.objects.all(), concurrency=3)
    assert report.failed == len(failing)
    for account in LinkedAccount.objects.all():
        if account.pk in failing:
            assert account.consecutive_failures == 3
            assert "HTTP 503" in account.last_sync_error
        else:
            assert (account.consecutive_failures, account.last_sync_error) == (0, "")
            assert account.last_synced_at is not None

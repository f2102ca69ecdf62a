"""``sync_accounts`` and ``cronofy_sync`` as a host calls them: in an ordinary
pytest-django test (in-memory SQLite by default, PostgreSQL in its run) and
inside the caller's ``transaction.atomic()``.

They see the rows the caller wrote, write inside its transaction (the caller
commits or rolls back), and never close or replace its connection, while the
UserInfo calls stay concurrent.
"""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_accounts
from django_cronofy_conferencing.sync.service import queries_run_on_caller

ACCOUNTS = 12


def link_many(sim, link_account, count: int = ACCOUNTS, **kwargs) -> list[LinkedAccount]:
    return [
        link_account(conferencing_profiles=[sim.profile("zoom")], **kwargs)[0] for _ in range(count)
    ]


def two_userinfo_calls_meet(sim, monkeypatch) -> list[bool]:
    """The first two UserInfo calls wait for each other (no sleep): they meet only
    when they are in flight at the same time; each records whether it met the other."""
    meeting = threading.Barrier(2, timeout=5)
    met: list[bool] = []
    seen = iter(range(10**6))
    real = sim.handle

    def handle(request, data_center):
        if request.path == "/v1/userinfo" and next(seen) < 2:  # next() is atomic
            try:
                meeting.wait()
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)
        return real(request, data_center)

    monkeypatch.setattr(sim, "handle", handle)
    return met


@pytest.mark.django_db
def test_a_plain_host_test_syncs_with_the_command(sim, link_account):
    accounts = link_many(sim, link_account)
    wrapper, dbapi = connection, connection.connection
    call_command("cronofy_sync", "--all", "--concurrency", "4", stdout=None)
    assert ConferencingProfile.objects.filter(account__in=accounts).count() == ACCOUNTS
    assert LinkedAccount.objects.filter(last_synced_at__isnull=True).count() == 0
    assert connection is wrapper and connection.connection is dbapi  # the caller's, open


@pytest.mark.django_db
def test_a_plain_host_test_syncs_with_sync_accounts_concurrently(sim, link_account, monkeypatch):
    accounts = link_many(sim, link_account)
    met = two_userinfo_calls_meet(sim, monkeypatch)
    dbapi = connection.connection
    report = sync_accounts(LinkedAccount.objects.all(), concurrency=4)
    assert (report.synced, report.failed) == (ACCOUNTS, 0)
    assert ConferencingProfile.objects.filter(account__in=accounts).count() == ACCOUNTS
    assert met == [True, True]  # HTTP stayed concurrent
    assert connection.connection is dbapi


@pytest.mark.django_db(transaction=True)
def test_inside_the_callers_transaction_what_it_writes_is_the_callers(sim, link_account):
    user_model = get_user_model()
    dbapi = None
    with pytest.raises(RuntimeError, match="the caller changed its mind"), transaction.atomic():
        dbapi = connection.connection
        user = user_model.objects.create(username="written-by-the-caller")
        # Accounts created in this transaction, some with tokens about to expire:
        # the refresh runs under the row lock, inside the caller's transaction.
        accounts = link_many(sim, link_account, user=user, token_expires_in=10)
        assert queries_run_on_caller(connection.alias)
        report = sync_accounts(LinkedAccount.objects.filter(user=user), concurrency=4)
        assert (report.synced, report.failed) == (ACCOUNTS, 0), report.failures
        assert ConferencingProfile.objects.filter(account__in=accounts).count() == ACCOUNTS
        assert sim.count("token", status=200) == ACCOUNTS  # each refreshed once
        assert user_model.objects.filter(pk=user.pk).exists()  # the caller's row is still there
        assert connection.connection is dbapi
        raise RuntimeError("the caller changed its mind")
    assert connection.connection is dbapi  # still the caller's connection, and usable
    assert not user_model.objects.filter(username="written-by-the-caller").exists()
    assert LinkedAccount.objects.count() == ConferencingProfile.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_inside_the_callers_transaction_a_commit_keeps_it_all(sim, link_account):
    with transaction.atomic():
        accounts = link_many(sim, link_account, count=5)
        call_command("cronofy_sync", "--all", "--concurrency", "3", stdout=None)
    assert ConferencingProfile.objects.filter(account__in=accounts).count() == 5
    assert connection.is_usable()


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_threads_query_on_connections_of_their_own(
    sim, link_account, monkeypatch
):
    """The fleet's own speed: refreshes in the fetching threads (a real database only)."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        assert queries_run_on_caller(connection.alias)  # one in-memory database: one thread
        return
    assert not queries_run_on_caller(connection.alias)
    link_many(sim, link_account, count=6, token_expires_in=10)
    refreshed_on = set()
    from django_cronofy_conferencing.accounts import tokens

    real = tokens.refresh_tokens

    def record(*args, **kwargs):
        refreshed_on.add(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(tokens, "refresh_tokens", record)
    report = sync_accounts(LinkedAccount.objects.all(), concurrency=3)
    assert report.failed == 0
    assert refreshed_on and threading.current_thread().name not in refreshed_on


@pytest.mark.django_db
def test_an_interrupted_sync_stops_its_threads(sim, link_account):
    """Ctrl-C (or a task's time limit) on the calling thread: the fetching threads,
    some waiting on a query only the caller runs, all stop before it goes up."""
    link_many(sim, link_account, count=8, token_expires_in=10)  # refreshes: queries on caller

    def interrupt(account, result, error):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync_accounts(LinkedAccount.objects.all(), concurrency=4, progress=interrupt)
    assert [t.name for t in threading.enumerate() if t.name.startswith("cronofy-sync-")] == []

"""A dropped database connection in the middle of a fleet sync (issue 20 §2.7).

PostgreSQL only: a second connection terminates the caller's backend
(``pg_terminate_backend``, which waits until it is gone) right before a chosen
statement, through Django's ``execute_wrapper``; no sleeping. Outside a caller's
transaction the sync reopens its connection and carries on, and says so in its
report and the command's summary; inside one it stops with a clear error.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.db.backends.signals import connection_created

from django_cronofy_conferencing.exceptions import DatabaseConnectionLost
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import service, stream_accounts, sync_accounts

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

FLEET = 60
CHUNK = 10
#: The keyset read of the next chunk of accounts (``AccountStream``).
READ = f'ORDER BY "cronofy_conferencing_linkedaccount"."id" ASC LIMIT {CHUNK}'
#: The first statement of a batch's write: its accounts' row locks.
WRITE = "FOR UPDATE"


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL run of the suite (DATABASE_URL=postgres://...)")


def terminate(pid: int) -> None:
    """End backend ``pid`` from a second connection, and wait until it is gone."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
            assert cursor.fetchone()[0] is True
    finally:
        other.close()


class Killer:
    """An execute wrapper: right before the statements (counted from 1) whose SQL holds
    ``marker`` and whose number is in ``at``, the connection's backend is terminated."""

    def __init__(self, marker: str, *at: int) -> None:
        self.marker, self.at, self.seen, self.killed = marker, set(at), 0, 0

    def __call__(self, execute, sql, params, many, context):
        if self.marker in sql:
            self.seen += 1
            if self.seen in self.at:
                terminate(context["connection"].connection.info.backend_pid)
                self.killed += 1
        return execute(sql, params, many, context)


@pytest.fixture
def fleet(sim, link_account):
    return [
        link_account(conferencing_profiles=[sim.profile("zoom"), sim.profile("go_to")])[0]
        for _ in range(FLEET)
    ]


@pytest.fixture
def small_batches(monkeypatch):
    """Several write batches for the fleet (and a window of unwritten accounts that
    makes the reader come back for more chunks while writes are going on)."""
    monkeypatch.setattr(service, "WRITE_BATCH_SIZE", 5)


def assert_all_synced_once() -> None:
    assert LinkedAccount.objects.filter(last_synced_at__isnull=True).count() == 0
    assert ConferencingProfile.objects.count() == 2 * FLEET  # none lost, none twice
    assert LinkedAccount.objects.exclude(consecutive_failures=0).count() == 0


def test_a_dropped_reader_connection_is_reopened_and_the_sync_carries_on(fleet, small_batches):
    killer = Killer(READ, 3)
    with connection.execute_wrapper(killer):
        report = sync_accounts(
            stream_accounts(LinkedAccount.objects.all(), chunk_size=CHUNK), concurrency=2
        )
    assert killer.killed == 1
    assert (report.synced, report.failed, report.reconnects) == (FLEET, 0, 1)
    assert_all_synced_once()


def test_a_connection_dropped_before_a_batch_write_is_reopened_and_the_batch_written(
    fleet, small_batches
):
    killer = Killer(WRITE, 2)
    with connection.execute_wrapper(killer):
        report = sync_accounts(LinkedAccount.objects.all(), concurrency=2)
    assert killer.killed == 1
    assert (report.synced, report.failed, report.reconnects) == (FLEET, 0, 1)
    assert_all_synced_once()


def test_the_command_says_so_in_its_summary(fleet, small_batches):
    out = io.StringIO()
    with connection.execute_wrapper(Killer(READ, 2)):
        call_command("cronofy_sync", "--all", "--chunk-size", str(CHUNK), stdout=out)
    summary = out.getvalue().strip().splitlines()[-1]
    assert summary.startswith(f"Synced {FLEET} of {FLEET} Cronofy accounts in ")
    assert summary.endswith("0 failed; the database connection dropped once and was reopened.")
    assert_all_synced_once()


def test_a_connection_that_drops_again_at_once_stops_the_command_with_its_summary(
    fleet, small_batches
):
    out = io.StringIO()
    # One thread: at most 2 + 5 accounts unwritten, so the third read comes after writes.
    command = ("cronofy_sync", "--all", "--chunk-size", str(CHUNK), "--concurrency", "1")
    # The sweep reads its classes in order (failing and disconnected: none here), so the
    # never-synced accounts' third chunk is the fifth read.
    with connection.execute_wrapper(Killer(READ, 5, 6)), pytest.raises(CommandError) as exc:
        call_command(*command, stdout=out)
    assert exc.value.returncode == 1
    assert "dropped again right after it was reopened: the sync stopped" in str(exc.value)
    summary = out.getvalue().strip().splitlines()[-1]
    assert summary.endswith("0 failed; the database connection dropped once and was reopened.")
    synced = LinkedAccount.objects.filter(last_synced_at__isnull=False).count()
    assert 0 < synced < FLEET
    assert f"Synced {synced} of {synced} " in summary  # every account it counted is stored


def test_inside_the_callers_transaction_it_stops_with_a_clear_error(fleet, small_batches):
    killer = Killer(WRITE, 1)
    with pytest.raises(DatabaseConnectionLost) as exc:  # noqa: SIM117 - the atomic block's error
        with transaction.atomic(), connection.execute_wrapper(killer):
            sync_accounts(LinkedAccount.objects.all(), concurrency=2)
    assert "inside the caller's transaction, which a new connection cannot continue" in str(
        exc.value
    )
    assert exc.value.report is not None and exc.value.report.synced == 0
    assert LinkedAccount.objects.filter(last_synced_at__isnull=False).count() == 0


def test_a_fetching_threads_dropped_connection_is_reopened_for_its_next_account(
    sim, link_account, monkeypatch
):
    """A refresh runs its queries on the fetching thread's own connection; the account
    whose answer could not be recorded fails, the thread's next account refreshes."""
    link_account(token_expires_in=10, conferencing_profiles=[sim.profile()])
    second, _ = link_account(token_expires_in=10, conferencing_profiles=[sim.profile()])
    sim.fail("token", status=200, body='{"access_token": "at_x", "expires_in": 1e12}')
    killer = Killer('SET "last_sync_error"', 1)  # the refresh's record of that answer
    main = connections["default"]

    def install(sender, connection, **kwargs):
        if connection is not main:
            connection.execute_wrappers.append(killer)

    connection_created.connect(install)
    try:
        report = sync_accounts(LinkedAccount.objects.order_by("pk"), concurrency=1)
    finally:
        connection_created.disconnect(install)
    assert killer.killed == 1
    assert report.failed == 1 and report.synced == 1
    [reason] = report.failed_by_reason()
    assert reason in ("OperationalError", "InterfaceError")
    second.refresh_from_db()
    assert second.last_synced_at is not None


def test_a_batch_written_again_writes_every_field_it_would_have(fleet, small_batches):
    """The drop comes after the batch set the new values on its account objects: they
    are put back with the rollback, so the second attempt still writes the details (it
    would otherwise take them for unchanged and write only the sync stamps)."""
    killer = Killer('UPDATE "cronofy_conferencing_linkedaccount" SET', 1)
    with connection.execute_wrapper(killer):
        report = sync_accounts(LinkedAccount.objects.all(), concurrency=2)
    assert killer.killed == 1 and report.reconnects == 1
    assert_all_synced_once()
    assert not LinkedAccount.objects.filter(userinfo={}).exists()
    assert not LinkedAccount.objects.filter(zoneinfo="").exists()

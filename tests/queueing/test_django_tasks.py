"""Django's tasks framework tasks (``tasks_django``), on the framework's own test backends
(tests/integration runs django-tasks-db's real ``db_worker``)."""

from __future__ import annotations

import pytest

pytest.importorskip("django_tasks_db")  # the test extra installs the framework

from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.queueing.jobs import SYNC_TASK_MAX_RETRIES
from tests.conftest import enqueued, queue, tasks_backend

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backend():
    with queue("django", TASKS=tasks_backend("dummy.DummyBackend")):
        from django_cronofy_conferencing.queueing.django_tasks import sync_account_task

        backend = sync_account_task.get_backend()
        backend.clear()
        yield backend
        backend.clear()


def test_sync_account_task_syncs(backend, sim, link_account):
    from django_cronofy_conferencing.queueing.django_tasks import sync_account_task

    account, _ = link_account(conferencing_profiles=[sim.profile("zoom")])
    summary = sync_account_task.call(account.pk)
    assert summary["status"] == "synced" and summary["created"] == 1
    assert enqueued(backend) == []


def test_a_transient_failure_is_retried_later_with_run_after(backend, sim, link_account):
    from django_cronofy_conferencing.queueing.django_tasks import sync_account_task

    account, _ = link_account()
    sim.fail("userinfo", status=503, times=10)
    summary = sync_account_task.call(account.pk, None, 0)
    assert summary["status"] == "retrying"
    [result] = backend.results
    assert tuple(result.args) == (account.pk, None, 1)
    assert result.task.run_after is not None
    assert LinkedAccount.objects.get(pk=account.pk).consecutive_failures == 1


def test_retries_are_bounded(backend, sim, link_account):
    from django_cronofy_conferencing.queueing.django_tasks import sync_account_task

    account, _ = link_account()
    sim.fail("userinfo", status=503, times=10)
    summary = sync_account_task.call(account.pk, None, SYNC_TASK_MAX_RETRIES)
    assert summary["status"] == "failed"
    assert enqueued(backend) == []


def test_a_final_failure_is_not_retried(backend, sim, link_account):
    from django_cronofy_conferencing.queueing.django_tasks import sync_account_task

    account, sim_account = link_account()
    sim.revoke_grant(sim_account.sub)
    sim.expire_access_token(sim_account.sub)
    summary = sync_account_task.call(account.pk)
    assert summary["status"] == "failed"
    assert enqueued(backend) == []


def test_no_retry_where_the_backend_cannot_defer(backend, sim, link_account, monkeypatch):
    from django_cronofy_conferencing.queueing.django_tasks import sync_account_task

    monkeypatch.setattr(type(backend), "supports_defer", False)
    account, _ = link_account()
    sim.fail("userinfo", status=503, times=10)
    assert sync_account_task.call(account.pk)["status"] == "failed"
    assert enqueued(backend) == []


def test_a_fresh_account_is_skipped(backend, link_account):
    from django.utils import timezone

    from django_cronofy_conferencing.queueing.django_tasks import sync_account_task

    account, _ = link_account()
    stamp = timezone.now().isoformat()
    LinkedAccount.objects.filter(pk=account.pk).update(last_synced_at=timezone.now())
    assert sync_account_task.call(account.pk, stamp)["status"] == "fresh"


def test_sync_due_accounts_task_enqueues_each_due_account(backend, link_account):
    from django_cronofy_conferencing.queueing.django_tasks import sync_due_accounts_task

    due = [link_account()[0] for _ in range(3)]
    assert sync_due_accounts_task.call() == 3
    assert sorted(args[0] for args in enqueued(backend)) == sorted(a.pk for a in due)

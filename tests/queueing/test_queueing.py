"""``queueing``: the one place the app enqueues, on Celery or Django's tasks framework."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from django_cronofy_conferencing import admin, queueing
from django_cronofy_conferencing.admin import accounts as admin_accounts
from django_cronofy_conferencing.api import views as api_views
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.queueing import jobs
from django_cronofy_conferencing.web import notifications
from tests.conftest import enqueued, queue, tasks_backend

pytestmark = pytest.mark.django_db(transaction=True)  # enqueues happen on commit


@pytest.fixture
def dummy_backend():
    pytest.importorskip("django_tasks_db")  # the test extra: the framework is installed
    with queue("django", TASKS=tasks_backend("dummy.DummyBackend")):
        from django_cronofy_conferencing.queueing.django_tasks import sync_account_task

        backend = sync_account_task.get_backend()
        backend.clear()
        yield backend
        backend.clear()


def test_admin_api_and_push_notifications_share_one_queue_sync():
    assert admin.queue_sync is queueing.queue_sync
    assert api_views.queue_sync is queueing.queue_sync
    assert notifications.queue_sync is queueing.queue_sync
    assert admin_accounts.queue_enabled is api_views.queue_enabled is queueing.queue_enabled


def test_no_queue_by_default_and_nothing_to_hand_work_to():
    assert queueing.queue_enabled() is False
    with pytest.raises(ImproperlyConfigured, match=r"\['TASK_QUEUE'\] is None"):
        queueing.queue_sync(1)


def test_an_unknown_queue_names_the_key():
    with queue("rq"), pytest.raises(ImproperlyConfigured, match=r"\['TASK_QUEUE'\].*'rq'"):
        queueing.queue_enabled()


def test_celery_queue_sync_hands_the_account_id_to_the_task(monkeypatch):
    pytest.importorskip("celery")
    from django_cronofy_conferencing import tasks

    queued: list[tuple] = []
    monkeypatch.setattr(
        tasks.sync_account_task, "delay", lambda *args, **kwargs: queued.append((args, kwargs))
    )
    with queue("celery"):
        assert queueing.queue_enabled()
        queueing.queue_sync(42)
    assert queued == [((42,), {"lane": "user"})]  # a user's queued sync keeps the user's lane


def test_django_queue_sync_enqueues_after_the_transaction_commits(dummy_backend):
    with transaction.atomic():
        queueing.queue_sync(42)
        assert enqueued(dummy_backend) == []  # a worker could not see the row yet
    assert enqueued(dummy_backend) == [(42,)]


def test_a_rolled_back_transaction_enqueues_nothing(dummy_backend):
    with pytest.raises(RuntimeError), transaction.atomic():
        queueing.queue_sync(42)
        raise RuntimeError
    assert enqueued(dummy_backend) == []


def test_due_accounts_are_enqueued_in_chunks_with_one_stamp(
    dummy_backend, link_account, monkeypatch
):
    monkeypatch.setattr(jobs, "FAN_OUT_CHUNK_SIZE", 2)
    due = [link_account()[0] for _ in range(5)]
    revoked, _ = link_account()
    LinkedAccount.objects.filter(pk=revoked.pk).update(status=LinkedAccount.Status.REVOKED)
    assert queueing.queue_due_accounts() == 5
    args = enqueued(dummy_backend)
    assert [a[0] for a in args] == [a.pk for a in due]
    assert len({a[1] for a in args}) == 1


def test_immediate_backend_syncs_the_account(sim, link_account):
    pytest.importorskip("django_tasks_db")
    account, _ = link_account(conferencing_profiles=[sim.profile("zoom")])
    with queue("django", TASKS=tasks_backend("immediate.ImmediateBackend")):
        queueing.queue_sync(account.pk)
    account.refresh_from_db()
    assert account.last_synced_at is not None
    assert account.conferencing_profiles.count() == 1


# -- issue 21: the lane travels in the task's arguments; the channel check as a task ----


def test_django_tasks_carry_the_lane(dummy_backend):
    queueing.queue_sync(42)
    queueing.queue_sync(43, lane="push")
    assert [(r.args, r.kwargs) for r in dummy_backend.results] == [
        ([42], {"lane": "user"}),
        ([43], {"lane": "push"}),
    ]


def test_an_unknown_lane_is_refused_before_anything_is_queued(dummy_backend):
    with pytest.raises(ValueError, match="Unknown rate-limit lane 'fleet'"):
        queueing.queue_sync(42, lane="fleet")
    assert dummy_backend.results == []


@pytest.mark.django_db
def test_the_channel_check_runs_as_a_task_on_either_queue(monkeypatch):
    pytest.importorskip("celery")
    from django_cronofy_conferencing import tasks
    from django_cronofy_conferencing.queueing import celery, django_tasks

    calls = []
    fake = lambda *args: calls.append(args) or {"healthy": 1}  # noqa: E731
    monkeypatch.setattr(celery, "run_channel_check", fake)
    monkeypatch.setattr(django_tasks, "run_channel_check", fake)
    assert tasks.check_channels_task.run() == {"healthy": 1}
    assert django_tasks.check_channels_task.func(repair=False) == {"healthy": 1}
    assert calls == [(True, True), (False, True)]

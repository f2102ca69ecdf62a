"""The one place the app hands work to a queue: ``TASK_QUEUE``.

``None``: nothing is queued (callers sync inline). ``"celery"``: Celery
(``celery``, the ``celery`` extra). ``"django"``: Django's tasks framework
(``django_tasks``; built into Django 6, the ``django-tasks`` backport on 5.2,
the ``tasks`` extra), on whichever backend the host's ``TASKS`` setting names.
Neither is imported until something is queued, so the app imports and runs
without them. Every enqueue happens after the surrounding transaction commits
(at once outside one): a worker never looks for an account that is not there yet.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..conf import SETTINGS_NAME, app_settings
from ..cronofy.ratelimit import Lane, as_lane
from ..db import after_commit
from .jobs import fan_out, fan_out_due

QUEUES = (None, "celery", "django")


def configured_queue() -> str | None:
    """``TASK_QUEUE``, or ImproperlyConfigured naming the key (system check E015)."""
    queue = app_settings.TASK_QUEUE
    if queue not in QUEUES:
        raise ImproperlyConfigured(
            f"{SETTINGS_NAME}['TASK_QUEUE'] must be None, 'celery' or 'django'; got {queue!r}."
        )
    return queue


def queue_enabled() -> bool:
    """Whether syncs go to a queue (the admin, API and push receiver ask this)."""
    return configured_queue() is not None


def _sync_task() -> Any:
    queue = configured_queue()
    if queue == "celery":
        from .celery import sync_account_task
    elif queue == "django":
        from .django_tasks import sync_account_task
    else:
        raise ImproperlyConfigured(
            f"{SETTINGS_NAME}['TASK_QUEUE'] is None: there is no queue to hand syncs to."
        )
    return sync_account_task


def _enqueue(task: Any, account_id: int, synced_before: str | None, lane: Lane) -> None:
    args = (account_id,) if synced_before is None else (account_id, synced_before)
    # The lane travels with the task: a sync a user asked for keeps the user's lane.
    if hasattr(task, "delay"):  # Celery
        task.delay(*args, lane=lane.value)
    else:  # Django's tasks framework
        task.enqueue(*args, lane=lane.value)


def queue_sync(
    account_id: int, *, synced_before: str | None = None, lane: Lane | str = Lane.USER
) -> None:
    """Queue the sync of one account (after commit). ``synced_before``: skip it if
    something synced it after that moment (ISO 8601). ``lane``: whose sync it is
    (a user's by default: the API's 202, the admin's Sync now; push passes ``PUSH``)."""
    task, lane = _sync_task(), as_lane(lane)
    after_commit(lambda: _enqueue(task, account_id, synced_before, lane))


def queue_accounts(
    queryset: Any, *, synced_before: str | None = None, lane: Lane | str = Lane.BACKGROUND
) -> int:
    """Queue one sync per account of ``queryset`` (``jobs.fan_out``); returns how many.
    Background work by default (``cronofy_sync --queue``); the admin's bulk Sync now
    passes the user's lane."""
    task, lane = _sync_task(), as_lane(lane)
    return fan_out(queryset, lambda pk: _enqueue(task, pk, synced_before, lane))


def queue_due_accounts(stale_after: float | None = None) -> int:
    """Queue a sync for every due account (``jobs.fan_out_due``); an account synced
    meanwhile by anything else is skipped by its task."""
    task = _sync_task()
    return fan_out_due(stale_after, lambda pk, stamp: _enqueue(task, pk, stamp, Lane.BACKGROUND))

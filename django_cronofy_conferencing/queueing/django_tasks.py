"""Django's tasks framework: the fleet sync spread over its workers (``TASK_QUEUE = "django"``).

``django.tasks`` on Django 6; the ``django-tasks`` backport on Django 5.2 (the
``tasks`` extra). The backend is the host's (``TASKS``): django-tasks-db with
its ``db_worker``, RQ, a cloud queue... The same work as the Celery tasks
(``jobs``):

- ``sync_account_task(account_id, synced_before=None, retries=0)``: sync one
  account. A transient failure is retried up to ``SYNC_TASK_MAX_RETRIES``
  times with jittered backoff (``Retry-After`` honoured) by enqueueing the
  task again with ``run_after``, where the backend supports deferring
  (``supports_defer``); on one that does not, the failure stays recorded on the
  account and the next sweep tries again.
- ``sync_due_accounts_task(stale_after=None)``: queue one sync per due account
  (run it periodically, e.g. from cron: ``manage.py cronofy_sync --queue``
  does the same in the command's process).
- ``prune_push_notifications_task()``: delete the push notifications older than
  ``PUSH_LOG_DAYS`` (``cronofy_sync`` does it too).
- ``send_relink_reminders_task()``: send the relink reminders that are due
  (``RELINK_REMINDERS``; what ``manage.py cronofy_remind`` does), e.g. hourly.

- ``check_channels_task(repair=True, unconfirmed=True)``: the daily push-channel
  confirmation (what ``manage.py cronofy_channels --unconfirmed --repair`` does).

Importing this module needs the framework installed (``queueing`` imports it
only when ``TASK_QUEUE`` is ``"django"``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.utils import timezone

from ..accounts.reminders import send_due_reminders
from ..cronofy.redaction import redact
from ..db import after_commit
from .jobs import (
    SYNC_TASK_MAX_RETRIES,
    fan_out_due,
    prune_push_log,
    retry_delay,
    run_channel_check,
    run_sync,
)

try:  # Django 6
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task

logger = logging.getLogger(__name__)


@task()
def sync_account_task(
    account_id: int, synced_before: str | None = None, retries: int = 0, lane: str | None = None
) -> dict[str, Any]:
    """Sync one account (``jobs.run_sync``, in ``lane``); retry transient failures where
    deferring works."""
    outcome = run_sync(account_id, synced_before, lane)
    exc = outcome.transient
    if exc is None:
        return outcome.summary
    backend = sync_account_task.get_backend()
    if retries >= SYNC_TASK_MAX_RETRIES or not backend.supports_defer:
        logger.warning(
            "Giving up on Cronofy account %s after %s retries: %s", account_id, retries, redact(exc)
        )
        return outcome.summary
    delay = retry_delay(retries, getattr(exc, "retry_after", None))
    logger.info(
        "Sync of Cronofy account %s failed (%s); retry %s in %.0f s",
        account_id,
        type(exc).__name__,
        retries + 1,
        delay,
    )
    again = sync_account_task.using(run_after=timezone.now() + timedelta(seconds=delay))
    after_commit(lambda: again.enqueue(account_id, synced_before, retries + 1, lane=lane))
    return {**outcome.summary, "status": "retrying", "retry_in": round(delay, 1)}


@task()
def sync_due_accounts_task(stale_after: float | None = None) -> int:
    """Queue one ``sync_account_task`` per due account (``jobs.fan_out_due``)."""
    return fan_out_due(
        stale_after, lambda pk, stamp: sync_account_task.enqueue(pk, stamp, lane="background")
    )


@task()
def check_channels_task(repair: bool = True, unconfirmed: bool = True) -> dict[str, int]:
    """The daily push-channel confirmation (``jobs.run_channel_check``)."""
    return run_channel_check(repair, unconfirmed)


@task()
def prune_push_notifications_task() -> int:
    """Delete the push notifications older than ``PUSH_LOG_DAYS`` (``jobs.prune_push_log``)."""
    return prune_push_log()


@task()
def send_relink_reminders_task() -> dict[str, int]:
    """Send the relink reminders that are due (``accounts.reminders.send_due_reminders``)."""
    return send_due_reminders().as_dict()

"""Celery tasks: the fleet sync spread over workers (the ``celery`` extra).

Only imported where Celery is installed: the rest of the app never imports
this module at import time (``queueing`` imports it lazily when
``CRONOFY_CONFERENCING["TASK_QUEUE"]`` is ``"celery"``). What a task does is
``jobs``: the same for Django's tasks framework (``django_tasks``).

- ``sync_account_task(account_id)``: sync one account. Transient failures
  (``CronofyUnavailable``, ``RateLimited``) are retried up to
  ``SYNC_TASK_MAX_RETRIES`` times with jittered exponential backoff (a
  ``Retry-After`` from Cronofy is honoured); anything else (a dead grant, an
  invalid response, a 4xx) is final: recorded on the account, not retried.
  Returns a small JSON-able summary.
- ``sync_due_accounts_task()``: queue one ``sync_account_task`` per due
  account (see ``LinkedAccount.objects.due``), reading the ids in chunks so
  memory stays flat. A queued task skips its account when something else
  synced it after it was found due, so overlapping runs cost no extra calls.
- ``prune_push_notifications_task()``: delete the push notifications older than
  ``PUSH_LOG_DAYS`` (``cronofy_sync`` does it too; schedule this one when no
  ``cronofy_sync`` runs).
- ``send_relink_reminders_task()``: send the relink reminders that are due
  (``RELINK_REMINDERS``; ``accounts.reminders``); what ``manage.py cronofy_remind``
  does. Safe to overlap: each step goes out once.

The app-wide rate limit (``RATE_LIMITS``) is shared through the cache named
by ``RATE_LIMIT_CACHE``: point it at Redis (or Memcached) so that every
worker draws from the same budget.

Run the fan-out periodically with Celery beat, for instance every five minutes
(with ``SYNC_STALE_AFTER`` at its default of an hour, each account is synced
about hourly)::

    # settings.py of the host project (app.config_from_object("django.conf:settings",
    # namespace="CELERY"))
    CELERY_BEAT_SCHEDULE = {
        "cronofy-sync-due-accounts": {
            "task": "django_cronofy_conferencing.tasks.sync_due_accounts_task",
            "schedule": 300.0,
        },
        "cronofy-relink-reminders": {
            "task": "django_cronofy_conferencing.tasks.send_relink_reminders_task",
            "schedule": 3600.0,
        },
    }

- ``check_channels_task(repair=True, unconfirmed=True)``: the daily push-channel
  confirmation (``manage.py cronofy_channels --unconfirmed --repair``); schedule
  it daily next to the sweep::

    "cronofy-check-channels": {
        "task": "django_cronofy_conferencing.tasks.check_channels_task",
        "schedule": 86400.0,
    },

Capacity: at Cronofy's default 500 requests per minute a fleet of N accounts
needs about N / 500 minutes per pass (twice that when every sync also
refreshes its token), so keep N / 500 well under ``SYNC_STALE_AFTER / 60``,
or ask Cronofy for a higher limit.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from ..accounts.reminders import send_due_reminders
from ..cronofy.redaction import redact
from .jobs import (
    FAN_OUT_CHUNK_SIZE,
    RETRY_BACKOFF,
    RETRY_BACKOFF_MAX,
    SYNC_TASK_MAX_RETRIES,
    TRANSIENT_ERRORS,
    fan_out_due,
    prune_push_log,
    retry_delay,
    run_channel_check,
    run_sync,
)

__all__ = [
    "FAN_OUT_CHUNK_SIZE",
    "RETRY_BACKOFF",
    "RETRY_BACKOFF_MAX",
    "SYNC_TASK_MAX_RETRIES",
    "TRANSIENT_ERRORS",
    "check_channels_task",
    "fan_out_due",
    "prune_push_notifications_task",
    "retry_delay",
    "send_relink_reminders_task",
    "sync_account_task",
    "sync_due_accounts_task",
]

logger = logging.getLogger(__name__)


@shared_task(
    name="django_cronofy_conferencing.tasks.sync_account_task",
    bind=True,
    max_retries=SYNC_TASK_MAX_RETRIES,
    ignore_result=True,
)
def sync_account_task(
    self, account_id: int, synced_before: str | None = None, lane: str | None = None
) -> dict[str, Any]:
    """Sync one account (``jobs.run_sync``, in ``lane``); retry transient failures only."""
    outcome = run_sync(account_id, synced_before, lane)
    exc = outcome.transient
    if exc is None:
        return outcome.summary
    if self.request.retries >= self.max_retries:
        logger.warning(
            "Giving up on Cronofy account %s after %s retries: %s",
            account_id,
            self.request.retries,
            redact(exc),
        )
        return outcome.summary
    delay = retry_delay(self.request.retries, getattr(exc, "retry_after", None))
    logger.info(
        "Sync of Cronofy account %s failed (%s); retry %s in %.0f s",
        account_id,
        type(exc).__name__,
        self.request.retries + 1,
        delay,
    )
    # Retry without ``exc``: the task is re-queued, not failed, so no
    # exception (with Cronofy's text in it) reaches the result backend.
    raise self.retry(countdown=delay) from None


@shared_task(name="django_cronofy_conferencing.tasks.sync_due_accounts_task", ignore_result=True)
def sync_due_accounts_task(stale_after: float | None = None) -> int:
    """Queue one ``sync_account_task`` per due account (``jobs.fan_out_due``)."""
    return fan_out_due(
        stale_after,
        lambda pk, stamp: sync_account_task.apply_async((pk, stamp), {"lane": "background"}),
    )


@shared_task(name="django_cronofy_conferencing.tasks.check_channels_task", ignore_result=True)
def check_channels_task(repair: bool = True, unconfirmed: bool = True) -> dict[str, int]:
    """The daily push-channel confirmation (``jobs.run_channel_check``)."""
    return run_channel_check(repair, unconfirmed)


@shared_task(
    name="django_cronofy_conferencing.tasks.prune_push_notifications_task", ignore_result=True
)
def prune_push_notifications_task() -> int:
    """Delete the push notifications older than ``PUSH_LOG_DAYS`` (daily with beat)."""
    return prune_push_log()


@shared_task(
    name="django_cronofy_conferencing.tasks.send_relink_reminders_task", ignore_result=True
)
def send_relink_reminders_task() -> dict[str, int]:
    """Send the relink reminders that are due (``accounts.reminders.send_due_reminders``)."""
    return send_due_reminders().as_dict()

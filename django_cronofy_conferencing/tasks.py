"""Celery tasks: the fleet sync spread over workers (the ``celery`` extra).

Only imported where Celery is installed: the rest of the app never imports
this module at import time (the admin, the API and push notifications import
it lazily when ``CRONOFY_CONFERENCING["USE_CELERY"]`` is true).

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
    }

Capacity: at Cronofy's default 500 requests per minute a fleet of N accounts
needs about N / 500 minutes per pass (twice that when every sync also
refreshes its token), so keep N / 500 well under ``SYNC_STALE_AFTER / 60``,
or ask Cronofy for a higher limit.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime
from typing import Any

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .db import keyset_chunks
from .exceptions import CronofyError, CronofyUnavailable, RateLimited
from .models import LinkedAccount
from .redaction import redact

logger = logging.getLogger(__name__)

SYNC_TASK_MAX_RETRIES = 5
RETRY_BACKOFF = 30  # seconds: the first retry waits between 15 and 30 s, then doubling
RETRY_BACKOFF_MAX = 30 * 60
FAN_OUT_CHUNK_SIZE = 1000

TRANSIENT_ERRORS = (CronofyUnavailable, RateLimited)


def retry_delay(retries: int, retry_after: float | None = None, rng=random) -> float:
    """Seconds before retry number ``retries + 1``: ``Retry-After`` when Cronofy gave
    one (plus a little jitter), else exponential backoff with jitter (half to all of
    ``RETRY_BACKOFF * 2**retries``, capped at ``RETRY_BACKOFF_MAX``)."""
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), RETRY_BACKOFF_MAX) + rng.uniform(0, 1)
    ceiling = min(RETRY_BACKOFF * 2**retries, RETRY_BACKOFF_MAX)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@shared_task(bind=True, max_retries=SYNC_TASK_MAX_RETRIES, ignore_result=True)
def sync_account_task(self, account_id: int, synced_before: str | None = None) -> dict[str, Any]:
    """Sync one account; retry transient failures only.

    ``synced_before`` (ISO 8601, set by ``sync_due_accounts_task``): skip the
    account if it was synced after that moment (it is no longer due).
    """
    from .sync import sync_account

    account = LinkedAccount.objects.filter(pk=account_id).first()
    if account is None:
        return {"account": account_id, "status": "missing"}
    if account.status != LinkedAccount.Status.ACTIVE:
        return {"account": account_id, "status": account.status}
    cutoff = parse_datetime(synced_before) if synced_before else None
    if cutoff is not None and account.last_synced_at and account.last_synced_at > cutoff:
        return {"account": account_id, "status": "fresh"}
    try:
        result = sync_account(account)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            logger.warning(
                "Giving up on Cronofy account %s after %s retries: %s",
                account_id,
                self.request.retries,
                redact(exc),
            )
            return {"account": account_id, "status": "failed", "error": type(exc).__name__}
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
    except CronofyError as exc:
        # Final (reauthorization required, invalid response, a 4xx): recorded
        # on the account by sync_account; retrying cannot help.
        return {"account": account_id, "status": "failed", "error": type(exc).__name__}
    return {
        "account": account_id,
        "status": "synced",
        "created": result.created,
        "updated": result.updated,
        "removed": result.removed,
        "unchanged": result.unchanged,
    }


@shared_task(ignore_result=True)
def sync_due_accounts_task(stale_after: float | None = None) -> int:
    """Queue one ``sync_account_task`` per due account; returns how many were queued."""
    now = timezone.now()
    queued = 0
    stamp = now.isoformat()
    for ids in due_account_ids(stale_after, now=now):
        for account_id in ids:
            sync_account_task.apply_async((account_id, stamp))
        queued += len(ids)
    logger.info("Queued %s Cronofy account syncs", queued)
    return queued


def due_account_ids(stale_after: float | None = None, *, now: datetime | None = None):
    """The ids of the due accounts, in lists of at most ``FAN_OUT_CHUNK_SIZE``."""
    ids = LinkedAccount.objects.due(stale_after, now=now).values_list("pk", flat=True)
    return keyset_chunks(ids, FAN_OUT_CHUNK_SIZE, pk_of=lambda pk: pk)

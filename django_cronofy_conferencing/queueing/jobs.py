"""What a queued sync does, whatever the queue (Celery's ``tasks``, Django's ``tasks_django``).

Imports neither Celery nor Django's tasks framework: both task modules are thin
wrappers around ``run_sync`` and ``due_account_ids``, so that the same account
gives the same outcome, and the same retries, on either queue.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from ..db import keyset_chunks
from ..exceptions import CronofyError, CronofyUnavailable, RateLimited
from ..models import LinkedAccount

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


@dataclass
class Outcome:
    """A queued sync's JSON-able ``summary``, and ``transient``: the error worth a retry."""

    summary: dict[str, Any]
    transient: CronofyError | None = field(default=None, repr=False)


def run_sync(account_id: int, synced_before: str | None = None) -> Outcome:
    """Sync one account by id; never raises a ``CronofyError``.

    ``synced_before`` (ISO 8601, set by the fan-out): skip the account if it
    was synced after that moment (it is no longer due), so overlapping sweeps
    cost no extra calls. A transient failure (``CronofyUnavailable``,
    ``RateLimited``) comes back in ``transient`` for the queue to retry; any
    other (a dead grant, an invalid response, a 4xx) is final: recorded on the
    account by ``sync_account``.
    """
    from ..sync.service import sync_account

    account = LinkedAccount.objects.filter(pk=account_id).first()
    if account is None:
        return Outcome({"account": account_id, "status": "missing"})
    if account.status != LinkedAccount.Status.ACTIVE:
        return Outcome({"account": account_id, "status": account.status})
    cutoff = parse_datetime(synced_before) if synced_before else None
    if cutoff is not None and account.last_synced_at and account.last_synced_at > cutoff:
        return Outcome({"account": account_id, "status": "fresh"})
    try:
        result = sync_account(account)
    except CronofyError as exc:
        summary = {"account": account_id, "status": "failed", "error": type(exc).__name__}
        return Outcome(summary, exc if isinstance(exc, TRANSIENT_ERRORS) else None)
    return Outcome(
        {
            "account": account_id,
            "status": "synced",
            "created": result.created,
            "updated": result.updated,
            "removed": result.removed,
            "unchanged": result.unchanged,
        }
    )


def due_account_ids(
    stale_after: float | None = None, *, now: datetime | None = None
) -> Iterator[list[int]]:
    """The ids of the due accounts, in lists of at most ``FAN_OUT_CHUNK_SIZE``."""
    ids = LinkedAccount.objects.due(stale_after, now=now).values_list("pk", flat=True)
    return keyset_chunks(ids, FAN_OUT_CHUNK_SIZE, pk_of=lambda pk: pk)

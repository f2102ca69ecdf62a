"""What a queued sync does, whatever the queue (``celery``, ``django_tasks``).

Imports neither Celery nor Django's tasks framework: both task modules are thin
wrappers around ``run_sync`` and ``fan_out_due``, so that the same account
gives the same outcome, and the same retries, on either queue; the one
fan-out (``fan_out``) is what ``queueing`` and ``cronofy_sync --queue`` use too.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..cronofy import telemetry
from ..cronofy.client import backoff
from ..cronofy.ratelimit import Lane, as_lane
from ..db import after_commit
from ..exceptions import CronofyError, CronofyUnavailable, NothingDue, RateLimited
from ..health import record_sweep
from ..models import LinkedAccount, PushNotification
from ..sync.order import sweep_chunks

logger = logging.getLogger(__name__)

SYNC_TASK_MAX_RETRIES = 5
RETRY_BACKOFF = 30  # seconds: the first retry waits between 15 and 30 s, then doubling
RETRY_BACKOFF_MAX = 30 * 60
FAN_OUT_CHUNK_SIZE = 1000

TRANSIENT_ERRORS = (CronofyUnavailable, RateLimited)


def retry_delay(retries: int, retry_after: float | None = None, rng=random) -> float:
    """Seconds before retry number ``retries + 1``: ``Retry-After`` when Cronofy gave
    one (plus a little jitter), else ``backoff`` from ``RETRY_BACKOFF``, capped at
    ``RETRY_BACKOFF_MAX``."""
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), RETRY_BACKOFF_MAX) + rng.uniform(0, 1)
    return backoff(retries, RETRY_BACKOFF, rng, cap=RETRY_BACKOFF_MAX)


@dataclass
class Outcome:
    """A queued sync's JSON-able ``summary``, and ``transient``: the error worth a retry."""

    summary: dict[str, Any]
    transient: CronofyError | None = field(default=None, repr=False)


def run_sync(
    account_id: int, synced_before: str | None = None, lane: Lane | str | None = None
) -> Outcome:
    """Sync one account by id; never raises a ``CronofyError``.

    ``lane``: whose sync it is (``Lane``; None, a task queued without one: the
    fleet's ``BACKGROUND``): the task argument that keeps a user's queued sync
    in the user's lane.

    ``synced_before`` (ISO 8601, set by the fan-out): skip the account if it
    was synced after that moment (it is no longer due), so overlapping sweeps
    cost no extra calls. A transient failure (``CronofyUnavailable``,
    ``RateLimited``) comes back in ``transient`` for the queue to retry; any
    other (a dead grant, an invalid response, a 4xx) is final: recorded on the
    account by ``sync_account``.
    """
    from ..sync.service import sync_account

    lane = as_lane(lane, default=Lane.BACKGROUND)
    account = LinkedAccount.objects.filter(pk=account_id).first()
    if account is None:
        return Outcome({"account": account_id, "status": "missing"})
    if account.status != LinkedAccount.Status.ACTIVE:
        return Outcome({"account": account_id, "status": account.status})
    cutoff = parse_datetime(synced_before) if synced_before else None
    if cutoff is not None and account.last_synced_at and account.last_synced_at > cutoff:
        return Outcome({"account": account_id, "status": "fresh"})
    try:
        result = sync_account(account, lane=lane)
    except NothingDue:  # synced by something else after this task was queued
        return Outcome({"account": account_id, "status": "fresh"})
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


def run_channel_check(repair: bool = True, unconfirmed: bool = True) -> dict[str, int]:
    """The daily push-channel confirmation (``cronofy_channels``) as a task: each
    account whose channel is not confirmed within ``SYNC_CONFIRM_AFTER`` (every active
    account with ``unconfirmed=False``), repaired where ``repair``; counts by state."""
    from ..accounts.channels import check_channels, confirmation_sweep

    counts = check_channels(confirmation_sweep(unconfirmed=unconfirmed), repair=repair)
    logger.info("Checked the push channels of %s Cronofy accounts", sum(counts.values()))
    return dict(counts)


def fan_out(queryset: Any, enqueue: Callable[[int], None]) -> int:
    """The one fan-out: call ``enqueue(account_id)`` for each account of ``queryset``,
    reading the ids ``FAN_OUT_CHUNK_SIZE`` at a time (memory stays flat) and enqueueing
    each chunk after the surrounding transaction commits; returns how many."""
    queued = 0
    # In the sweep's order (``sync.order``): failing, disconnected, never synced first.
    accounts_only = queryset.select_related(None).only("pk", "last_synced_at")
    for accounts in sweep_chunks(accounts_only, FAN_OUT_CHUNK_SIZE):
        chunk = [account.pk for account in accounts]
        after_commit(lambda chunk=chunk: [enqueue(pk) for pk in chunk])
        queued += len(chunk)
    return queued


def fan_out_due(stale_after: float | None, enqueue: Callable[[int, str], None]) -> int:
    """``fan_out`` of the due accounts (``LinkedAccount.objects.due``), each with the
    moment they were found due: a task skips an account synced after it."""
    now = timezone.now()
    stamp = now.isoformat()
    with telemetry.span(telemetry.SPAN_QUEUE_DUE_ACCOUNTS) as span:
        queued = fan_out(
            LinkedAccount.objects.due(stale_after, now=now), lambda pk: enqueue(pk, stamp)
        )
        span.set_attribute("cronofy.accounts.queued", queued)
    logger.info("Queued %s Cronofy account syncs", queued)
    record_sweep("queued", queued=queued)
    return queued


def prune_push_log() -> int:
    """Delete the push notifications older than ``PUSH_LOG_DAYS`` (the tasks' body)."""
    pruned = PushNotification.objects.prune()
    logger.info("Pruned %s Cronofy push notifications", pruned)
    return pruned

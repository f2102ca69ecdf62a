"""Cronofy push notifications: the receiver view and what a notification triggers.

Cronofy POSTs JSON to the channel's callback URL (``PUSH_NOTIFICATIONS_CALLBACK_URL``,
pointing at ``cronofy_conferencing:notifications``) with a
``Cronofy-HMAC-SHA256`` header: the base64 HMAC-SHA256 of the raw body keyed
with the client secret of the application the channel belongs to, several
comma-separated values while secrets rotate.

- The signature is checked first against every configured application's
  secrets (``CLIENT_SECRET`` and ``PREVIOUS_CLIENT_SECRETS``), before any
  query, so an unsigned or forged request costs no query and its timing says
  nothing about which channel ids exist; then against the secrets of the
  application of the data center of the accounts the channel names. No
  header, or no value matching (constant-time comparison): 401, nothing happens.
- A verified body that is not a JSON object, or whose type or channel id is
  not a plausible string: 400.
- A signed notification for a channel confirms it (``channels.confirm_channel``:
  the account is then polled only every ``SYNC_CONFIRM_AFTER``); a forged one never.
- ``verification``: 200.
- ``conferencing_profile_disconnected`` (Cronofy's recommended signal for
  conferencing), ``profile_disconnected``, ``profile_initial_sync_completed``
  and ``change``, for a channel of an active account: that account is synced
  again, at most once per ``PUSH_RESYNC_DEBOUNCE`` seconds whatever the type
  (a replayed notification costs no Cronofy call; the window is kept in the
  cache, and while the cache is down the receiver answers 503 so that Cronofy
  delivers the notification again later, rather than syncing on every
  replay). Queued when a task queue is
  configured; otherwise one bounded attempt (no retries inside Cronofy's
  request). A failed sync is recorded on the account and still answered 200:
  Cronofy's retries would not help, the next scheduled sync will.
- ``gdpr_requested``: the ``account_gdpr_requested`` signal, once per account
  of the channel and ``PUSH_RESYNC_DEBOUNCE`` window (replays send it once);
  the host decides what to erase.
- Unknown types and unknown channels: 200, ignored (Cronofy adds types).

Every notification answered is kept (``PushNotification``, ``push_log``: one INSERT,
``PUSH_LOG_DAYS``) with what was done; ``reprocess`` acts again on a kept one whose
signature held (the admin's Reprocess).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..accounts.channels import confirm_channel
from ..conf import app_settings
from ..cronofy.applications import configured_applications, get_application
from ..cronofy.client import get_bounded_client
from ..cronofy.ratelimit import Lane
from ..cronofy.redaction import redact
from ..db import non_atomic_requests
from ..exceptions import CronofyError
from ..models import LinkedAccount, PushNotification
from ..queueing import queue_enabled, queue_sync
from ..signals import account_gdpr_requested
from ..sync.service import sync_account
from . import push_log

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Cronofy-HMAC-SHA256"
# Cronofy's notifications are a few hundred bytes; anything this big is not one.
MAX_BODY_BYTES = 64 * 1024
RESYNC_TYPES = frozenset(
    {
        "conferencing_profile_disconnected",
        "profile_disconnected",
        "profile_initial_sync_completed",
        "change",
    }
)
GDPR_TYPE = "gdpr_requested"
_MAX_SIGNATURES = 10
# Types and channel ids are short printable ASCII; anything else never reaches a query.
_TOKEN = re.compile(r"^[\x21-\x7e]{1,255}\Z")


def _all_secrets() -> list[str]:
    try:
        applications = configured_applications().values()
    except ImproperlyConfigured:
        logger.exception("Cronofy push notification: CRONOFY_CONFERENCING is misconfigured")
        return []
    return [secret for application in applications for secret in application.secrets]


def _secrets_for(accounts: Iterable[LinkedAccount]) -> list[str]:
    """The secrets of the applications of these accounts' data centers."""
    found: list[str] = []
    for dc_id in sorted({account.data_center for account in accounts}):
        try:
            found.extend(get_application(dc_id).secrets)
        except ImproperlyConfigured:
            continue  # no application there any more: nothing can sign for it
    return found


def signature_valid(body: bytes, header: str | None, secrets: Iterable[str] | None = None) -> bool:
    """Whether any value of the header is the HMAC of ``body`` under any of ``secrets``
    (default: every configured application's). Empty secrets are never keys.

    Every secret is compared against every offered value with
    ``hmac.compare_digest``, so the time taken does not tell which matched.
    """
    if not header:
        return False
    offered = []
    for value in header.split(",")[:_MAX_SIGNATURES]:
        try:
            offered.append(base64.b64decode(value.strip(), validate=True))
        except (binascii.Error, ValueError):
            continue
    keys = [s.encode() for s in (_all_secrets() if secrets is None else secrets) if s]
    valid = False
    for key in keys:
        expected = hmac.new(key, body, hashlib.sha256).digest()
        for digest in offered:
            valid |= hmac.compare_digest(expected, digest)
    return valid


def _ack(**extra: Any) -> JsonResponse:
    return JsonResponse({"status": "ok", **extra})


def _fields(body: bytes) -> tuple[str | None, str | None, bool]:
    """(type, channel id, well formed) of a body; nothing here is trusted yet."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None, None, False
    if not isinstance(data, dict):
        return None, None, False
    notification, channel = data.get("notification"), data.get("channel")
    kind = notification.get("type") if isinstance(notification, dict) else None
    channel_id = channel.get("channel_id") if isinstance(channel, dict) else None
    if not isinstance(kind, str) or not _TOKEN.match(kind):
        return None, None, False
    if channel_id == "":
        channel_id = None  # "" is what accounts without a channel store: it names none
    if channel_id is not None and (not isinstance(channel_id, str) or not _TOKEN.match(channel_id)):
        return kind, None, False
    return kind, channel_id, True


@non_atomic_requests  # may sync from Cronofy: no request transaction
@csrf_exempt
@require_POST
@push_log.logged  # every notification answered is kept (PUSH_LOG_DAYS): one INSERT
def receive(request: HttpRequest) -> HttpResponse:
    """The push notification receiver (see the module docstring)."""
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return HttpResponse(status=400)
    if declared > MAX_BODY_BYTES:
        return HttpResponse(status=413)
    body = request.body
    push_log.note(body=body)
    if len(body) > MAX_BODY_BYTES:
        return HttpResponse(status=413)
    if not _all_secrets():
        logger.error(
            "Cronofy push notification refused: no Cronofy application is configured "
            "(CRONOFY_CONFERENCING['CLIENT_SECRET'] / ['APPLICATIONS'])."
        )
        return HttpResponse(status=401)
    # What it says it is, for the log (parsing only: no query before the signature).
    kind, channel_id, well_formed = _fields(body)
    push_log.note(notification_type=kind or "", channel_id=channel_id or "")
    signature = request.headers.get(SIGNATURE_HEADER)
    # Signed by some configured application, or refused before any query.
    if not signature_valid(body, signature):
        return _refused()
    accounts = (
        list(LinkedAccount.objects.filter(channel_id=channel_id).order_by("pk"))
        if channel_id
        else []
    )
    # And by the application whose channel it is.
    if accounts and not signature_valid(body, signature, _secrets_for(accounts)):
        return _refused()
    push_log.note(signature_valid=True, account=accounts[0] if accounts else None)
    if not well_formed or kind is None:
        return HttpResponse(status=400)
    if accounts:
        confirm_channel(channel_id, accounts)  # signed by the channel's application
    if kind == "verification":
        return _ack()
    if kind not in RESYNC_TYPES and kind != GDPR_TYPE:
        logger.info("Cronofy push notification %r ignored.", kind)
        push_log.note(outcome=PushNotification.Outcome.IGNORED, detail="a type the app ignores")
        return _ack(ignored=True)
    if not accounts:
        logger.info("Cronofy push notification %r for an unknown channel ignored.", kind)
        push_log.note(outcome=PushNotification.Outcome.IGNORED, detail="no account has the channel")
        return _ack(ignored=True)
    for account in accounts:
        action = "gdpr" if kind == GDPR_TYPE else "resync"
        if action == "resync" and account.status != LinkedAccount.Status.ACTIVE:
            # (before the window: a push for a dead account must not take it)
            push_log.note(
                outcome=PushNotification.Outcome.IGNORED,
                detail=f"the account is {account.get_status_display().lower()}",
            )
            continue
        first = _first_in_window(account, action)
        if first is None:
            return _retry_later(kind)
        if not first:
            push_log.note(
                outcome=PushNotification.Outcome.DEBOUNCED,
                detail=f"{'resynced' if action == 'resync' else 'signalled'} within "
                "PUSH_RESYNC_DEBOUNCE",
            )
            continue
        if action == "gdpr":
            logger.info("Cronofy account %s: GDPR request received", account.pk)
            account_gdpr_requested.send(sender=LinkedAccount, account=account)
            push_log.note(outcome=PushNotification.Outcome.SIGNAL_SENT)
        else:
            resync(account, reason=kind)
    return _ack()


def _refused() -> HttpResponse:
    logger.warning("Cronofy push notification refused: missing or wrong signature.")
    return HttpResponse(status=401)


def _retry_later(kind: str) -> HttpResponse:
    """Fail closed when the debounce cannot be kept: without it every replay would cost a
    Cronofy call (or a signal). Cronofy delivers a notification again until it gets a 2xx."""
    logger.error(
        "Cronofy push notification %r not acted on: the cache that debounces it "
        "(CRONOFY_CONFERENCING['RATE_LIMIT_CACHE']) is unavailable; answered 503 so that "
        "Cronofy sends it again.",
        kind,
    )
    response = HttpResponse(status=503)
    response["Retry-After"] = "60"
    return response


def _first_in_window(account: LinkedAccount, action: str) -> bool | None:
    """Whether no notification did ``action`` ("resync", whatever its type, or "gdpr")
    for this account in the last ``PUSH_RESYNC_DEBOUNCE`` seconds: replays and bursts
    cost one. None when the cache cannot tell (it is down)."""
    key = f"cronofy_conferencing:push-{action}:{account.pk}"
    try:
        return bool(
            caches[app_settings.RATE_LIMIT_CACHE].add(
                key, 1, timeout=max(1, int(app_settings.PUSH_RESYNC_DEBOUNCE))
            )
        )
    except Exception:
        logger.warning("Cache unavailable for the Cronofy push debounce", exc_info=True)
        return None


def resync(account: LinkedAccount, *, reason: str = "") -> None:
    """Sync the account again: queued with ``TASK_QUEUE``, else now.

    Never raises a ``CronofyError``: a failed sync is recorded on the account.
    """
    if queue_enabled():
        try:
            queue_sync(account.pk, lane=Lane.PUSH)
        except Exception:
            logger.exception(
                "Could not queue the sync of Cronofy account %s (%s); syncing now",
                account.pk,
                reason,
            )
        else:
            logger.info("Queued the sync of Cronofy account %s (%s)", account.pk, reason)
            push_log.note(outcome=PushNotification.Outcome.QUEUED)
            return
    try:
        sync_account(account, client=get_bounded_client(account.data_center))
    except CronofyError as exc:
        logger.warning(
            "Sync of Cronofy account %s after %s failed: %s", account.pk, reason, redact(exc)
        )
        push_log.note(outcome=PushNotification.Outcome.FAILED, error=exc)
    else:
        push_log.note(outcome=PushNotification.Outcome.RESYNCED)


# -- the push log's Reprocess (admin) ------------------------------------------------


def reprocess(notification: PushNotification) -> PushNotification:
    """Act again on a kept notification whose signature held: the admin's Reprocess.

    For after a fix (a channel repaired, an account reconnected, a handler
    deployed): the notification's channel is looked up again, a resync type
    syncs its active accounts (no debounce: an operator asked), ``gdpr_requested``
    sends the signal again. The row's outcome, account, detail and error are
    replaced with this run's and ``reprocessed_at`` is set. A notification whose
    signature did not hold is never acted on (``ValueError``).
    """
    if not notification.signature_valid:
        raise ValueError("A push notification whose signature did not hold is never reprocessed.")
    kind, channel_id = notification.notification_type, notification.channel_id
    accounts = (
        list(LinkedAccount.objects.filter(channel_id=channel_id).order_by("pk"))
        if channel_id
        else []
    )
    with push_log.recording() as record:
        if accounts:
            push_log.note(account=accounts[0])
        if kind == "verification":
            push_log.note(outcome=PushNotification.Outcome.ACKNOWLEDGED)
        elif kind not in RESYNC_TYPES and kind != GDPR_TYPE:
            push_log.note(outcome=PushNotification.Outcome.IGNORED, detail="a type the app ignores")
        elif not accounts:
            push_log.note(
                outcome=PushNotification.Outcome.IGNORED, detail="no account has the channel"
            )
        for account in accounts if kind in RESYNC_TYPES or kind == GDPR_TYPE else []:
            if kind == GDPR_TYPE:
                account_gdpr_requested.send(sender=LinkedAccount, account=account)
                push_log.note(outcome=PushNotification.Outcome.SIGNAL_SENT)
            elif account.status == LinkedAccount.Status.ACTIVE:
                resync(account, reason=f"{kind} (reprocessed)")
            else:
                push_log.note(
                    outcome=PushNotification.Outcome.IGNORED,
                    detail=f"the account is {account.get_status_display().lower()}",
                )
    notification.account = record.account
    notification.outcome = record.outcome or PushNotification.Outcome.ACKNOWLEDGED
    notification.detail = record.detail
    notification.error = record.error
    notification.reprocessed_at = timezone.now()
    notification.save(update_fields=["account", "outcome", "detail", "error", "reprocessed_at"])
    return notification

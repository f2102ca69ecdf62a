"""Cronofy push notifications: the receiver view and what a notification triggers.

Cronofy POSTs JSON to the channel's callback URL (``PUSH_NOTIFICATIONS_CALLBACK_URL``,
pointing at ``cronofy_conferencing:notifications``) with a
``Cronofy-HMAC-SHA256`` header: the base64 HMAC-SHA256 of the raw body keyed
with the client secret, several comma-separated values while secrets rotate.

- No header, or no value matching ``CLIENT_SECRET`` or any of
  ``PREVIOUS_CLIENT_SECRETS`` (constant-time comparison): 401, nothing happens.
- A verified body that is not a JSON object: 400.
- ``verification``: 200.
- ``profile_disconnected`` and ``change`` for a channel of an active account:
  that account is synced again, queued on Celery when ``USE_CELERY`` is set,
  right away otherwise. A failing sync is recorded on the account and still
  answered 200: Cronofy's retries would not help, the next scheduled sync will.
  ``change`` (sent for every calendar change) syncs an account at most once
  every ``CHANGE_DEBOUNCE`` seconds; ``profile_disconnected`` always syncs.
- Unknown types and unknown channels: 200, ignored.

Replays are harmless: a sync only ever brings the profiles to what Cronofy
says now.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .conf import app_settings
from .db import non_atomic_requests
from .exceptions import CronofyError
from .models import LinkedAccount
from .queueing import queue_sync
from .redaction import redact
from .sync import sync_account

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Cronofy-HMAC-SHA256"
# Cronofy's notifications are a few hundred bytes; anything this big is not one.
MAX_BODY_BYTES = 64 * 1024
RESYNC_TYPES = frozenset({"profile_disconnected", "change"})
CHANGE_DEBOUNCE = 10  # seconds
_MAX_SIGNATURES = 10


def _secrets() -> list[bytes]:
    configured = [app_settings.CLIENT_SECRET, *(app_settings.PREVIOUS_CLIENT_SECRETS or [])]
    return [s.encode() for s in configured if isinstance(s, str) and s]


def signature_valid(body: bytes, header: str | None) -> bool:
    """Whether any value of the header is the HMAC of ``body`` under any configured secret.

    Every configured secret is compared against every offered value with
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
    valid = False
    for secret in _secrets():
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        for digest in offered:
            valid |= hmac.compare_digest(expected, digest)
    return valid


def _ack(**extra) -> JsonResponse:
    return JsonResponse({"status": "ok", **extra})


@non_atomic_requests  # may sync from Cronofy: no request transaction
@csrf_exempt
@require_POST
def receive(request: HttpRequest) -> HttpResponse:
    """The push notification receiver (see the module docstring)."""
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return HttpResponse(status=400)
    if declared > MAX_BODY_BYTES:
        return HttpResponse(status=413)
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return HttpResponse(status=413)
    if not _secrets():
        logger.error(
            "Cronofy push notification refused: CRONOFY_CONFERENCING['CLIENT_SECRET'] is not set."
        )
        return HttpResponse(status=401)
    if not signature_valid(body, request.headers.get(SIGNATURE_HEADER)):
        logger.warning("Cronofy push notification refused: missing or wrong signature.")
        return HttpResponse(status=401)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return HttpResponse(status=400)
    if not isinstance(data, dict):
        return HttpResponse(status=400)
    notification = data.get("notification")
    channel = data.get("channel")
    kind = notification.get("type") if isinstance(notification, dict) else None
    channel_id = channel.get("channel_id") if isinstance(channel, dict) else None
    if not isinstance(kind, str) or not isinstance(channel_id, str | None):
        return HttpResponse(status=400)
    if kind == "verification":
        return _ack()
    if kind not in RESYNC_TYPES or not channel_id:
        logger.info("Cronofy push notification %r ignored.", kind[:64])
        return _ack(ignored=True)
    accounts = list(
        LinkedAccount.objects.filter(
            channel_id=channel_id, status=LinkedAccount.Status.ACTIVE
        ).order_by("pk")
    )
    if not accounts:
        logger.info("Cronofy push notification %r for an unknown channel ignored.", kind)
        return _ack(ignored=True)
    for account in accounts:
        if kind == "change" and not _first_change(account):
            continue
        resync(account, reason=kind)
    return _ack()


def _first_change(account: LinkedAccount) -> bool:
    """Whether no ``change`` was acted on for this account in the last few seconds."""
    key = f"cronofy_conferencing:push-change:{account.pk}"
    try:
        return caches[app_settings.RATE_LIMIT_CACHE].add(key, 1, timeout=CHANGE_DEBOUNCE)
    except Exception:  # a cache outage must not cost a sync
        logger.warning("Cache unavailable for the Cronofy change debounce", exc_info=True)
        return True


def resync(account: LinkedAccount, *, reason: str = "") -> None:
    """Sync the account again: queued on Celery with ``USE_CELERY``, else now.

    Never raises a ``CronofyError``: a failed sync is recorded on the account.
    """
    if app_settings.USE_CELERY:
        try:
            queue_sync(account.pk)
        except Exception:
            logger.exception(
                "Could not queue the sync of Cronofy account %s (%s); syncing now",
                account.pk,
                reason,
            )
        else:
            logger.info("Queued the sync of Cronofy account %s (%s)", account.pk, reason)
            return
    try:
        sync_account(account)
    except CronofyError as exc:
        logger.warning(
            "Sync of Cronofy account %s after %s failed: %s", account.pk, reason, redact(exc)
        )

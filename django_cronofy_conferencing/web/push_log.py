"""The push notification log: one ``PushNotification`` row per notification answered.

The receiver (``notifications.receive``) is wrapped in ``logged``, which
collects what the receiver ``note``s while it works (type, channel, account,
whether the signature held, what was done, the error) and writes it in one
INSERT when the answer is ready: the receiver's time does not depend on how
many rows the table holds (pruning is ``cronofy_sync``'s and
``prune_push_notifications_task``'s job, never the receiver's). With
``PUSH_LOG_DAYS`` at 0 nothing is written.

Nothing secret is kept: never the signature header, and the body goes through
``redact``; a body whose signature did not hold (anyone can send one) is kept
only up to ``PushNotification.UNSIGNED_BODY_LIMIT`` bytes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError

from ..conf import app_settings
from ..cronofy import telemetry
from ..cronofy.redaction import redact
from ..models import LinkedAccount, PushNotification

logger = logging.getLogger(__name__)

Outcome = PushNotification.Outcome

# When several accounts share a channel, the notification's outcome is the one that
# matters most to an operator: a failure over a resync over a debounce...
_PRECEDENCE = [
    Outcome.FAILED,
    Outcome.RESYNCED,
    Outcome.QUEUED,
    Outcome.SIGNAL_SENT,
    Outcome.DEBOUNCED,
    Outcome.IGNORED,
    Outcome.ACKNOWLEDGED,
]

#: Types counted by name in the push notifications metric; any other is "other"
#: (an unsigned body may claim any type: the metric's cardinality stays bounded).
KNOWN_TYPES = frozenset(
    {
        "verification",
        "change",
        "profile_disconnected",
        "conferencing_profile_disconnected",
        "profile_initial_sync_completed",
        "gdpr_requested",
    }
)


@dataclass
class PushRecord:
    """What the receiver noted about one notification, until it is stored."""

    body: bytes = b""
    body_size: int = 0
    notification_type: str = ""
    channel_id: str = ""
    account: LinkedAccount | None = None
    signature_valid: bool = False
    outcome: str = ""
    detail: str = ""
    error: str = ""

    def merge_outcome(self, outcome: str) -> None:
        if not self.outcome or _rank(outcome) < _rank(self.outcome):
            self.outcome = outcome


def _rank(outcome: str) -> int:
    try:
        return _PRECEDENCE.index(outcome)
    except ValueError:
        return len(_PRECEDENCE)


_current: ContextVar[PushRecord | None] = ContextVar("cronofy_push_record", default=None)


def enabled() -> bool:
    """Whether notifications are kept (``PUSH_LOG_DAYS`` above 0; check E026 guards it)."""
    days = app_settings.PUSH_LOG_DAYS
    return isinstance(days, int | float) and not isinstance(days, bool) and days > 0


def note(
    *,
    body: bytes | None = None,
    notification_type: str | None = None,
    channel_id: str | None = None,
    account: LinkedAccount | None = None,
    signature_valid: bool | None = None,
    outcome: str | None = None,
    detail: str | None = None,
    error: Any = None,
) -> None:
    """Add to the record of the notification being handled (nothing outside one)."""
    record = _current.get()
    if record is None:
        return
    if body is not None:
        record.body, record.body_size = body, len(body)
    if notification_type is not None:
        record.notification_type = notification_type
    if channel_id is not None:
        record.channel_id = channel_id
    if account is not None and record.account is None:
        record.account = account
    if signature_valid is not None:
        record.signature_valid = signature_valid
    if outcome is not None:
        record.merge_outcome(outcome)
    if detail is not None and not record.detail:
        record.detail = detail[:255]
    if error is not None:
        text = redact(error)[:2000]
        record.error = f"{record.error}\n{text}".strip() if record.error else text


@contextmanager
def recording(record: PushRecord | None = None) -> Iterator[PushRecord]:
    """Collect ``note``s into ``record`` (a new one by default) inside the block."""
    record = record or PushRecord()
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


def _default_outcome(status: int) -> str:
    if status == 401:
        return Outcome.REFUSED
    if status >= 400:
        return Outcome.MALFORMED
    return Outcome.ACKNOWLEDGED


def stored_body(record: PushRecord) -> str:
    """The body as kept: redacted, without NUL (PostgreSQL text cannot hold it), and
    only its first ``UNSIGNED_BODY_LIMIT`` bytes when the signature did not hold."""
    body = record.body
    if not record.signature_valid:
        body = body[: PushNotification.UNSIGNED_BODY_LIMIT]
    text = body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return redact(text)


def store(record: PushRecord, status: int) -> PushNotification | None:
    """Write the record in one INSERT; a database error is logged, never raised
    (the answer to Cronofy does not depend on the log)."""
    outcome = record.outcome or _default_outcome(status)
    record.outcome = outcome
    telemetry.record_push_notification(metric_type(record), outcome)
    try:
        return PushNotification.objects.create(
            notification_type=record.notification_type,
            channel_id=record.channel_id,
            account=record.account,
            signature_valid=record.signature_valid,
            outcome=outcome,
            detail=record.detail,
            error=record.error,
            response_status=status,
            body=stored_body(record),
            body_size=record.body_size,
        )
    except DatabaseError:
        logger.exception("Could not store a Cronofy push notification in the push log")
        return None


def metric_type(record: PushRecord) -> str:
    """The type as the metric counts it: a known type whose signature held, else a bucket."""
    if not record.signature_valid:
        return "unverified"
    return record.notification_type if record.notification_type in KNOWN_TYPES else "other"


def logged(view: Callable[..., Any]) -> Callable[..., Any]:
    """Keep a ``PushNotification`` of every request the wrapped receiver answers."""

    @functools.wraps(view)
    def receive_and_log(request: Any, *args: Any, **kwargs: Any) -> Any:
        keep = enabled()
        status = 500
        with recording() as record:
            try:
                response = view(request, *args, **kwargs)
                status = response.status_code
                return response
            except Exception as exc:
                note(outcome=Outcome.FAILED, error=type(exc).__name__)
                raise
            finally:
                if keep:
                    store(record, status)
                else:
                    telemetry.record_push_notification(
                        metric_type(record), record.outcome or _default_outcome(status)
                    )

    return receive_and_log

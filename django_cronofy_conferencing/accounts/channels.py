"""Push notification channels: one per account, created on link, checked and repaired.

Cronofy creates a channel with ``POST /v1/channels`` (the account's token,
``PUSH_NOTIFICATIONS_CALLBACK_URL``), lists the account's channels with
``GET /v1/channels``, and may drop one (closed, or the grant revoked and
given again). ``channel_health`` tells which of these an account is in;
``repair_channel`` forgets a stale id and adopts or creates a channel.

Each time Cronofy confirms a channel (it created it, it lists it, or a
notification signed for it arrived: ``confirm_channel``), the account's
``channel_confirmed_at`` is set; an account confirmed within
``SYNC_CONFIRM_AFTER`` is polled only that often (``LinkedAccount.objects.due``).
A channel Cronofy no longer lists loses its confirmation at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import router
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..conf import app_settings
from ..cronofy.channels import channel_id_of, parse_channels
from ..cronofy.client import CronofyClient, get_client
from ..cronofy.ratelimit import Lane
from ..db import write_lock
from ..exceptions import CronofyError, InvalidResponse
from ..models import LinkedAccount
from .tokens import ensure_access_token


class ChannelState:
    HEALTHY = "healthy"  # stored, and Cronofy still has it
    MISSING = "missing"  # none stored (and none with our callback URL at Cronofy)
    UNRECORDED = "unrecorded"  # none stored, but Cronofy has one with our callback URL
    STALE = "stale"  # stored, but Cronofy no longer has it (or it calls another URL)
    ERROR = "error"  # could not ask Cronofy
    NOT_CONFIGURED = "not_configured"  # PUSH_NOTIFICATIONS_CALLBACK_URL is empty


@dataclass(frozen=True)
class ChannelHealth:
    account: LinkedAccount
    state: str
    #: The stored id (healthy, stale) or Cronofy's (unrecorded).
    channel_id: str = ""
    error: CronofyError | None = None

    @property
    def ok(self) -> bool:
        return self.state in (ChannelState.HEALTHY, ChannelState.NOT_CONFIGURED)


def _store(account: LinkedAccount, channel_id: str) -> None:
    """Store the channel Cronofy just created or listed (confirmed now), or forget it."""
    using = router.db_for_write(LinkedAccount)
    confirmed_at = timezone.now() if channel_id else None
    with write_lock(using):
        LinkedAccount.objects.using(using).filter(pk=account.pk).update(
            channel_id=channel_id, channel_confirmed_at=confirmed_at
        )
    account.channel_id = channel_id
    account.channel_confirmed_at = confirmed_at


def _set_confirmation(account: LinkedAccount, confirmed_at: datetime | None) -> None:
    using = router.db_for_write(LinkedAccount)
    with write_lock(using):
        LinkedAccount.objects.using(using).filter(
            pk=account.pk, channel_id=account.channel_id
        ).update(channel_confirmed_at=confirmed_at)
    account.channel_confirmed_at = confirmed_at


def confirm_channel(channel_id: str, accounts: list[LinkedAccount] | None = None) -> int:
    """Cronofy confirmed ``channel_id`` (a notification *signed* for it arrived: only
    the receiver, after checking the signature, calls this); returns the accounts
    updated. One query; ``accounts`` (already read) are updated in memory too."""
    if not channel_id:
        return 0
    now = timezone.now()
    using = router.db_for_write(LinkedAccount)
    with write_lock(using):
        updated = (
            LinkedAccount.objects.using(using)
            .filter(channel_id=channel_id)
            .update(channel_confirmed_at=now)
        )
    for account in accounts or ():
        if account.channel_id == channel_id:
            account.channel_confirmed_at = now
    return updated


def list_channels(account: LinkedAccount, *, client: CronofyClient | None = None) -> list[dict]:
    """The account's channels at Cronofy: ``[{"channel_id", "callback_url"}, ...]``."""
    client = client or get_client(account.data_center)
    return parse_channels(client.list_channels(ensure_access_token(account, client=client)))


@sensitive_variables("token")
def ensure_push_channel(account: LinkedAccount, *, client: CronofyClient | None = None) -> str:
    """Create the account's push notification channel when a callback URL is configured.

    Returns the channel id ('' when push notifications are not configured); an
    account that has one keeps it (a relink makes no second channel).
    """
    callback_url = app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL
    if not callback_url:
        return ""
    if account.channel_id:
        return account.channel_id
    client = client or get_client(account.data_center)
    token = ensure_access_token(account, client=client)
    body = client.create_channel(token, callback_url)
    channel = body.get("channel") if isinstance(body, dict) else None
    channel_id = channel_id_of(channel.get("channel_id")) if isinstance(channel, dict) else None
    if channel_id is None:
        raise InvalidResponse("Invalid channel response: channel.channel_id is missing.")
    _store(account, channel_id)
    return channel_id


def channel_health(account: LinkedAccount, *, client: CronofyClient | None = None) -> ChannelHealth:
    """Whether Cronofy still has the account's channel (one ``GET /v1/channels``)."""
    callback_url = app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL
    if not callback_url:
        return ChannelHealth(account, ChannelState.NOT_CONFIGURED, account.channel_id)
    try:
        channels = list_channels(account, client=client)
    except CronofyError as exc:
        return ChannelHealth(account, ChannelState.ERROR, account.channel_id, error=exc)
    ours = [c["channel_id"] for c in channels if c["callback_url"] == callback_url]
    if account.channel_id:
        healthy = account.channel_id in ours
        # Listed: Cronofy confirms it. Not listed: no push can come, whatever we stored.
        _set_confirmation(account, timezone.now() if healthy else None)
        state = ChannelState.HEALTHY if healthy else ChannelState.STALE
        return ChannelHealth(account, state, account.channel_id)
    if ours:
        return ChannelHealth(account, ChannelState.UNRECORDED, ours[0])
    return ChannelHealth(account, ChannelState.MISSING)


def repair_channel(
    account: LinkedAccount,
    health: ChannelHealth | None = None,
    *,
    client: CronofyClient | None = None,
) -> ChannelHealth:
    """Forget a stale id and adopt Cronofy's channel with our callback URL, or create one.

    Returns the health after the repair (``ERROR`` when Cronofy could not be asked).
    """
    health = health or channel_health(account, client=client)
    if health.state == ChannelState.UNRECORDED:
        _store(account, health.channel_id)
        return ChannelHealth(account, ChannelState.HEALTHY, health.channel_id)
    if health.state not in (ChannelState.STALE, ChannelState.MISSING):
        return health
    if health.state == ChannelState.STALE:
        _store(account, "")
    try:
        channel_id = ensure_push_channel(account, client=client)
    except CronofyError as exc:
        return ChannelHealth(account, ChannelState.ERROR, account.channel_id, error=exc)
    return ChannelHealth(account, ChannelState.HEALTHY, channel_id)


def confirmation_sweep(unconfirmed: bool = False) -> Any:
    """The accounts the daily confirmation visits, the oldest confirmation first:
    every active account, or (``unconfirmed``) only those whose channel Cronofy has
    not confirmed within ``SYNC_CONFIRM_AFTER`` (missing, stale, never listed)."""
    from django.db.models import F

    accounts = LinkedAccount.objects.active()
    if unconfirmed:
        accounts = accounts.exclude(pk__in=LinkedAccount.objects.push_confirmed().values("pk"))
    return accounts.order_by(F("channel_confirmed_at").asc(nulls_first=True), "pk")


def check_channels(
    accounts: Any,
    *,
    repair: bool = False,
    each: Callable[[ChannelHealth, ChannelHealth | None], None] | None = None,
) -> Counter[str]:
    """The daily confirmation: ask Cronofy for each account's channels (background lane:
    users' calls go first), record what it confirms, and with ``repair`` fix what is
    not healthy. Returns the states after it; ``each(health, repaired)`` per account.

    What ``manage.py cronofy_channels`` runs, and ``check_channels_task`` (Celery beat,
    Django's tasks).
    """
    counts: Counter[str] = Counter()
    if not app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL:
        return counts
    for account in accounts.iterator(chunk_size=200):
        client = get_client(account.data_center, Lane.BACKGROUND)
        health = channel_health(account, client=client)
        repaired = None
        if repair and health.state not in (ChannelState.HEALTHY, ChannelState.ERROR):
            repaired = repair_channel(account, health, client=client)
        counts[(repaired or health).state] += 1
        if each is not None:
            each(health, repaired)
    return counts

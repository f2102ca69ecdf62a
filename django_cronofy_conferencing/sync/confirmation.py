"""A fleet sync renews the account's push-channel confirmation while its token is fresh.

A sweep visits an account with a confirmed channel about once per
``SYNC_CONFIRM_AFTER``, refreshing its token first; one more call then (``GET
/v1/channels`` with the same token) renews the confirmation, so the account
stays on the push schedule for three calls a day instead of four (a separate
daily confirmation would refresh the token again). A channel Cronofy no longer
lists is forgotten (no push can come through it): the account is polled every
``SYNC_STALE_AFTER`` until ``cronofy_channels --repair`` creates a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import router
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..conf import app_settings
from ..cronofy.channels import parse_channels
from ..cronofy.client import CronofyClient
from ..cronofy.redaction import redact
from ..db import write_lock
from ..exceptions import CronofyError
from ..models import LinkedAccount

logger = logging.getLogger(__name__)


def confirmation_due(account: LinkedAccount, now: datetime | None = None) -> bool:
    """Whether a fleet sync should renew the account's channel confirmation: it has a
    channel, push is on, and the confirmation is missing or past half its window."""
    if not app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL or not account.channel_id:
        return False
    confirmed = account.channel_confirmed_at
    half = timedelta(seconds=float(app_settings.SYNC_CONFIRM_AFTER) / 2)
    return confirmed is None or confirmed <= (now or timezone.now()) - half


@sensitive_variables("token")
def renew_confirmation(
    account: LinkedAccount,
    client: CronofyClient,
    token: str,
    run_query: Callable[..., Any],
) -> bool | None:
    """List the account's channels with ``token`` when its confirmation is due; returns
    whether its channel is listed (None: not asked, or Cronofy could not say)."""
    if not confirmation_due(account):
        return None
    try:
        channels = parse_channels(client.list_channels(token))
    except CronofyError as exc:
        logger.info("Could not confirm the push channel of account %s: %s", account.pk, redact(exc))
        return None
    callback = app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL
    listed = any(
        c["channel_id"] == account.channel_id and c["callback_url"] == callback for c in channels
    )
    run_query(record_listing, account, listed)
    return listed


def record_listing(account: LinkedAccount, listed: bool) -> None:
    """Cronofy listed the account's channel (confirmed now), or no longer has it (forgotten)."""
    fields: dict[str, Any] = (
        {"channel_confirmed_at": timezone.now()}
        if listed
        else {"channel_id": "", "channel_confirmed_at": None}
    )
    using = router.db_for_write(LinkedAccount)
    with write_lock(using):
        LinkedAccount.objects.using(using).filter(
            pk=account.pk, channel_id=account.channel_id
        ).update(**fields)
    for name, value in fields.items():
        setattr(account, name, value)

"""Django admin for linked accounts and their conferencing and calendar profiles.

The rows are written only by ``sync``, ``tokens`` and ``linking``: the admin
shows them, and acts on accounts through "Sync now" and "Unlink" (which
revokes the grant at Cronofy before deleting). Modules: ``accounts`` (the
account pages), ``unlinking``, ``profiles`` (both kinds, read-only, and the
inlines), ``common`` (shared columns and filters), ``filters`` (the account list's triage
filters), ``fleet`` (the fleet page), ``push_notifications`` (the push log, read-only,
with "Reprocess").
"""

from ..queueing import queue_sync
from .accounts import LinkedAccountAdmin, LinkedAccountChangeList
from .common import (
    STATUS_COLORS,
    PresenceFilter,
    ProviderNameFilter,
    ReadOnlyProfileMixin,
    account_link,
    describe_result,
    relink_link,
)
from .profiles import (
    CalendarProfileAdmin,
    CalendarProfileInline,
    ConferencingProfileAdmin,
    ConferencingProfileInline,
)
from .push_notifications import PushNotificationAdmin

__all__ = [
    "STATUS_COLORS",
    "CalendarProfileAdmin",
    "CalendarProfileInline",
    "ConferencingProfileAdmin",
    "ConferencingProfileInline",
    "LinkedAccountAdmin",
    "LinkedAccountChangeList",
    "PresenceFilter",
    "ProviderNameFilter",
    "PushNotificationAdmin",
    "ReadOnlyProfileMixin",
    "account_link",
    "describe_result",
    "queue_sync",
    "relink_link",
]

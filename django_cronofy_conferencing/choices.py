"""What conferencing an account can put on an event right now, from stored rows only.

A page that offers conferencing must never wait on Cronofy: everything here
reads the rows the last sync wrote (two queries for the choices, one to check
a pick). When that sync is older than ``SYNC_STALE_AFTER`` the answer is
flagged ``stale`` and, where a task queue is configured, a resync is queued
(at most once per account per ``RESYNC_DEBOUNCE`` seconds) so the next page
shows fresh rows.

- ``conferencing_choices(account)``: the choices a picker offers, the
  disconnected profiles it explains (with their Relink URL), freshness.
- ``conferencing_for(account, choice)``: Cronofy's ``conferencing`` object for an
  event upsert, or ``ConferencingUnavailable`` naming the profile. ``"preferred"``
  is the profile the user made the account's default (listed first by
  ``conferencing_choices``, flagged ``preferred``).
- ``select(accounts, value)``: what the form and serializer fields use: an
  ``"<account id>:<choice>"`` value checked against the user's own accounts.
- ``needing_relink(account)``: the conferencing and calendar profiles that need
  the user to relink them (for an end-user page).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import caches
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from .conf import app_settings
from .exceptions import ConferencingUnavailable, InvalidSelection
from .models import CalendarProfile, ConferencingProfile, LinkedAccount
from .providers import provider_label

logger = logging.getLogger(__name__)

DEFAULT = "default"
INTEGRATED = "integrated"
#: The user's default profile of the account (``LinkedAccount.preferred_conferencing_profile_id``).
PREFERRED = "preferred"
#: Seconds between two resyncs queued by stale choices for one account.
RESYNC_DEBOUNCE = 300
#: An account id in a field value: ASCII digits only (``str.isdigit`` also takes "²"
#: and Arabic-Indic digits), no leading zero, within a 64-bit primary key.
_ACCOUNT_ID = re.compile(r"[1-9][0-9]{0,18}\Z")
_MAX_ACCOUNT_ID = 2**63 - 1
#: What a stored profile id can be (``cronofy.userinfo``): anything else names none, and
#: would be a database error (NUL on PostgreSQL, a lone surrogate anywhere).
_PROFILE_ID = re.compile(r"[\x21-\x7e]{1,255}\Z")


def parse_account_id(value: str) -> int | None:
    """The account id ``value`` spells in ASCII digits, or None."""
    if not _ACCOUNT_ID.match(value):
        return None
    number = int(value)
    return number if number <= _MAX_ACCOUNT_ID else None


#: The conferencing a calendar provider builds in ("integrated"), for labels.
INTEGRATED_LABELS = {
    "google": "Google Meet",
    "office365": "Microsoft Teams",
    "exchange": "Microsoft Teams",
    "live_connect": "Microsoft Teams",
}


@dataclass(frozen=True)
class ChoiceCalendar:
    """A calendar an "integrated" choice can be used on."""

    calendar_id: str
    calendar_name: str
    calendar_primary: bool
    profile_id: str
    provider_name: str


@dataclass(frozen=True)
class ConferencingChoice:
    value: str  # what conferencing_for takes: a profile id, "integrated", "default"
    label: str
    profile: ConferencingProfile | None = None
    calendars: tuple[ChoiceCalendar, ...] = ()  # for "integrated": where it works
    preferred: bool = False  # the user's default profile of the account (listed first)


@dataclass
class ConferencingChoices:
    account: LinkedAccount
    available: list[ConferencingChoice] = field(default_factory=list)
    #: Present, disconnected conferencing profiles (each with ``profile_relink_url``).
    unavailable: list[ConferencingProfile] = field(default_factory=list)
    #: Present, disconnected calendar profiles: events on their calendars fail too.
    calendar_profiles_unavailable: list[CalendarProfile] = field(default_factory=list)
    stale: bool = False
    resync_queued: bool = False
    #: The account's grant is dead: nothing can be put on its events until it reconnects.
    reauthorization_required: bool = False

    def get(self, value: str) -> ConferencingChoice | None:
        return next((c for c in self.available if c.value == value), None)

    @property
    def preferred(self) -> ConferencingChoice | None:
        """The user's default profile, when it is chosen and works (it comes first)."""
        return next((c for c in self.available if c.preferred), None)


@dataclass(frozen=True)
class ConferencingSelection:
    """A validated pick: the account, the choice, and Cronofy's ``conferencing`` object."""

    account: LinkedAccount
    choice: str
    conferencing: dict[str, Any]


@dataclass(frozen=True)
class RelinkNeeded:
    conferencing_profiles: list[ConferencingProfile]
    calendar_profiles: list[CalendarProfile]

    def __bool__(self) -> bool:
        return bool(self.conferencing_profiles or self.calendar_profiles)

    def __len__(self) -> int:
        return len(self.conferencing_profiles) + len(self.calendar_profiles)


def profile_label(profile: ConferencingProfile) -> str:
    name = provider_label(profile.provider_name)
    return f"{name} ({profile.profile_name})" if profile.profile_name else name


def integrated_label(calendars: tuple[ChoiceCalendar, ...] | list[ChoiceCalendar]) -> str:
    names = sorted({INTEGRATED_LABELS.get(c.provider_name, "") for c in calendars} - {""})
    if names:
        return _("Calendar's own conferencing (%(names)s)") % {"names": ", ".join(names)}
    return _("Calendar's own conferencing")


def is_stale(account: LinkedAccount, now: datetime | None = None) -> bool:
    if account.last_synced_at is None:
        return True
    age = (now or timezone.now()) - account.last_synced_at
    return age > timedelta(seconds=float(app_settings.SYNC_STALE_AFTER))


def _integrated_calendars(calendar_profiles: list[CalendarProfile]) -> tuple[ChoiceCalendar, ...]:
    return tuple(
        ChoiceCalendar(
            calendar_id=c["calendar_id"],
            calendar_name=c.get("calendar_name", ""),
            calendar_primary=bool(c.get("calendar_primary")),
            profile_id=profile.profile_id,
            provider_name=profile.provider_name,
        )
        for profile in calendar_profiles
        if profile.profile_connected and profile.removed_at is None
        for c in profile.integrated_conferencing_calendars()
    )


def conferencing_choices(account: LinkedAccount, *, resync: bool = True) -> ConferencingChoices:
    """The account's conferencing choices, from stored rows (two queries).

    Connected conferencing profiles first (``value``: their ``profile_id``; the
    user's preferred one before the others, with ``preferred`` set), then
    ``"integrated"`` when a writable calendar of a connected calendar profile has
    conferencing built in, then ``"default"`` (Cronofy picks). With ``resync``
    (the default) a stale account gets a resync queued when a task queue is
    configured; this never calls Cronofy.
    """
    result = ConferencingChoices(account=account, stale=is_stale(account))
    if account.status != LinkedAccount.Status.ACTIVE:
        result.reauthorization_required = True
        return result
    profiles = list(
        ConferencingProfile.objects.present()
        .filter(account_id=account.pk)
        .order_by("provider_name", "profile_name", "profile_id")
    )
    calendar_profiles = list(
        CalendarProfile.objects.present()
        .filter(account_id=account.pk)
        .order_by("provider_name", "profile_name", "profile_id")
    )
    preferred_id = account.preferred_conferencing_profile_id
    for profile in profiles:
        profile.account = account  # no query for profile.account later
        if profile.profile_connected:
            preferred = bool(preferred_id) and profile.profile_id == preferred_id
            choice = ConferencingChoice(
                profile.profile_id, profile_label(profile), profile, preferred=preferred
            )
            if preferred:
                result.available.insert(0, choice)
            else:
                result.available.append(choice)
        else:
            result.unavailable.append(profile)
    calendars = _integrated_calendars(calendar_profiles)
    if calendars:
        result.available.append(
            ConferencingChoice(INTEGRATED, integrated_label(calendars), None, calendars)
        )
    result.available.append(ConferencingChoice(DEFAULT, _("Default conferencing")))
    for profile in calendar_profiles:
        profile.account = account
        if profile.profile_connected is False:  # None: unknown (older shape), not broken
            result.calendar_profiles_unavailable.append(profile)
    if result.stale and resync:
        result.resync_queued = _queue_resync(account)
    return result


def _queue_resync(account: LinkedAccount) -> bool:
    """Queue one resync of a stale account, when a task queue is configured.

    The one place choices touch the queue (``queueing``); debounced per account
    through ``RATE_LIMIT_CACHE`` so busy pages do not flood the workers.
    """
    from . import queueing

    if not queueing.queue_enabled():
        return False
    key = f"cronofy_conferencing:stale-resync:{account.pk}"
    try:
        if not caches[app_settings.RATE_LIMIT_CACHE].add(key, 1, timeout=RESYNC_DEBOUNCE):
            return True  # queued a moment ago
    except Exception:  # a cache outage must not break the page
        logger.warning("Cache unavailable for the stale-choices debounce", exc_info=True)
    try:
        queueing.queue_sync(account.pk)
    except Exception:
        logger.exception("Could not queue the resync of stale Cronofy account %s", account.pk)
        return False
    return True


def conferencing_for(
    account: LinkedAccount,
    choice: str | ConferencingChoice,
    *,
    calendar_id: str | None = None,
) -> dict[str, Any]:
    """Cronofy's ``conferencing`` object for an event of ``account``.

    ``choice``: a profile id, ``"integrated"``, ``"default"``, ``"preferred"`` (the
    profile the user made the account's default) or an item of
    ``conferencing_choices(account).available``. With ``calendar_id`` (the
    event's calendar), ``"integrated"`` must be offered by that calendar.
    Raises ``ConferencingUnavailable`` for a disconnected, removed or foreign
    profile, or a choice not available. One query at most.
    """
    value = choice.value if isinstance(choice, ConferencingChoice) else choice
    if not isinstance(value, str) or not value:
        raise ConferencingUnavailable(_("No conferencing was chosen."))
    if account.status != LinkedAccount.Status.ACTIVE:
        raise ConferencingUnavailable(
            _("The Cronofy account %(account)s must be connected again before it can be used.")
            % {"account": account.email or account.sub}
        )
    if value == DEFAULT:
        return {"profile_id": DEFAULT}
    if value == PREFERRED:
        value = account.preferred_conferencing_profile_id
        if not value:
            raise ConferencingUnavailable(
                _(
                    "No default conferencing profile is chosen for %(account)s: choose one on "
                    "the My conferencing page."
                )
                % {"account": account.email or account.sub}
            )
    if value == INTEGRATED:
        calendars = _integrated_calendars(
            list(CalendarProfile.objects.connected().filter(account_id=account.pk))
        )
        if calendar_id is not None:
            calendars = tuple(c for c in calendars if c.calendar_id == calendar_id)
        if not calendars:
            raise ConferencingUnavailable(
                _(
                    "The calendar's own conferencing is not available: no calendar of a connected "
                    "calendar profile offers it%(where)s."
                )
                % {"where": _(" on this calendar") if calendar_id is not None else ""}
            )
        return {"profile_id": INTEGRATED}
    if not _PROFILE_ID.match(value):
        raise ConferencingUnavailable(_("That conferencing choice is not one this account has."))
    profile = ConferencingProfile.objects.filter(account_id=account.pk, profile_id=value).first()
    if profile is None:
        raise ConferencingUnavailable(
            _("Conferencing profile %(profile)s is not one of this account's profiles.")
            % {"profile": value[:100]}
        )
    profile.account = account
    label = profile_label(profile)
    if profile.removed_at is not None:
        raise ConferencingUnavailable(
            _("%(profile)s was removed at Cronofy: it can no longer be used.") % {"profile": label},
            profile=profile,
        )
    if not profile.profile_connected:
        relink = profile.profile_relink_url or None
        message = _("%(profile)s is disconnected: relink it before using it.") % {"profile": label}
        if relink:
            message += " " + _("Relink: %(url)s") % {"url": relink}
        raise ConferencingUnavailable(message, profile=profile, relink_url=relink)
    return {"profile_id": profile.profile_id}


def select(
    accounts: QuerySet[LinkedAccount],
    value: Any,
    *,
    account: LinkedAccount | None = None,
    calendar_id: str | None = None,
) -> ConferencingSelection:
    """Resolve a field value against ``accounts`` (the requesting user's).

    ``value``: ``"<account id>:<choice>"``, or a bare choice when ``account`` is
    given (it must be one of ``accounts``). Raises ``InvalidSelection`` for a
    malformed value or an account that is not the user's, else what
    ``conferencing_for`` raises.
    """
    if not isinstance(value, str) or not value or len(value) > 300:
        raise InvalidSelection(_("Choose a conferencing option."))
    account_part, sep, choice = value.partition(":")
    account_id = parse_account_id(account_part) if sep else None
    if account_id is not None:
        if account is not None and account_id != account.pk:
            raise InvalidSelection(_("That conferencing option is not for this account."))
        account = accounts.filter(pk=account_id).first()
    elif account is not None:
        choice = value
        if not accounts.filter(pk=account.pk).exists():
            account = None
    else:
        raise InvalidSelection(_("Choose a conferencing option."))
    if account is None:
        raise InvalidSelection(_("That Cronofy account is not one of yours."))
    conferencing = conferencing_for(account, choice, calendar_id=calendar_id)
    return ConferencingSelection(account=account, choice=choice, conferencing=conferencing)


def needing_relink(account: LinkedAccount) -> RelinkNeeded:
    """The account's present, disconnected profiles of both kinds (two queries)."""
    return RelinkNeeded(
        conferencing_profiles=list(
            ConferencingProfile.objects.disconnected().filter(account_id=account.pk)
        ),
        calendar_profiles=list(
            CalendarProfile.objects.needing_relink().filter(account_id=account.pk)
        ),
    )

"""Relink reminders: tell a user, on a schedule, that a conferencing profile stopped working.

``RELINK_REMINDERS = {"DAYS": [0, 1, 3, 7]}`` (None, the default, turns them
off): on each of those days after a conferencing profile disconnected
(``ConferencingProfile.disconnected_since``), ``send_due_reminders()`` (what
``manage.py cronofy_remind`` and the Celery / Django tasks run) sends the
``relink_reminder_due`` signal and, unless ``"EMAIL": False``, emails the
account's user through Django's email backend with the profile's relink URL
and a link to the "My conferencing" page.

- Once per step and disconnection, however many processes run at once: a step
  is sent by whoever inserts its ``RelinkReminder`` row (unique per profile,
  disconnection and step); the others' inserts fail and they send nothing. The
  insert re-reads the profile under its account's row lock (what a sync's write
  takes), so a profile a sync reconnected meanwhile gets nothing.
- At most once, rather: a send that fails (SMTP down) is logged and counted, not
  retried; the next step comes as planned.
- A run that finds several steps due (the command did not run for days) sends
  the latest only.
- Stops when the profile works again, is removed or its account is unlinked;
  accounts that need reauthorization are left to the page and the banner (their
  profiles' state is unknown). Inactive users and users without an email address
  get the signal only.
- No token or secret is in any message: the templates get the profile, its
  account's label, the relink URL and the page URL, nothing else.

Templates a host can override: ``django_cronofy_conferencing/email/relink_reminder_subject.txt``,
``relink_reminder.txt`` (plain text) and ``relink_reminder.html``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, router, transaction
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from ..conf import SETTINGS_NAME, app_settings
from ..db import keyset_chunks, write_lock
from ..models import ConferencingProfile, LinkedAccount, RelinkReminder
from ..providers import provider_label
from ..signals import relink_reminder_due
from ..wording import account_label, conferencing_label, words

logger = logging.getLogger(__name__)

TEMPLATE_SUBJECT = "django_cronofy_conferencing/email/relink_reminder_subject.txt"
TEMPLATE_TEXT = "django_cronofy_conferencing/email/relink_reminder.txt"
TEMPLATE_HTML = "django_cronofy_conferencing/email/relink_reminder.html"

#: The keys of ``RELINK_REMINDERS`` (system checks E023-E025 check them).
REMINDER_KEYS = ("DAYS", "EMAIL", "FROM_EMAIL", "PAGE_URL")
#: Profiles read per query while looking for due reminders.
CHUNK_SIZE = 500

KEY = f"{SETTINGS_NAME}['RELINK_REMINDERS']"


@dataclass(frozen=True)
class ReminderSettings:
    days: tuple[int, ...]
    email: bool = True
    from_email: str | None = None
    page_url: str = ""


def reminder_settings() -> ReminderSettings | None:
    """``RELINK_REMINDERS`` read and checked; None when reminders are off.

    A malformed value raises ``ImproperlyConfigured`` naming the key (the system
    checks E023-E025 report the same before anything runs).
    """
    value = app_settings.RELINK_REMINDERS
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(
            f"{KEY} must be None or a dict such as {{'DAYS': [0, 1, 3, 7]}}."
        )
    unknown = sorted(str(k) for k in value if k not in REMINDER_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"{KEY}[{unknown[0]!r}] is not a reminder setting; use " + ", ".join(REMINDER_KEYS)
        )
    days = value.get("DAYS")
    if (
        not isinstance(days, list | tuple)
        or not days
        or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in days)
        or len(set(days)) != len(days)
    ):
        raise ImproperlyConfigured(
            f"{KEY}['DAYS'] must be a non-empty list of different whole numbers of days "
            "(0 or more), such as [0, 1, 3, 7]."
        )
    email = value.get("EMAIL", True)
    if not isinstance(email, bool):
        raise ImproperlyConfigured(f"{KEY}['EMAIL'] must be True or False.")
    from_email = value.get("FROM_EMAIL")
    if from_email is not None and (not isinstance(from_email, str) or not from_email.strip()):
        raise ImproperlyConfigured(f"{KEY}['FROM_EMAIL'] must be an email address (a string).")
    page_url = value.get("PAGE_URL") or ""
    if page_url and not absolute_http_url(page_url):
        raise ImproperlyConfigured(
            f"{KEY}['PAGE_URL'] must be the absolute http(s) URL of the My conferencing page."
        )
    return ReminderSettings(
        days=tuple(sorted(days)),
        email=email,
        from_email=from_email,
        page_url=page_url or derived_page_url(),
    )


def absolute_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def derived_page_url() -> str:
    """The page's absolute URL from ``PUSH_NOTIFICATIONS_CALLBACK_URL``'s origin (the
    site's public address the app already knows), or "" (check W013 warns)."""
    callback = app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL
    if not absolute_http_url(callback):
        return ""
    try:
        path = reverse("cronofy_conferencing:profiles")
    except NoReverseMatch:
        return ""
    parts = urlsplit(callback)
    return f"{parts.scheme}://{parts.netloc}{path}"


@dataclass
class RemindResult:
    """What a run did: reminders claimed (``due``), emails ``sent``, ``signal_only``
    (no email: turned off, no address or an inactive user), ``failed`` sends."""

    due: int = 0
    sent: int = 0
    signal_only: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {
            "due": self.due,
            "sent": self.sent,
            "signal_only": self.signal_only,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class DueReminder:
    profile: ConferencingProfile
    disconnected_at: datetime
    step: int


def due_step(days: Iterable[int], disconnected_at: datetime, now: datetime) -> int | None:
    """The latest step of ``days`` reached at ``now``, or None before the first."""
    reached = [d for d in days if disconnected_at + timedelta(days=d) <= now]
    return max(reached) if reached else None


def candidates():
    """Present, disconnected conferencing profiles of active accounts with a user."""
    return ConferencingProfile.objects.disconnected().filter(
        account__status=LinkedAccount.Status.ACTIVE, account__user__isnull=False
    )


def find_due(config: ReminderSettings, now: datetime | None = None) -> list[DueReminder]:
    """Every reminder due at ``now`` that nobody claimed yet (two queries per
    ``CHUNK_SIZE`` profiles). Nothing is claimed here: ``deliver`` does that."""
    now = now or timezone.now()
    found: list[DueReminder] = []
    for chunk in keyset_chunks(candidates().select_related("account__user"), CHUNK_SIZE):
        claimed: dict[tuple[int, datetime], int] = {}
        for profile_pk, disconnected_at, step in RelinkReminder.objects.filter(
            profile__in=[p.pk for p in chunk]
        ).values_list("profile_id", "disconnected_at", "step"):
            key = (profile_pk, disconnected_at)
            claimed[key] = max(step, claimed.get(key, -1))
        for profile in chunk:
            since = profile.disconnected_since
            if since is None:
                continue
            step = due_step(config.days, since, now)
            if step is None or claimed.get((profile.pk, since), -1) >= step:
                continue
            found.append(DueReminder(profile, since, step))
    return found


def claim(reminder: DueReminder) -> bool:
    """Insert the step's row; True for the one process whose insert succeeds.

    Under the account's row lock (a sync's write takes it too), the profile is
    read again: reconnected, removed or unlinked meanwhile, nothing is claimed.
    """
    profile = reminder.profile
    using = router.db_for_write(RelinkReminder)
    try:
        with write_lock(using), transaction.atomic(using=using):
            locked = (
                LinkedAccount.objects.using(using)
                .select_for_update()
                .filter(pk=profile.account_id, status=LinkedAccount.Status.ACTIVE)
                .values_list("pk", flat=True)
            )
            if not list(locked):
                return False
            current = candidates().using(using).filter(pk=profile.pk).first()
            if current is None or current.disconnected_since != reminder.disconnected_at:
                return False
            RelinkReminder.objects.using(using).create(
                profile=profile, disconnected_at=reminder.disconnected_at, step=reminder.step
            )
    except IntegrityError:
        return False  # another process claimed it first
    return True


def message_context(reminder: DueReminder, config: ReminderSettings) -> dict[str, Any]:
    """What the templates get: never a token, only what the user needs to act."""
    profile = reminder.profile
    user = profile.account.user
    return {
        "user": user,
        "name": (user.get_short_name() or user.get_username()) if user else "",
        "profile": profile,
        "provider": provider_label(profile.provider_name),
        "profile_label": conferencing_label(profile, named=True),
        "account": account_label(profile.account),
        "relink_url": profile.profile_relink_url,
        "page_url": config.page_url,
        "step": reminder.step,
        "first": reminder.step == config.days[0],
        "disconnected_at": reminder.disconnected_at,
        "words": words(),
    }


def build_email(reminder: DueReminder, config: ReminderSettings) -> EmailMultiAlternatives:
    """The reminder email (plain text and HTML) to the account's user."""
    context = message_context(reminder, config)
    subject = " ".join(render_to_string(TEMPLATE_SUBJECT, context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(TEMPLATE_TEXT, context),
        from_email=config.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[reminder.profile.account.user.email],
    )
    message.attach_alternative(render_to_string(TEMPLATE_HTML, context), "text/html")
    return message


def deliver(reminder: DueReminder, config: ReminderSettings, result: RemindResult) -> None:
    """Claim the step; if it is ours, send the signal and (unless off) the email."""
    if not claim(reminder):
        return
    result.due += 1
    profile = reminder.profile
    for _receiver, response in relink_reminder_due.send_robust(
        sender=ConferencingProfile, profile=profile, step=reminder.step
    ):
        if isinstance(response, Exception):
            logger.error(
                "A relink_reminder_due receiver failed for conferencing profile %s",
                profile.pk,
                exc_info=response,
            )
    user = profile.account.user
    if not config.email or user is None or not user.is_active or not user.email:
        result.signal_only += 1
        return
    try:
        build_email(reminder, config).send(fail_silently=False)
    except Exception as exc:  # an SMTP outage must not stop the other reminders
        result.failed += 1
        result.errors.append(f"conferencing profile {profile.pk}: {type(exc).__name__}")
        logger.warning(
            "Could not email the relink reminder (day %s) of conferencing profile %s: %s",
            reminder.step,
            profile.pk,
            type(exc).__name__,
        )
        return
    result.sent += 1
    logger.info(
        "Sent the relink reminder (day %s) of conferencing profile %s", reminder.step, profile.pk
    )


def forget_finished() -> int:
    """Delete the reminder rows of profiles that work again or were removed (their
    disconnection is over; unlinking deletes its rows with the account)."""
    from django.db.models import Q

    finished = RelinkReminder.objects.filter(
        Q(profile__profile_connected=True) | Q(profile__removed_at__isnull=False)
    )
    deleted, _ = finished.delete()
    return deleted


def send_due_reminders(
    now: datetime | None = None, *, dry_run: bool = False, progress: Callable | None = None
) -> RemindResult:
    """Send every relink reminder due now (``RELINK_REMINDERS``); nothing when it is None.

    ``dry_run``: find them, claim and send nothing (``result.due`` counts them).
    """
    result = RemindResult()
    config = reminder_settings()
    if config is None:
        return result
    if not dry_run:
        forget_finished()
    for reminder in find_due(config, now):
        if dry_run:
            result.due += 1
        else:
            deliver(reminder, config, result)
        if progress is not None:
            progress(reminder)
    return result

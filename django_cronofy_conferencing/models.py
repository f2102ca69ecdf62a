"""Linked Cronofy accounts and their conferencing profiles.

Only ``sync``, ``tokens`` and ``linking`` write these rows; everything else reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .cronofy.datacenters import DataCenter, get_data_center, validate_data_center
from .fields import EncryptedTextField, stored_ciphertext
from .providers import provider_label

validate_https_url = URLValidator(schemes=["https"])


@dataclass(frozen=True)
class DueReasons:
    """Why an account is due (``LinkedAccountQuerySet.due_reasons``): disjoint conditions."""

    never_synced: Q
    confirmed_channel: Q
    no_confirmed_channel: Q

    @property
    def any(self) -> Q:
        return self.never_synced | self.confirmed_channel | self.no_confirmed_channel


def push_confirmed(now: datetime, window: float) -> Q:
    """Cronofy confirmed the account's push channel at most ``window`` seconds before
    ``now``; never while push notifications are off (``PUSH_NOTIFICATIONS_CALLBACK_URL``)."""
    if not app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL:
        return Q(pk__in=[])
    return Q(channel_confirmed_at__gte=now - timedelta(seconds=float(window))) & ~Q(channel_id="")


def has_disconnected_profile() -> Exists:
    """A present conferencing or calendar profile of the account is disconnected."""
    conferencing = ConferencingProfile.objects.filter(
        account=OuterRef("pk"), removed_at__isnull=True, profile_connected=False
    )
    calendar = CalendarProfile.objects.filter(
        account=OuterRef("pk"), removed_at__isnull=True, profile_connected=False
    )
    return Exists(conferencing) | Exists(calendar)


class LinkedAccountQuerySet(models.QuerySet):
    def for_user(self, user) -> LinkedAccountQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(user=user)

    def active(self) -> LinkedAccountQuerySet:
        return self.filter(status=LinkedAccount.Status.ACTIVE)

    def due(
        self,
        stale_after: float | None = None,
        now: datetime | None = None,
        *,
        confirm_after: float | None = None,
    ) -> LinkedAccountQuerySet:
        """Active accounts never synced, or last synced longer ago than ``confirm_after``
        (``SYNC_CONFIRM_AFTER``) when Cronofy confirmed their push channel within that
        time, else than ``stale_after`` (``SYNC_STALE_AFTER``): push before polling."""
        return self.active().filter(self.due_reasons(stale_after, now, confirm_after).any)

    def due_reasons(
        self,
        stale_after: float | None = None,
        now: datetime | None = None,
        confirm_after: float | None = None,
    ) -> DueReasons:
        """The conditions ``due`` combines, one per reason (for counts and reports)."""
        now = now or timezone.now()
        stale = app_settings.SYNC_STALE_AFTER if stale_after is None else stale_after
        window = app_settings.SYNC_CONFIRM_AFTER if confirm_after is None else confirm_after
        confirmed = push_confirmed(now, window)
        return DueReasons(
            never_synced=Q(last_synced_at__isnull=True),
            confirmed_channel=confirmed
            & Q(last_synced_at__lte=now - timedelta(seconds=float(window))),
            no_confirmed_channel=~confirmed
            & Q(last_synced_at__lte=now - timedelta(seconds=float(stale))),
        )

    def due_counts(
        self,
        stale_after: float | None = None,
        now: datetime | None = None,
        *,
        confirm_after: float | None = None,
    ) -> dict[str, int]:
        """How many accounts are due for each reason, in one query: ``never_synced``,
        ``confirmed_channel`` (older than ``SYNC_CONFIRM_AFTER``), ``no_confirmed_channel``
        (older than ``SYNC_STALE_AFTER``), and ``total``; with ``failing`` and
        ``disconnected`` (their last sync failed / a profile is disconnected) among them,
        which a sweep takes first."""
        reasons = self.due_reasons(stale_after, now, confirm_after)
        due = self.active().filter(reasons.any)
        return due.aggregate(
            total=Count("pk"),
            never_synced=Count("pk", filter=reasons.never_synced),
            confirmed_channel=Count("pk", filter=reasons.confirmed_channel),
            no_confirmed_channel=Count("pk", filter=reasons.no_confirmed_channel),
            failing=Count("pk", filter=Q(consecutive_failures__gt=0)),
            disconnected=Count("pk", filter=has_disconnected_profile()),
        )

    def push_confirmed(self, now: datetime | None = None) -> LinkedAccountQuerySet:
        """Accounts whose push channel Cronofy confirmed within ``SYNC_CONFIRM_AFTER``."""
        return self.filter(push_confirmed(now or timezone.now(), app_settings.SYNC_CONFIRM_AFTER))

    def with_profile_counts(self) -> LinkedAccountQuerySet:
        """Annotate ``profiles_total`` and ``profiles_connected`` (present profiles only)."""
        present = Q(conferencing_profiles__removed_at__isnull=True)
        return self.annotate(
            profiles_total=Count("conferencing_profiles", filter=present),
            profiles_connected=Count(
                "conferencing_profiles",
                filter=present & Q(conferencing_profiles__profile_connected=True),
            ),
        )

    def with_calendar_profile_counts(self) -> LinkedAccountQuerySet:
        """Annotate ``calendar_profiles_total`` and ``calendar_profiles_connected``
        (present ones), as subqueries: combinable with ``with_profile_counts``."""
        present = (
            CalendarProfile.objects.filter(account=OuterRef("pk"), removed_at__isnull=True)
            .order_by()
            .values("account")
        )

        def count(queryset):
            return Coalesce(Subquery(queryset.annotate(n=Count("pk")).values("n")[:1]), 0)

        return self.annotate(
            calendar_profiles_total=count(present),
            calendar_profiles_connected=count(present.filter(profile_connected=True)),
        )


class LinkedAccount(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        REAUTHORIZATION_REQUIRED = "reauthorization_required", _("Reauthorization required")
        REVOKED = "revoked", _("Revoked")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        # Deleting a user keeps the account (and its live grant at Cronofy), user-less,
        # so an operator can still unlink it (revoke, then delete) from the admin.
        on_delete=models.SET_NULL,
        related_name="cronofy_accounts",
    )
    data_center = models.CharField(max_length=32, validators=[validate_data_center])
    sub = models.CharField(_("Cronofy id"), max_length=255)
    account_type = models.CharField(max_length=64, blank=True)
    email = models.CharField(max_length=254, blank=True)
    name = models.CharField(max_length=255, blank=True)
    zoneinfo = models.CharField(max_length=64, blank=True)
    scope = models.TextField(blank=True)

    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField()
    token_expires_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(
        max_length=32, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    channel_id = models.CharField(
        max_length=255, blank=True, help_text=_("Cronofy push notification channel")
    )
    channel_confirmed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_(
            "When Cronofy last confirmed the push channel: created, listed, or a signed "
            "notification for it received"
        ),
    )

    last_synced_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_sync_error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    #: The UserInfo sections the last successful sync left as they were, and why:
    #: ``[{"section", "path", "problem"}]`` (redacted); ``[]`` once every section is valid.
    sync_warnings = models.JSONField(default=list, blank=True)
    userinfo = models.JSONField(default=dict, blank=True)
    # The user's default conferencing profile of this account (a Cronofy profile id,
    # blank: none chosen): ``conferencing_for(account, "preferred")``, listed first by
    # ``conferencing_choices``. An id rather than a key: it outlives Cronofy removing
    # and listing the profile again.
    preferred_conferencing_profile_id = models.CharField(
        _("preferred conferencing profile"), max_length=255, blank=True
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LinkedAccountQuerySet.as_manager()

    class Meta:
        verbose_name = _("linked Cronofy account")
        constraints = [
            models.UniqueConstraint(
                fields=["data_center", "sub"], name="cronofy_conferencing_unique_account"
            ),
        ]
        indexes = [models.Index(fields=["channel_id"], name="cronofy_conf_channel_idx")]

    def __str__(self) -> str:
        return f"{self.email or self.sub} ({self.data_center})"

    @property
    def data_center_info(self) -> DataCenter:
        return get_data_center(self.data_center)

    @property
    def has_tokens(self) -> bool:
        """Whether both tokens are stored; checked without decrypting them."""
        return stored_ciphertext(self, "access_token") and stored_ciphertext(self, "refresh_token")

    def token_expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        if self.token_expires_at is None:
            return False
        return self.token_expires_at <= (now or timezone.now()) + timedelta(seconds=seconds)


class ConferencingProfileQuerySet(models.QuerySet):
    def present(self) -> ConferencingProfileQuerySet:
        return self.filter(removed_at__isnull=True)

    def removed(self) -> ConferencingProfileQuerySet:
        return self.filter(removed_at__isnull=False)

    def connected(self) -> ConferencingProfileQuerySet:
        return self.present().filter(profile_connected=True)

    def disconnected(self) -> ConferencingProfileQuerySet:
        return self.present().filter(profile_connected=False)

    def for_user(self, user) -> ConferencingProfileQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(account__user=user)


class Profile(models.Model):
    """What conferencing and calendar profiles share: Cronofy's fields and the history."""

    profile_id = models.CharField(max_length=255)
    provider_name = models.CharField(max_length=100, db_index=True)
    profile_name = models.CharField(max_length=500, blank=True)
    profile_connected = models.BooleanField()
    profile_relink_url = models.CharField(
        max_length=2048, blank=True, validators=[validate_https_url]
    )

    first_seen_at = models.DateTimeField(default=timezone.now)
    connection_changed_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["account_id", "provider_name", "profile_name", "profile_id"]

    def __str__(self) -> str:
        return f"{provider_label(self.provider_name)}: {self.profile_name or self.profile_id}"

    @property
    def disconnected_since(self) -> datetime | None:
        """When it lost its connection (when first seen, if it never had one); None while
        connected. What relink reminders count their days from."""
        if self.profile_connected:
            return None
        return self.connection_changed_at or self.first_seen_at

    @property
    def last_seen_at(self) -> datetime | None:
        """When Cronofy last listed it: its account's last successful sync while present."""
        if self.removed_at is not None:
            return None
        return self.account.last_synced_at


class ConferencingProfile(Profile):
    account = models.ForeignKey(
        LinkedAccount, on_delete=models.CASCADE, related_name="conferencing_profiles"
    )

    objects = ConferencingProfileQuerySet.as_manager()

    class Meta(Profile.Meta):
        verbose_name = _("conferencing profile")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "profile_id"], name="cronofy_conferencing_unique_profile"
            ),
        ]


class CalendarProfileQuerySet(ConferencingProfileQuerySet):
    """The same helpers as conferencing profiles: ``present``, ``connected``, ``disconnected``..."""

    def needing_relink(self) -> CalendarProfileQuerySet:
        """Present profiles Cronofy lost the connection to (a Relink link where it sent one)."""
        return self.disconnected()


class CalendarProfile(Profile):
    """One entry of UserInfo's ``cronofy.data.profiles``: a calendar service (Google, ...).

    Its calendars are kept as JSON on the row (``calendars``, a list of objects with
    ``calendar_id``, ``calendar_name``, ``calendar_primary``, ``calendar_readonly``,
    ``calendar_deleted``, ``calendar_integrated_conferencing_available``), so the
    conferencing choice reads them with the profile, never with a query per calendar.
    """

    account = models.ForeignKey(
        LinkedAccount, on_delete=models.CASCADE, related_name="calendar_profiles"
    )
    provider_service = models.CharField(max_length=100, blank=True)
    #: None: unknown (the older UserInfo shape has no ``profile_connected``), which is
    #: neither connected nor disconnected.
    profile_connected = models.BooleanField(null=True)
    calendars = models.JSONField(default=list, blank=True)

    objects = CalendarProfileQuerySet.as_manager()

    class Meta(Profile.Meta):
        verbose_name = _("calendar profile")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "profile_id"], name="cronofy_conferencing_unique_cal_profile"
            ),
        ]

    def writable_calendars(self) -> list[dict]:
        """Calendars an event can be written to: neither read-only nor deleted."""
        return [
            c
            for c in self.calendars or []
            if not c.get("calendar_readonly") and not c.get("calendar_deleted")
        ]

    def integrated_conferencing_calendars(self) -> list[dict]:
        """Writable calendars with conferencing built in (Google Meet, Teams)."""
        return [
            c
            for c in self.writable_calendars()
            if c.get("calendar_integrated_conferencing_available")
        ]


# -- the push notification log (operators) -------------------------------------------


class PushNotificationQuerySet(models.QuerySet):
    def expired(
        self, days: float | None = None, now: datetime | None = None
    ) -> PushNotificationQuerySet:
        """Notifications received more than ``days`` (default ``PUSH_LOG_DAYS``) days ago;
        every one with 0."""
        days = app_settings.PUSH_LOG_DAYS if days is None else days
        cutoff = (now or timezone.now()) - timedelta(days=float(days))
        return self.filter(received_at__lte=cutoff)

    def prune(
        self, days: float | None = None, now: datetime | None = None, *, chunk_size: int = 5000
    ) -> int:
        """Delete the expired notifications, ``chunk_size`` at a time; returns how many.

        In chunks of primary keys: each statement is short and holds its locks
        briefly, and memory stays flat whatever the table's size (a plain
        ``delete()`` would load every row when a host listens to delete signals).
        """
        expired = self.expired(days, now).order_by()
        deleted = 0
        while True:
            ids = list(expired.values_list("pk", flat=True)[:chunk_size])
            if not ids:
                return deleted
            deleted += self.model.objects.filter(pk__in=ids).delete()[0]
            if len(ids) < chunk_size:
                return deleted


class PushNotification(models.Model):
    """A push notification the receiver answered, kept ``PUSH_LOG_DAYS`` days.

    Written once, in one INSERT, as the receiver answers (never when
    ``PUSH_LOG_DAYS`` is 0). Holds no secret and no signature: whether the
    signature held, the body (redacted, and only its first
    ``UNSIGNED_BODY_LIMIT`` characters when the signature did not hold), what
    the app did (and why, for what it ignored) and the error, if any.
    """

    class Outcome(models.TextChoices):
        RESYNCED = "resynced", _("Resynced")
        QUEUED = "queued", _("Resync queued")
        DEBOUNCED = "debounced", _("Debounced (resynced moments before)")
        SIGNAL_SENT = "signal_sent", _("Signal sent")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        IGNORED = "ignored", _("Ignored")
        FAILED = "failed", _("Failed")
        REFUSED = "refused", _("Refused: the signature did not hold")
        MALFORMED = "malformed", _("Refused: malformed")

    #: Characters of the body kept when the signature did not hold.
    UNSIGNED_BODY_LIMIT = 2048

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    notification_type = models.CharField(_("type"), max_length=255, blank=True, db_index=True)
    channel_id = models.CharField(_("channel"), max_length=255, blank=True)
    account = models.ForeignKey(
        LinkedAccount,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="push_notifications",
    )
    signature_valid = models.BooleanField(_("signature held"), default=False)
    outcome = models.CharField(max_length=32, choices=Outcome.choices, db_index=True)
    detail = models.CharField(_("why"), max_length=255, blank=True)
    error = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(_("answered"), default=200)
    body = models.TextField(blank=True)
    body_size = models.PositiveIntegerField(_("body size (bytes)"), default=0)
    reprocessed_at = models.DateTimeField(null=True, blank=True)

    objects = PushNotificationQuerySet.as_manager()

    class Meta:
        verbose_name = _("push notification")
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        kind = self.notification_type or _("unknown type")
        return f"{kind} ({self.received_at:%Y-%m-%d %H:%M:%S})"

    @property
    def body_truncated(self) -> bool:
        """Whether only the start of the body was kept (its signature did not hold)."""
        return not self.signature_valid and self.body_size > self.UNSIGNED_BODY_LIMIT


class RelinkReminder(models.Model):
    """One step of the relink reminders (``RELINK_REMINDERS``) claimed for one
    disconnection of a conferencing profile.

    The unique (``profile``, ``disconnected_at``, ``step``) row is what makes each
    step go out once, however many processes run ``cronofy_remind`` at once: the
    one whose insert succeeds sends it. A new disconnection (a later
    ``disconnected_at``) starts the steps again.
    """

    profile = models.ForeignKey(
        ConferencingProfile, on_delete=models.CASCADE, related_name="relink_reminders"
    )
    disconnected_at = models.DateTimeField()
    step = models.PositiveIntegerField(help_text=_("Days after the disconnection."))
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("relink reminder")
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "disconnected_at", "step"],
                name="cronofy_conferencing_unique_reminder",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.profile}: day {self.step}"

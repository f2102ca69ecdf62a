"""API serializers. None of them has a token field, by construction."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ..models import CalendarProfile, ConferencingProfile, LinkedAccount

PROVIDER_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")


class LinkedAccountSerializer(serializers.ModelSerializer):
    """A linked Cronofy account; profile counts cover present profiles only."""

    conferencing_profiles_total = serializers.IntegerField(source="profiles_total", read_only=True)
    conferencing_profiles_connected = serializers.IntegerField(
        source="profiles_connected", read_only=True
    )

    class Meta:
        model = LinkedAccount
        fields = (
            "id",
            "data_center",
            "sub",
            "email",
            "name",
            "zoneinfo",
            "account_type",
            "status",
            "last_synced_at",
            "last_sync_error",
            "consecutive_failures",
            "created_at",
            "conferencing_profiles_total",
            "conferencing_profiles_connected",
        )
        read_only_fields = fields


class LastSeenAtField(serializers.DateTimeField):
    """When Cronofy last listed the profile: its account's last successful sync.

    Reads the ``account_last_synced_at`` annotation the viewset adds (so a list
    makes no query per row), falling back to the model's derived property.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.update(source="*", read_only=True, allow_null=True)
        super().__init__(**kwargs)

    def to_representation(self, profile: ConferencingProfile):
        if profile.removed_at is not None:
            return None
        try:
            value = profile.account_last_synced_at
        except AttributeError:
            value = profile.last_seen_at
        return None if value is None else super().to_representation(value)


class PreferredField(serializers.BooleanField):
    """Whether the profile is its account's default for new meetings (the user's pick).

    Reads the ``account_preferred_id`` annotation the viewset adds (no query per row),
    falling back to the profile's account.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.update(source="*", read_only=True)
        super().__init__(**kwargs)

    def to_representation(self, profile: ConferencingProfile) -> bool:
        try:
            preferred_id = profile.account_preferred_id
        except AttributeError:
            preferred_id = profile.account.preferred_conferencing_profile_id
        return bool(preferred_id) and preferred_id == profile.profile_id


class ConferencingProfileSerializer(serializers.ModelSerializer):
    last_seen_at = LastSeenAtField(
        help_text=_("When Cronofy last listed this profile (its account's last sync).")
    )
    preferred = PreferredField(
        help_text=_(
            "The account's default for new meetings (conferencing_for(account, 'preferred')). "
            'Set it with PATCH {"preferred": true}.'
        )
    )

    class Meta:
        model = ConferencingProfile
        fields = (
            "profile_id",
            "provider_name",
            "profile_name",
            "profile_connected",
            "profile_relink_url",
            "account",
            "first_seen_at",
            "connection_changed_at",
            "last_seen_at",
            "preferred",
        )
        read_only_fields = fields


class ConferencingProfilePreferenceSerializer(serializers.Serializer):
    """The body of ``PATCH conferencing-profiles/<profile_id>/``."""

    preferred = serializers.BooleanField(
        help_text=_(
            "true: make this profile its account's default for new meetings (replacing the "
            "previous one); false: stop preferring it."
        )
    )


class CalendarSerializer(serializers.Serializer):
    """One calendar of a calendar profile (stored as JSON on the profile)."""

    calendar_id = serializers.CharField(read_only=True)
    calendar_name = serializers.CharField(read_only=True)
    calendar_primary = serializers.BooleanField(read_only=True)
    calendar_readonly = serializers.BooleanField(read_only=True)
    calendar_deleted = serializers.BooleanField(read_only=True)
    calendar_integrated_conferencing_available = serializers.BooleanField(read_only=True)


class CalendarProfileSerializer(serializers.ModelSerializer):
    last_seen_at = LastSeenAtField(
        help_text=_("When Cronofy last listed this profile (its account's last sync).")
    )
    calendars = CalendarSerializer(many=True, read_only=True)

    class Meta:
        model = CalendarProfile
        fields = (
            "profile_id",
            "provider_name",
            "provider_service",
            "profile_name",
            "profile_connected",
            "profile_relink_url",
            "account",
            "calendars",
            "first_seen_at",
            "connection_changed_at",
            "last_seen_at",
        )
        read_only_fields = fields


class ChoiceCalendarSerializer(serializers.Serializer):
    calendar_id = serializers.CharField(read_only=True)
    calendar_name = serializers.CharField(read_only=True)
    calendar_primary = serializers.BooleanField(read_only=True)
    profile_id = serializers.CharField(read_only=True, help_text=_("Its calendar profile."))
    provider_name = serializers.CharField(read_only=True)


class ConferencingChoiceSerializer(serializers.Serializer):
    value = serializers.CharField(
        read_only=True,
        help_text=_("A conferencing profile id, 'integrated' or 'default'."),
    )
    label = serializers.CharField(read_only=True)
    preferred = serializers.BooleanField(
        read_only=True, help_text=_("The user's default profile of the account (listed first).")
    )
    provider_name = serializers.CharField(
        source="profile.provider_name", read_only=True, allow_null=True, default=None
    )
    profile_name = serializers.CharField(
        source="profile.profile_name", read_only=True, allow_null=True, default=None
    )
    calendars = ChoiceCalendarSerializer(
        many=True,
        read_only=True,
        help_text=_("For 'integrated': the calendars whose own conferencing it uses."),
    )


class UnavailableProfileSerializer(serializers.Serializer):
    profile_id = serializers.CharField(read_only=True)
    provider_name = serializers.CharField(read_only=True)
    profile_name = serializers.CharField(read_only=True)
    profile_relink_url = serializers.CharField(
        read_only=True, help_text=_("Where the user relinks it (https), or blank.")
    )


class ConferencingChoicesSerializer(serializers.Serializer):
    account = serializers.IntegerField(source="account.pk", read_only=True)
    available = ConferencingChoiceSerializer(many=True, read_only=True)
    unavailable = UnavailableProfileSerializer(
        many=True,
        read_only=True,
        help_text=_("Disconnected conferencing profiles: relink them to use them."),
    )
    calendar_profiles_unavailable = UnavailableProfileSerializer(
        many=True,
        read_only=True,
        help_text=_("Disconnected calendar profiles: events on their calendars fail too."),
    )
    stale = serializers.BooleanField(
        read_only=True, help_text=_("The last sync is older than SYNC_STALE_AFTER.")
    )
    resync_queued = serializers.BooleanField(read_only=True)
    reauthorization_required = serializers.BooleanField(read_only=True)


class AccountIdField(serializers.IntegerField):
    """An account id: ASCII digits only (DRF's ``IntegerField`` reads Arabic-Indic "1" as 1, as
    ``int()`` does), within a 64-bit primary key (SQLite overflows beyond it)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and not data.isascii():
            self.fail("invalid")
        return super().to_internal_value(data)


class ConferencingProfileFilterSerializer(serializers.Serializer):
    """Validates the list filters; errors answer 400 in DRF's usual shape."""

    provider_name = serializers.CharField(required=False, max_length=100)
    profile_connected = serializers.BooleanField(required=False)
    account = AccountIdField(required=False)


class SyncResultSerializer(serializers.Serializer):
    created = serializers.IntegerField(read_only=True)
    updated = serializers.IntegerField(read_only=True)
    removed = serializers.IntegerField(read_only=True)
    unchanged = serializers.IntegerField(read_only=True)
    calendar_created = serializers.IntegerField(read_only=True)
    calendar_updated = serializers.IntegerField(read_only=True)
    calendar_removed = serializers.IntegerField(read_only=True)
    calendar_unchanged = serializers.IntegerField(read_only=True)
    changed = serializers.BooleanField(read_only=True)


class SyncQueuedSerializer(serializers.Serializer):
    account = serializers.IntegerField(read_only=True)
    queued = serializers.BooleanField(read_only=True)


class ConferencingAuthorizationRequestSerializer(serializers.Serializer):
    provider_name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text=_("Preselect a provider, e.g. zoom, ms_teams, go_to."),
    )
    redirect_uri = serializers.URLField(
        required=False,
        max_length=2048,
        help_text=_(
            "Absolute http(s) URL Cronofy sends the user back to. Defaults to this "
            "app's conferencing return page for the account."
        ),
    )

    def validate_provider_name(self, value: str) -> str:
        if value and not PROVIDER_NAME_RE.match(value):
            raise serializers.ValidationError(
                _("Use letters, digits, '_', '-' or '.' only."), code="invalid"
            )
        return value

    def validate_redirect_uri(self, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise serializers.ValidationError(
                _("Enter an absolute http or https URL."), code="invalid"
            )
        return value


class ConferencingAuthorizationSerializer(serializers.Serializer):
    url = serializers.URLField(
        read_only=True, help_text=_("Send the user here to connect a conferencing provider.")
    )


class CronofyErrorSerializer(serializers.Serializer):
    """The body of an error answer (documentation only)."""

    detail = serializers.CharField(read_only=True)
    code = serializers.CharField(
        read_only=True,
        help_text=_(
            "cronofy_unavailable (503), cronofy_rate_limited (429 from Cronofy), throttled "
            "(429: the user's budget), cronofy_error or cronofy_invalid_response (502), "
            "reauthorization_required (409)."
        ),
    )


class CronofyReauthorizationErrorSerializer(CronofyErrorSerializer):
    reconnect_url = serializers.URLField(
        read_only=True, help_text=_("Where the user connects the Cronofy account again.")
    )

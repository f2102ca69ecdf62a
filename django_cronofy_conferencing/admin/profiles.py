"""Conferencing and calendar profiles: read-only (only sync writes them), inline and listed."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import CalendarProfile, ConferencingProfile
from .common import NulSafeChangeList, PresenceFilter, ProviderNameFilter, ReadOnlyProfileMixin

PROFILE_FIELDS = (
    "provider",
    "profile_name",
    "profile_id",
    "profile_connected",
    "relink",
    "first_seen_at",
    "connection_changed_at",
    "removed_at",
)


class CalendarsMixin:
    @admin.display(description=_("calendars"))
    def calendar_list(self, obj: CalendarProfile):
        """Each calendar with what a picker needs to know of it."""
        rows = []
        for calendar in obj.calendars or []:
            notes = [
                text
                for flag, text in (
                    ("calendar_primary", gettext("primary")),
                    ("calendar_readonly", gettext("read-only")),
                    ("calendar_deleted", gettext("deleted")),
                    (
                        "calendar_integrated_conferencing_available",
                        gettext("integrated conferencing"),
                    ),
                )
                if calendar.get(flag)
            ]
            name = calendar.get("calendar_name") or calendar.get("calendar_id", "")
            rows.append((name, ", ".join(notes)))
        if not rows:
            return "-"
        return format_html_join("", "<div>{} <small>{}</small></div>", rows)


#: Django's tabular inline with its empty column headers named (axe "empty-table-header").
INLINE_TEMPLATE = "admin/cronofy_conferencing/edit_inline/tabular.html"


class ConferencingProfileInline(ReadOnlyProfileMixin, admin.TabularInline):
    """The account's conferencing profiles (row titles use the provider's name)."""

    template = INLINE_TEMPLATE
    model = ConferencingProfile
    extra = 0
    can_delete = False
    show_change_link = True
    fields = PROFILE_FIELDS
    readonly_fields = fields


class CalendarProfileInline(CalendarsMixin, ReadOnlyProfileMixin, admin.TabularInline):
    """The account's calendar profiles and their calendars."""

    template = INLINE_TEMPLATE
    model = CalendarProfile
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (*PROFILE_FIELDS[:5], "calendar_list", *PROFILE_FIELDS[5:])
    readonly_fields = fields


class ProfileAdmin(ReadOnlyProfileMixin, admin.ModelAdmin):
    """Both kinds of profile: read-only (written only by sync), the same filters."""

    list_select_related = ("account",)
    # ``account__status``: the fleet page's links count only active accounts' profiles.
    list_filter = (ProviderNameFilter, "profile_connected", PresenceFilter, "account__status")
    search_fields = ("profile_name", "profile_id")

    def get_changelist(self, request, **kwargs):
        return NulSafeChangeList


@admin.register(ConferencingProfile)
class ConferencingProfileAdmin(ProfileAdmin):
    list_display = (
        "provider",
        "profile_name",
        "profile_connected",
        "account_link",
        "last_seen_at",
        "removed",
        "relink",
    )
    fields = (
        "account_link",
        "provider",
        "provider_name",
        "profile_id",
        "profile_name",
        "profile_connected",
        "relink",
        "first_seen_at",
        "connection_changed_at",
        "last_seen_at",
        "removed_at",
    )
    readonly_fields = fields


@admin.register(CalendarProfile)
class CalendarProfileAdmin(CalendarsMixin, ProfileAdmin):
    list_display = (
        "provider",
        "profile_name",
        "profile_connected",
        "calendar_count",
        "account_link",
        "last_seen_at",
        "removed",
        "relink",
    )
    fields = (
        "account_link",
        "provider",
        "provider_name",
        "provider_service",
        "profile_id",
        "profile_name",
        "profile_connected",
        "relink",
        "calendar_list",
        "first_seen_at",
        "connection_changed_at",
        "last_seen_at",
        "removed_at",
    )
    readonly_fields = fields

    @admin.display(description=_("calendars"))
    def calendar_count(self, obj: CalendarProfile) -> int:
        return len(obj.calendars or [])

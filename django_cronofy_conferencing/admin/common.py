"""What the admin modules share: links, labels, read-only profile columns, list filters."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import LinkedAccount
from ..providers import provider_label
from ..sync.service import SyncResult

STATUS_COLORS = {
    LinkedAccount.Status.ACTIVE: "#2e7d32",
    LinkedAccount.Status.REAUTHORIZATION_REQUIRED: "#b26a00",
    LinkedAccount.Status.REVOKED: "#6b6b6b",
}


def relink_link(url: str) -> str:
    """The relink URL as a link that opens in a new tab without handing over ``window.opener``."""
    if not url or urlsplit(url).scheme != "https":
        return "-"
    return format_html(
        '<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', url, gettext("Relink")
    )


def account_link(account: LinkedAccount | None, site_name: str = "admin") -> str:
    """A link to the account's admin page, labelled as the account."""
    if account is None:
        return "-"
    url = reverse(
        f"{site_name}:{account._meta.app_label}_{account._meta.model_name}_change",
        args=[account.pk],
    )
    return format_html('<a href="{}">{}</a>', url, account.email or account.sub)


#: How each section's warning reads in the admin: what was left as stored.
SECTION_WARNING_LABELS = {
    "account": _("account details left as stored"),
    "conferencing_profiles": _("conferencing profiles left as stored"),
    "profiles": _("calendar profiles left as stored"),
    "userinfo": _("UserInfo JSON left as stored"),
}


def format_sync_warnings(warnings) -> str:
    """``LinkedAccount.sync_warnings`` as a list: what was left as stored, the JSON path,
    the problem ("-" when there is none). Escaped: the values come from Cronofy."""
    if not warnings or not isinstance(warnings, list):
        return "-"
    rows = [
        (
            SECTION_WARNING_LABELS.get(str(warning.get("section")), str(warning.get("section"))),
            str(warning.get("path", "")),
            str(warning.get("problem", "")),
        )
        for warning in warnings
        if isinstance(warning, dict)
    ]
    return format_html(
        '<ul class="cronofy-sync-warnings">{}</ul>',
        format_html_join("", "<li>{}: <code>{}</code> {}</li>", rows),
    )


def describe_result(result: SyncResult) -> str:
    text = gettext(
        "%(created)d created, %(updated)d updated, %(removed)d removed, %(unchanged)d unchanged"
    ) % {
        "created": result.created,
        "updated": result.updated,
        "removed": result.removed,
        "unchanged": result.unchanged,
    }
    calendar = (
        result.calendar_created
        + result.calendar_updated
        + result.calendar_removed
        + result.calendar_unchanged
    )
    if calendar:
        text += gettext(
            "; calendar profiles: %(created)d created, %(updated)d updated, "
            "%(removed)d removed, %(unchanged)d unchanged"
        ) % {
            "created": result.calendar_created,
            "updated": result.calendar_updated,
            "removed": result.calendar_removed,
            "unchanged": result.calendar_unchanged,
        }
    return text


class ReadOnlyProfileMixin:
    """Profiles are written only by sync: no add, change or delete, here or inline.

    Also the columns every profile view shows: the provider's label, the relink
    link, and the account (linked to its admin page).
    """

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("provider"), ordering="provider_name")
    def provider(self, obj) -> str:
        return provider_label(obj.provider_name)

    @admin.display(description=_("relink URL"))
    def relink(self, obj):
        return relink_link(obj.profile_relink_url)

    @admin.display(description=_("account"), ordering="account")
    def account_link(self, obj):
        return account_link(obj.account, self.admin_site.name)

    @admin.display(description=_("last seen"), ordering="account__last_synced_at")
    def last_seen_at(self, obj):
        return obj.last_seen_at

    @admin.display(description=_("removed"), boolean=True, ordering="removed_at")
    def removed(self, obj) -> bool:
        return obj.removed_at is not None


class NulSafeChangeList(ChangeList):
    """A changelist whose query string holds a NUL (``?status=%00``, ``?q=%00``) is one
    of Django's "incorrect lookup parameters" (the admin redirects to ``?e=1``), not a
    ``DataError`` from PostgreSQL, which stores no NUL in text: whatever the filter,
    the search or a field lookup the admin allows."""

    def __init__(self, request, *args, **kwargs) -> None:
        if any("\x00" in key or "\x00" in value for key, value in request.GET.items()):
            raise IncorrectLookupParameters("A NUL character in the query string.")
        super().__init__(request, *args, **kwargs)


class ProviderNameFilter(admin.SimpleListFilter):
    """The providers present in the database, not a fixed list (Cronofy adds new ones)."""

    title = _("provider")
    parameter_name = "provider_name"

    def lookups(self, request, model_admin):
        names = (
            model_admin.model.objects.order_by("provider_name")
            .values_list("provider_name", flat=True)
            .distinct()
        )
        return [(name, provider_label(name)) for name in names]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(provider_name=value)


class PresenceFilter(admin.SimpleListFilter):
    title = _("presence")
    parameter_name = "presence"

    def lookups(self, request, model_admin):
        return [("present", _("Present")), ("removed", _("Removed"))]

    def queryset(self, request, queryset):
        if self.value() == "present":
            return queryset.present()
        if self.value() == "removed":
            return queryset.removed()
        return queryset

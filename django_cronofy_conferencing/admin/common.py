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

from ..cronofy.datacenters import get_data_center
from ..exceptions import UnknownDataCenter
from ..health import failure_reason
from ..models import LinkedAccount
from ..providers import provider_label
from ..sync.service import SyncResult

# White text on each: at least 4.5:1 (WCAG AA; "#b26a00" was 4.24:1 and failed axe).
STATUS_COLORS = {
    LinkedAccount.Status.ACTIVE: "#2e7d32",  # 5.13:1
    LinkedAccount.Status.REAUTHORIZATION_REQUIRED: "#995c00",  # 5.40:1
    LinkedAccount.Status.REVOKED: "#6b6b6b",  # 5.33:1
}

#: Cronofy's account types (``cronofy.type``) in words; any other is title-cased.
ACCOUNT_TYPE_LABELS = {
    "account": _("Individual account"),
    "service_account": _("Service account"),
    "application_calendar": _("Application calendar"),
}


def account_type_label(account_type: str) -> str:
    if not account_type:
        return "-"
    known = ACCOUNT_TYPE_LABELS.get(account_type)
    if known is not None:
        return str(known)
    return account_type.replace("_", " ").capitalize()


def data_center_label(dc_id: str) -> str:
    """A data center as people name it ("United States"); the id when it has no label."""
    try:
        return get_data_center(dc_id).label or dc_id
    except UnknownDataCenter:
        return dc_id


def account_label(account: LinkedAccount) -> str:
    """An account in messages: its email (as written) or Cronofy id, and its data center."""
    return f"{account.email or account.sub} ({data_center_label(account.data_center)})"


def truncated(value: str, css_class: str = "cronofy-truncate") -> str:
    """``value`` cut to its column's width by CSS (an ellipsis), whole on hover (``title``)."""
    if not value:
        return "-"
    return format_html('<span class="{}" title="{}">{}</span>', css_class, value, value)


def problem_in_words(error: str) -> str:
    """A stored sync error in words with what to do, its technical text folded away."""
    reason = failure_reason(error)
    if reason is None:
        return "-"
    return format_html(
        '<div class="cronofy-problem"><strong>{}.</strong> {}'
        "<details><summary>{}</summary><code>{}</code></details></div>",
        reason.label,
        reason.advice,
        gettext("Technical detail"),
        error,
    )


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

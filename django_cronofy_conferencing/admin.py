"""Django admin for linked accounts and their conferencing profiles.

Both models are written only by ``sync``, ``tokens`` and ``linking``: the admin shows them,
and acts on accounts through two actions, "Sync now" and "Unlink" (which
revokes the grant at Cronofy before deleting). Tokens are never rendered: the
change form shows only whether they are stored and when the access token
expires, and has no field that could display or edit them.
"""

from __future__ import annotations

import copy
from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import csrf_protect_m
from django.contrib.admin.utils import model_ngettext, unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from . import linking
from .conf import app_settings
from .db import non_atomic_requests
from .exceptions import CronofyError, CronofyUnavailable, RateLimited
from .fields import KEYS_SETTING
from .models import ConferencingProfile, LinkedAccount
from .providers import provider_label
from .queueing import queue_sync
from .redaction import redact
from .sync import SyncResult, sync_account

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


def describe_result(result: SyncResult) -> str:
    return gettext(
        "%(created)d created, %(updated)d updated, %(removed)d removed, %(unchanged)d unchanged"
    ) % {
        "created": result.created,
        "updated": result.updated,
        "removed": result.removed,
        "unchanged": result.unchanged,
    }


class ReadOnlyProfileMixin:
    """Profiles are written only by sync: no add, change or delete, here or inline.

    Also the columns both places show: the provider's label and the relink link.
    """

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("provider"), ordering="provider_name")
    def provider(self, obj: ConferencingProfile) -> str:
        return provider_label(obj.provider_name)

    @admin.display(description=_("relink URL"))
    def relink(self, obj: ConferencingProfile):
        return relink_link(obj.profile_relink_url)


class ConferencingProfileInline(ReadOnlyProfileMixin, admin.TabularInline):
    """The account's profiles, read-only (only sync writes them)."""

    model = ConferencingProfile
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        "provider",
        "profile_name",
        "profile_id",
        "profile_connected",
        "relink",
        "first_seen_at",
        "connection_changed_at",
        "removed_at",
    )
    readonly_fields = fields


class LinkedAccountChangeList(ChangeList):
    """Counts the profiles of the displayed page only.

    The counts come from ``with_profile_counts()`` on the page's rows (one
    query, whatever the page size), so the result counts and the filters'
    lookups run on the plain table instead of a join with every profile.
    """

    def get_results(self, request):
        super().get_results(request)
        if isinstance(self.result_list, QuerySet):
            self.result_list = self.result_list.with_profile_counts()


@admin.register(LinkedAccount)
class LinkedAccountAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "user",
        "email",
        "data_center",
        "status_badge",
        "conferencing_profiles",
        "last_synced_at",
        "consecutive_failures",
    )
    list_select_related = ("user",)
    list_filter = ("status", "data_center", "account_type")
    ordering = ("-created_at", "-pk")
    actions = ("sync_now", "unlink")
    inlines = (ConferencingProfileInline,)
    # No token field appears here: they cannot be displayed or edited.
    fieldsets = (
        (None, {"fields": ("user", "email", "name", "data_center", "sub", "account_type")}),
        (
            _("Status"),
            {
                "fields": (
                    "status_badge",
                    "last_synced_at",
                    "last_sync_error",
                    "consecutive_failures",
                )
            },
        ),
        (
            _("Authorization"),
            {"fields": ("scope", "tokens_stored", "token_expires_at", "channel_id")},
        ),
        (
            _("Details"),
            {
                "classes": ("collapse",),
                "fields": ("zoneinfo", "userinfo", "created_at", "updated_at"),
            },
        ),
    )
    readonly_fields = (
        "user",
        "email",
        "name",
        "data_center",
        "sub",
        "account_type",
        "status_badge",
        "last_synced_at",
        "last_sync_error",
        "consecutive_failures",
        "scope",
        "tokens_stored",
        "token_expires_at",
        "channel_id",
        "zoneinfo",
        "userinfo",
        "created_at",
        "updated_at",
    )
    unlink_confirmation_template = (
        "admin/cronofy_conferencing/linkedaccount/unlink_selected_confirmation.html"
    )

    def get_search_fields(self, request):
        fields = ["email", "sub"]
        user_model = get_user_model()
        for name in (user_model.USERNAME_FIELD, user_model.get_email_field_name()):
            try:
                user_model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if f"user__{name}" not in fields:
                fields.append(f"user__{name}")
        return fields

    def get_changelist(self, request, **kwargs):
        return LinkedAccountChangeList

    def has_add_permission(self, request) -> bool:
        # Accounts are linked through OAuth (or ``manage.py cronofy_link``), never typed in.
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The change form is view-only (sync, tokens and linking write these rows); the model's
        # change permission still gates the "Sync now" action on the changelist.
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)

    def get_actions(self, request, action_location=None):
        # ``action_location``: Django 6.1 (warns about an override without it);
        # Django 5.2 has no such parameter and never passes it.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)
        # A plain delete would leave the grant alive at Cronofy: "Unlink" revokes first.
        actions.pop("delete_selected", None)
        return actions

    @non_atomic_requests  # "Sync now" and "Unlink" call Cronofy: no request transaction
    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, extra_context)

    # -- columns ----------------------------------------------------------

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: LinkedAccount):
        color = STATUS_COLORS.get(obj.status, "#6b6b6b")
        return format_html(
            '<span class="cronofy-status cronofy-status-{}" style="display:inline-block;'
            "padding:1px 8px;border-radius:9px;color:#fff;background:{};white-space:nowrap"
            '">{}</span>',
            obj.status,
            color,
            obj.get_status_display(),
        )

    @admin.display(description=_("conferencing profiles"))
    def conferencing_profiles(self, obj: LinkedAccount) -> str:
        total = getattr(obj, "profiles_total", None)
        if total is None:  # not annotated: a queryset from elsewhere
            profiles = obj.conferencing_profiles.all()
            total = sum(1 for p in profiles if p.removed_at is None)
            connected = sum(1 for p in profiles if p.removed_at is None and p.profile_connected)
        else:
            connected = obj.profiles_connected
        return gettext("%(connected)d / %(total)d connected") % {
            "connected": connected,
            "total": total,
        }

    @admin.display(description=_("tokens stored"), boolean=True)
    def tokens_stored(self, obj: LinkedAccount) -> bool:
        return obj.has_tokens

    # -- actions ----------------------------------------------------------

    @admin.action(description=_("Sync now"), permissions=["change"])
    def sync_now(self, request, queryset):
        limit = int(app_settings.ADMIN_SYNC_MAX_ACCOUNTS)
        ids = list(queryset.order_by().values_list("pk", flat=True))
        if len(ids) > limit:
            if app_settings.USE_CELERY:
                for account_id in ids:
                    queue_sync(account_id)
                self.message_user(
                    request,
                    ngettext(
                        "Queued %(count)d account for sync.",
                        "Queued %(count)d accounts for sync.",
                        len(ids),
                    )
                    % {"count": len(ids)},
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    gettext(
                        "%(count)d accounts selected: the admin syncs at most %(limit)d at a "
                        "time. Run `manage.py cronofy_sync` (with --account or --user to pick "
                        "accounts) for more, or select fewer."
                    )
                    % {"count": len(ids), "limit": limit},
                    messages.ERROR,
                )
            return None
        for account in queryset:
            self._sync_one(request, account)
        return None

    def _report_error(self, request, message: str, account: LinkedAccount, exc) -> None:
        """An error message naming the account and the (redacted) error."""
        self.message_user(
            request, message % {"account": account, "error": redact(exc)}, messages.ERROR
        )

    def _sync_one(self, request, account: LinkedAccount) -> None:
        try:
            result = sync_account(account)
        except CronofyError as exc:
            self._report_error(
                request, gettext("%(account)s: sync failed: %(error)s"), account, exc
            )
            return
        self.message_user(
            request,
            gettext("%(account)s: synced (%(result)s).")
            % {"account": account, "result": describe_result(result)},
            messages.SUCCESS,
        )

    @admin.action(description=_("Unlink (revoke at Cronofy, then delete)"), permissions=["delete"])
    def unlink(self, request, queryset):
        limit = int(app_settings.ADMIN_SYNC_MAX_ACCOUNTS)
        accounts = list(queryset)
        if len(accounts) > limit:
            self.message_user(
                request,
                gettext(
                    "%(count)d accounts selected: the admin unlinks at most %(limit)d at a time."
                )
                % {"count": len(accounts), "limit": limit},
                messages.ERROR,
            )
            return None
        if not request.POST.get("post"):
            return self._unlink_confirmation(request, accounts)
        for account in accounts:
            self._unlink_one(request, account)
        return None

    def _unlink_confirmation(self, request, accounts):
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Unlink Cronofy accounts"),
            "subtitle": None,
            "objects_name": str(model_ngettext(opts, len(accounts))),
            "queryset": accounts,
            "opts": opts,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.unlink_confirmation_template, context)

    def _unlink_one(self, request, account: LinkedAccount) -> bool:
        """Revoke and delete one account; report the outcome. True when it is gone."""
        snapshot = copy.copy(account)  # delete() clears the pk the log entry needs
        try:
            revoked = linking.unlink(account)
        except (CronofyUnavailable, RateLimited) as exc:
            self._report_error(
                request,
                gettext(
                    "%(account)s: Cronofy could not be reached to revoke access, so nothing "
                    "was deleted. Try again later. (%(error)s)"
                ),
                account,
                exc,
            )
            return False
        except CronofyError as exc:
            self._report_error(
                request, gettext("%(account)s: not unlinked: %(error)s"), account, exc
            )
            return False
        self.log_deletions(request, [snapshot])
        if revoked:
            self.message_user(
                request,
                gettext("%(account)s: unlinked (access revoked at Cronofy, account deleted).")
                % {"account": snapshot},
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                gettext(
                    "%(account)s: deleted, but access could not be revoked at Cronofy: its "
                    "stored token cannot be decrypted with any key in %(setting)s. The user "
                    "can remove the application in their Cronofy account."
                )
                % {"account": snapshot, "setting": KEYS_SETTING},
                messages.WARNING,
            )
        return True

    @non_atomic_requests  # revokes at Cronofy: no request transaction
    @csrf_protect_m
    def delete_view(self, request, object_id, extra_context=None):
        """Deleting from the change form unlinks: revoke at Cronofy first, then delete."""
        if request.method == "POST":
            obj = self.get_object(request, unquote(object_id))
            if obj is not None:
                if not self.has_delete_permission(request, obj):
                    raise PermissionDenied
                opts = self.model._meta
                if self._unlink_one(request, obj):
                    return HttpResponseRedirect(
                        reverse(
                            f"admin:{opts.app_label}_{opts.model_name}_changelist",
                            current_app=self.admin_site.name,
                        )
                    )
                return HttpResponseRedirect(
                    reverse(
                        f"admin:{opts.app_label}_{opts.model_name}_change",
                        args=(obj.pk,),
                        current_app=self.admin_site.name,
                    )
                )
        return super().delete_view(request, object_id, extra_context)


class ProviderNameFilter(admin.SimpleListFilter):
    """The providers present in the database, not a fixed list (Cronofy adds new ones)."""

    title = _("provider")
    parameter_name = "provider_name"

    def lookups(self, request, model_admin):
        names = (
            ConferencingProfile.objects.order_by("provider_name")
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


@admin.register(ConferencingProfile)
class ConferencingProfileAdmin(ReadOnlyProfileMixin, admin.ModelAdmin):
    """Read-only: these rows are written only by sync."""

    list_display = (
        "provider",
        "profile_name",
        "profile_connected",
        "account",
        "last_seen_at",
        "removed",
        "relink",
    )
    list_select_related = ("account",)
    list_filter = (ProviderNameFilter, "profile_connected", PresenceFilter)
    search_fields = ("profile_name", "profile_id")
    fields = (
        "account",
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

    @admin.display(description=_("last seen"), ordering="account__last_synced_at")
    def last_seen_at(self, obj: ConferencingProfile):
        return obj.last_seen_at

    @admin.display(description=_("removed"), boolean=True, ordering="removed_at")
    def removed(self, obj: ConferencingProfile) -> bool:
        return obj.removed_at is not None

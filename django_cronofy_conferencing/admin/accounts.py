"""Linked accounts: find, filter, inspect, "Sync now" (changelist action and change page
button), and unlink (``unlinking``). Tokens are never rendered: the change form shows
only whether they are stored and when the access token expires."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..db import non_atomic_requests
from ..exceptions import CronofyError
from ..models import LinkedAccount
from ..queueing import queue_enabled, queue_sync
from ..sync.service import sync_account
from .common import STATUS_COLORS, NulSafeChangeList, describe_result, format_sync_warnings
from .profiles import CalendarProfileInline, ConferencingProfileInline
from .unlinking import UnlinkMixin


class LinkedAccountChangeList(NulSafeChangeList):
    """Counts the profiles of the displayed page only.

    The counts come from ``with_profile_counts()`` and
    ``with_calendar_profile_counts()`` on the page's rows (one query, whatever
    the page size), so the result counts and the filters' lookups run on the
    plain table instead of a join with every profile.
    """

    def get_results(self, request):
        super().get_results(request)
        if isinstance(self.result_list, QuerySet):
            self.result_list = self.result_list.with_profile_counts().with_calendar_profile_counts()


def _counts(connected: int, total: int) -> str:
    return gettext("%(connected)d / %(total)d connected") % {
        "connected": connected,
        "total": total,
    }


@admin.register(LinkedAccount)
class LinkedAccountAdmin(UnlinkMixin, admin.ModelAdmin):
    # One column per fact (the first, linked, is the account's email or Cronofy id):
    # fits 1280 px without wrapping.
    list_display = (
        "account",
        "user",
        "data_center",
        "status_badge",
        "conferencing_profiles",
        "calendar_profiles",
        "last_synced_at",
        "consecutive_failures",
    )
    list_display_links = ("account",)
    list_select_related = ("user",)
    list_filter = ("status", "data_center", "account_type")
    ordering = ("-created_at", "-pk")
    actions = ("sync_now", "unlink")
    inlines = (ConferencingProfileInline, CalendarProfileInline)
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
                    "sync_warnings_list",
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
        "sync_warnings_list",
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

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/sync/",
                self.admin_site.admin_view(self.sync_view),
                name=f"{opts.app_label}_{opts.model_name}_sync",
            ),
            *super().get_urls(),
        ]

    def has_add_permission(self, request) -> bool:
        # Accounts are linked through OAuth (or ``manage.py cronofy_link``), never typed in.
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The change form is view-only (sync, tokens and linking write these rows); the model's
        # change permission still gates "Sync now".
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

    def render_change_form(self, request, context, *args, **kwargs):
        # "Sync now" on the change page: the model's change permission, as for the action.
        context["can_sync"] = super().has_change_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

    # -- columns ----------------------------------------------------------

    @admin.display(description=_("email"), ordering="email")
    def account(self, obj: LinkedAccount) -> str:
        return obj.email or obj.sub

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
            profiles = [p for p in obj.conferencing_profiles.all() if p.removed_at is None]
            return _counts(sum(p.profile_connected is True for p in profiles), len(profiles))
        return _counts(obj.profiles_connected, total)

    @admin.display(description=_("calendar profiles"))
    def calendar_profiles(self, obj: LinkedAccount) -> str:
        total = getattr(obj, "calendar_profiles_total", None)
        if total is None:
            profiles = [p for p in obj.calendar_profiles.all() if p.removed_at is None]
            # Unknown (None, the older UserInfo shape) is not connected.
            return _counts(sum(p.profile_connected is True for p in profiles), len(profiles))
        return _counts(obj.calendar_profiles_connected, total)

    @admin.display(description=_("sync warnings"))
    def sync_warnings_list(self, obj: LinkedAccount):
        """The UserInfo sections the last sync left as stored, each with its JSON path."""
        return format_sync_warnings(obj.sync_warnings)

    @admin.display(description=_("tokens stored"), boolean=True)
    def tokens_stored(self, obj: LinkedAccount) -> bool:
        return obj.has_tokens

    # -- "Sync now" -------------------------------------------------------

    @admin.action(description=_("Sync now"), permissions=["change"])
    def sync_now(self, request, queryset):
        limit = int(app_settings.ADMIN_SYNC_MAX_ACCOUNTS)
        ids = list(queryset.order_by().values_list("pk", flat=True))
        if len(ids) > limit:
            if queue_enabled():
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
        if account.sync_warnings:
            self.message_user(
                request,
                ngettext(
                    "%(account)s: %(count)d part of Cronofy's answer was left as stored "
                    "(see its sync warnings).",
                    "%(account)s: %(count)d parts of Cronofy's answer were left as stored "
                    "(see its sync warnings).",
                    len(account.sync_warnings),
                )
                % {"account": account, "count": len(account.sync_warnings)},
                messages.WARNING,
            )

    @non_atomic_requests  # calls Cronofy: no request transaction
    def sync_view(self, request, object_id):
        """The change page's "Sync now" button (POST): sync this account, come back."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not super().has_change_permission(request):
            raise PermissionDenied
        account = self.get_object(request, unquote(object_id))
        if account is None:
            raise Http404
        self._sync_one(request, account)
        return HttpResponseRedirect(self._url("change", account.pk))

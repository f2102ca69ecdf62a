"""Linked accounts: find, filter, inspect, "Sync now" (changelist action and change page
button), and unlink (``unlinking``). Tokens are never rendered: the change form shows
only whether they are stored and when the access token expires."""

from __future__ import annotations

import time
from collections import Counter

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import F, QuerySet
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..cronofy.ratelimit import Lane
from ..cronofy.redaction import redact
from ..db import non_atomic_requests
from ..exceptions import CronofyError
from ..health import failure_reason, fleet_health
from ..models import LinkedAccount
from ..queueing import queue_accounts, queue_enabled
from ..sync.service import sync_account, sync_accounts
from .common import (
    STATUS_COLORS,
    NulSafeChangeList,
    account_label,
    account_type_label,
    data_center_label,
    describe_result,
    format_sync_warnings,
    problem_in_words,
    truncated,
)
from .filters import (
    AccountTypeFilter,
    DataCenterFilter,
    DueReasonFilter,
    FailureReasonFilter,
    NeedsAttentionFilter,
)
from .fleet import fleet_context, reconnect_url
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
    # One column per fact, the status second (the first, linked, is the account's email
    # or Cronofy id, cut to its column with the whole on hover): at 1280 px the status
    # shows without scrolling, however long the emails.
    list_display = (
        "account",
        "status_badge",
        "user_name",
        "data_center_name",
        "conferencing_profiles",
        "calendar_profiles",
        "last_synced_at",
        "failures",
    )
    list_display_links = ("account",)
    list_select_related = ("user",)
    list_filter = (
        NeedsAttentionFilter,
        "status",
        FailureReasonFilter,
        DueReasonFilter,
        DataCenterFilter,
        AccountTypeFilter,
    )
    ordering = ("-created_at", "-pk")
    actions = ("sync_now", "unlink")
    inlines = (ConferencingProfileInline, CalendarProfileInline)
    # No token field appears here: they cannot be displayed or edited.
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "user",
                    "email",
                    "name",
                    "data_center_name",
                    "sub",
                    "account_type_name",
                )
            },
        ),
        (
            _("Status"),
            {
                "fields": (
                    "status_badge",
                    "last_synced_at",
                    "sync_problem",
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
        "data_center_name",
        "sub",
        "account_type_name",
        "status_badge",
        "last_synced_at",
        "sync_problem",
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

    class Media:
        css = {"all": ("django_cronofy_conferencing/admin.css",)}

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "fleet/",
                self.admin_site.admin_view(self.fleet_view),
                name=f"{opts.app_label}_{opts.model_name}_fleet",
            ),
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
        # "Sync now" on the change page: the model's change permission, as for the action,
        # and only for an active account (a sync cannot fix one that must be reconnected:
        # its page offers the reconnect link to send instead).
        obj = kwargs.get("obj") or context.get("original")
        active = obj is None or obj.status == LinkedAccount.Status.ACTIVE
        context["can_sync"] = super().has_change_permission(request) and active
        if obj is not None and not active:
            context["reconnect_url"] = reconnect_url(request, obj)
        return super().render_change_form(request, context, *args, **kwargs)

    # -- columns ----------------------------------------------------------

    @admin.display(description=_("email"), ordering="email")
    def account(self, obj: LinkedAccount) -> str:
        return truncated(obj.email or obj.sub)

    @admin.display(description=_("user"), ordering="user")
    def user_name(self, obj: LinkedAccount) -> str:
        return truncated(str(obj.user) if obj.user_id else "", "cronofy-truncate-short")

    @admin.display(description=_("data center"), ordering="data_center")
    def data_center_name(self, obj: LinkedAccount) -> str:
        return data_center_label(obj.data_center)

    @admin.display(description=_("account type"), ordering="account_type")
    def account_type_name(self, obj: LinkedAccount) -> str:
        return account_type_label(obj.account_type)

    @admin.display(description=_("consecutive failures"), ordering="consecutive_failures")
    def failures(self, obj: LinkedAccount) -> str:
        """The consecutive failures, the reason in words on hover."""
        reason = failure_reason(obj.last_sync_error) if obj.consecutive_failures else None
        if reason is None:
            return str(obj.consecutive_failures)
        return format_html('<span title="{}">{}</span>', reason.label, obj.consecutive_failures)

    @admin.display(description=_("last sync problem"))
    def sync_problem(self, obj: LinkedAccount) -> str:
        return problem_in_words(obj.last_sync_error)

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

    #: Seconds the changelist's "Sync now" syncs for at most, without a queue.
    sync_now_seconds = 20.0
    #: The clock behind ``sync_now_seconds`` (tests replace it).
    clock = staticmethod(time.monotonic)

    @admin.action(description=_("Sync now"), permissions=["change"])
    def sync_now(self, request, queryset):
        """Sync the selected active accounts; never refused, whatever the selection.

        Up to ``ADMIN_SYNC_MAX_ACCOUNTS``: each now, with a message each. More: queued
        with ``TASK_QUEUE``; without one, synced here in batches of that size (least
        recently synced first) for up to ``sync_now_seconds``, with a message saying how
        many were synced, failed and are left. Accounts that must be reconnected are
        skipped (a sync cannot help them: their page has the reconnect link to send).
        """
        queryset = queryset.order_by()
        skipped = list(
            queryset.exclude(status=LinkedAccount.Status.ACTIVE)[:2].values_list("pk", flat=True)
        )
        if skipped:
            self._report_skipped(request, queryset)
        active = queryset.filter(status=LinkedAccount.Status.ACTIVE)
        batch = max(1, int(app_settings.ADMIN_SYNC_MAX_ACCOUNTS))
        selected = active.count()
        if selected <= batch:
            for account in active.order_by("pk"):
                self._sync_one(request, account)
            return None
        if queue_enabled():
            queued = queue_accounts(active, lane=Lane.USER)  # an operator waits on it
            self.message_user(
                request,
                ngettext(
                    "Queued %(count)d account for sync (TASK_QUEUE).",
                    "Queued %(count)d accounts for sync (TASK_QUEUE).",
                    queued,
                )
                % {"count": queued},
                messages.SUCCESS,
            )
            return None
        self._sync_in_batches(request, active, selected, batch)
        return None

    def _report_skipped(self, request, queryset) -> None:
        count = queryset.exclude(status=LinkedAccount.Status.ACTIVE).count()
        self.message_user(
            request,
            ngettext(
                "Not synced: %(count)d selected account must be connected again by its user "
                "(a sync cannot help). Its page has the reconnect link to send them.",
                "Not synced: %(count)d selected accounts must be connected again by their "
                "users (a sync cannot help). Each one's page has the reconnect link to send.",
                count,
            )
            % {"count": count},
            messages.WARNING,
        )

    def _sync_in_batches(self, request, active, selected: int, batch: int) -> None:
        """Sync ``active`` in batches (``sync_accounts``) until done or out of time."""
        order = (F("last_synced_at").asc(nulls_first=True), "pk")
        ids = list(active.order_by(*order).values_list("pk", flat=True))
        deadline = self.clock() + self.sync_now_seconds
        synced = failed = done = 0
        reasons: Counter[str] = Counter()
        for start in range(0, len(ids), batch):
            chunk = LinkedAccount.objects.filter(pk__in=ids[start : start + batch])
            report = sync_accounts(chunk, concurrency=app_settings.SYNC_CONCURRENCY)
            synced += report.synced
            failed += report.failed
            done += report.synced + report.failed
            for error in report.failures.values():
                reason = failure_reason(redact(error))
                reasons[str(reason.label) if reason else type(error).__name__] += 1
            if self.clock() >= deadline:
                break
        text = gettext("Synced %(synced)d of %(selected)d selected accounts") % {
            "synced": synced,
            "selected": selected,
        }
        if failed:
            text += gettext("; %(failed)d failed (%(reasons)s)") % {
                "failed": failed,
                "reasons": ", ".join(f"{label}: {n}" for label, n in sorted(reasons.items())),
            }
        text += "."
        left = selected - done
        if left:
            text += " " + gettext(
                "%(left)d are left: the admin syncs for at most %(seconds)d seconds at a time. "
                "Choose Sync now again to go on (the least recently synced go first), run "
                "`manage.py cronofy_sync`, or set TASK_QUEUE to queue them."
            ) % {"left": left, "seconds": self.sync_now_seconds}
        level = messages.WARNING if failed or left else messages.SUCCESS
        self.message_user(request, text, level)

    def _sync_one(self, request, account: LinkedAccount) -> None:
        if account.status != LinkedAccount.Status.ACTIVE:
            self.message_user(
                request,
                gettext(
                    "Not synced: %(account)s must be connected again by its user (a sync "
                    "cannot help). Send them the reconnect link on this page."
                )
                % {"account": account_label(account)},
                messages.WARNING,
            )
            return
        try:
            result = sync_account(account)
        except CronofyError as exc:
            self._report_sync_error(request, account, exc)
            return
        self.message_user(
            request,
            gettext("Synced %(account)s: %(result)s.")
            % {"account": account_label(account), "result": describe_result(result)},
            messages.SUCCESS,
        )
        if account.sync_warnings:
            self.message_user(
                request,
                ngettext(
                    "Left as stored for %(account)s: %(count)d part of Cronofy's answer "
                    "(see its sync warnings).",
                    "Left as stored for %(account)s: %(count)d parts of Cronofy's answer "
                    "(see its sync warnings).",
                    len(account.sync_warnings),
                )
                % {"account": account_label(account), "count": len(account.sync_warnings)},
                messages.WARNING,
            )

    def _report_sync_error(self, request, account: LinkedAccount, exc: CronofyError) -> None:
        """The failure in words, what to do, and the (redacted) technical detail folded."""
        detail = redact(exc)
        reason = failure_reason(detail)
        self.message_user(
            request,
            format_html(
                "{} {}<details><summary>{}</summary><code>{}</code></details>",
                gettext("Sync of %(account)s failed: %(reason)s.")
                % {"account": account_label(account), "reason": reason.label if reason else ""},
                reason.advice if reason else "",
                gettext("Technical detail"),
                detail,
            ),
            messages.ERROR,
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

    # -- the fleet page ---------------------------------------------------------

    def fleet_view(self, request):
        """The fleet's health (``health.fleet_health``: the figures of ``cronofy_status``),
        each linking into the filtered list behind it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Cronofy fleet health"),
            "subtitle": None,
            "opts": self.model._meta,
            "media": self.media,
            **fleet_context(self.admin_site.name, fleet_health()),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/cronofy_conferencing/fleet.html", context)

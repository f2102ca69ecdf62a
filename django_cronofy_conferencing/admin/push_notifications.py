"""The push notification log: read-only, filtered by type and outcome, and "Reprocess"
(act again on notifications whose signature held, after a fix)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..db import non_atomic_requests
from ..models import PushNotification
from ..web.notifications import reprocess
from .common import account_link


class NotificationTypeFilter(admin.SimpleListFilter):
    """The types received, not a fixed list (Cronofy adds types)."""

    title = _("type")
    parameter_name = "notification_type"

    def lookups(self, request, model_admin):
        types = (
            PushNotification.objects.order_by("notification_type")
            .values_list("notification_type", flat=True)
            .distinct()
        )
        return [(kind, kind or gettext("(none)")) for kind in types]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(notification_type=self.value())


@admin.register(PushNotification)
class PushNotificationAdmin(admin.ModelAdmin):
    list_display = (
        "received_at",
        "notification_type",
        "outcome",
        "signature_valid",
        "account_column",
        "detail",
        "response_status",
    )
    list_display_links = ("received_at",)
    list_filter = ("outcome", NotificationTypeFilter, "signature_valid", "response_status")
    list_select_related = ("account",)
    search_fields = ("channel_id", "notification_type")
    date_hierarchy = None
    actions = ("reprocess_selected",)
    fields = (
        "received_at",
        "notification_type",
        "channel_id",
        "account_column",
        "signature_valid",
        "outcome",
        "detail",
        "error",
        "response_status",
        "body_kept",
        "body_size",
        "reprocessed_at",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ("django_cronofy_conferencing/admin.css",)}

    def has_add_permission(self, request) -> bool:
        return False  # written by the receiver only

    def has_change_permission(self, request, obj=None) -> bool:
        # Read-only; the model's change permission still gates "Reprocess".
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)

    def get_actions(self, request, action_location=None):
        # ``action_location``: Django 6.1 (see LinkedAccountAdmin.get_actions).
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # the log keeps itself (PUSH_LOG_DAYS)
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @non_atomic_requests  # "Reprocess" may sync from Cronofy: no request transaction
    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("account"), ordering="account")
    def account_column(self, obj: PushNotification) -> str:
        return account_link(obj.account, self.admin_site.name)

    @admin.display(description=_("body"))
    def body_kept(self, obj: PushNotification) -> str:
        if not obj.body:
            return "-"
        note = ""
        if obj.body_truncated:
            note = gettext(
                "Only the first %(limit)d bytes are kept: the signature did not hold."
            ) % {"limit": PushNotification.UNSIGNED_BODY_LIMIT}
        return format_html('<pre class="cronofy-push-body">{}</pre>{}', obj.body, note)

    #: Notifications one "Reprocess" acts on at most (each may be a sync).
    reprocess_max = 100

    @admin.action(description=_("Reprocess"), permissions=["change"])
    def reprocess_selected(self, request, queryset):
        """Act again on the selected notifications whose signature held (``reprocess``),
        oldest first, ``reprocess_max`` at a time."""
        done: list[PushNotification] = []
        refused = queryset.filter(signature_valid=False).count()
        signed = queryset.filter(signature_valid=True).order_by("received_at", "pk")
        left = max(0, signed.count() - self.reprocess_max)
        for notification in signed[: self.reprocess_max]:
            done.append(reprocess(notification))
        if left:
            self.message_user(
                request,
                gettext(
                    "%(left)d more selected notifications were not reprocessed (at most "
                    "%(max)d at a time): choose Reprocess again for them."
                )
                % {"left": left, "max": self.reprocess_max},
                messages.WARNING,
            )
        if done:
            outcomes = ", ".join(sorted({str(n.get_outcome_display()).lower() for n in done}))
            self.message_user(
                request,
                ngettext(
                    "Reprocessed %(count)d notification: %(outcomes)s.",
                    "Reprocessed %(count)d notifications: %(outcomes)s.",
                    len(done),
                )
                % {"count": len(done), "outcomes": outcomes},
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                ngettext(
                    "Not reprocessed: %(count)d notification whose signature did not hold "
                    "(it may not come from Cronofy).",
                    "Not reprocessed: %(count)d notifications whose signature did not hold "
                    "(they may not come from Cronofy).",
                    refused,
                )
                % {"count": refused},
                messages.WARNING,
            )

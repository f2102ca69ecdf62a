"""The account list's filters for triage: what needs attention, why syncs fail or are due,
and data centers and account types in words (the fleet page links into each)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Exists, OuterRef, Q
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from ..health import (
    DUE_REASON_LABELS,
    FAILURE_REASONS,
    OTHER_FAILURE,
    due_reasons,
    failing,
    failure_reason_expression,
)
from ..models import CalendarProfile, ConferencingProfile, LinkedAccount
from .common import account_type_label, data_center_label

Status = LinkedAccount.Status


def _has_disconnected(model: type) -> Exists:
    return Exists(model.objects.disconnected().filter(account=OuterRef("pk")))


def needs_attention() -> Q:
    """Accounts an operator should look at: reauthorization required, a failing sync, or a
    conferencing or calendar profile that lost its connection."""
    return (
        Q(status=Status.REAUTHORIZATION_REQUIRED)
        | failing()
        | Q(_has_disconnected(ConferencingProfile))
        | Q(_has_disconnected(CalendarProfile))
    )


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = _("needs attention")
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("any", _("Needs attention")),
            ("reauthorization", _("Reauthorization required")),
            ("failing", _("Last sync failed")),
            ("disconnected", _("A profile is disconnected")),
            ("due", _("Due for a sync")),
            ("no_push_channel", _("No push channel")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "any":
            return queryset.filter(needs_attention())
        if value == "reauthorization":
            return queryset.filter(status=Status.REAUTHORIZATION_REQUIRED)
        if value == "failing":
            return queryset.filter(failing())
        if value == "disconnected":
            return queryset.filter(
                Q(_has_disconnected(ConferencingProfile)) | Q(_has_disconnected(CalendarProfile))
            )
        if value == "due":
            return queryset.due()
        if value == "no_push_channel":
            return queryset.active().filter(channel_id="")
        return queryset


class DueReasonFilter(admin.SimpleListFilter):
    title = _("why due")
    parameter_name = "due_reason"

    def lookups(self, request, model_admin):
        return [(code, capfirst(label)) for code, label in DUE_REASON_LABELS.items()]

    def queryset(self, request, queryset):
        condition = due_reasons().get(self.value() or "")
        if condition is None:
            return queryset
        return queryset.active().filter(condition)


class FailureReasonFilter(admin.SimpleListFilter):
    title = _("why the sync failed")
    parameter_name = "failure"

    def lookups(self, request, model_admin):
        return [(r.code, r.label) for r in (*FAILURE_REASONS, OTHER_FAILURE)]

    def queryset(self, request, queryset):
        codes = {r.code for r in (*FAILURE_REASONS, OTHER_FAILURE)}
        if self.value() not in codes:
            return queryset
        return (
            queryset.filter(consecutive_failures__gt=0)
            .alias(failure_reason=failure_reason_expression())
            .filter(failure_reason=self.value())
        )


class _ValuesFilter(admin.SimpleListFilter):
    """A filter over the values present in one column, shown in words (one DISTINCT query)."""

    field_name = ""

    def label(self, value: str) -> str:
        return value

    def lookups(self, request, model_admin):
        values = (
            model_admin.model.objects.order_by(self.field_name)
            .values_list(self.field_name, flat=True)
            .distinct()
        )
        return [(value, self.label(value)) for value in values]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.field_name: self.value()})


class DataCenterFilter(_ValuesFilter):
    title = _("data center")
    parameter_name = "data_center__exact"
    field_name = "data_center"

    def label(self, value: str) -> str:
        return data_center_label(value)


class AccountTypeFilter(_ValuesFilter):
    title = _("account type")
    parameter_name = "account_type__exact"
    field_name = "account_type"

    def label(self, value: str) -> str:
        return account_type_label(value)

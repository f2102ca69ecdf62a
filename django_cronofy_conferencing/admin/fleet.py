"""The admin's fleet page: ``cronofy_status``'s figures, each a link into the filtered
list behind it; and the reconnect link an operator sends to the user of an account
that must be connected again."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext

from ..health import DUE_REASON_LABELS, FleetHealth, failure_reason_by_code
from ..models import LinkedAccount
from ..providers import provider_label

ACCOUNTS = "cronofy_conferencing_linkedaccount_changelist"
CONFERENCING_PROFILES = "cronofy_conferencing_conferencingprofile_changelist"
CALENDAR_PROFILES = "cronofy_conferencing_calendarprofile_changelist"
PUSH_NOTIFICATIONS = "cronofy_conferencing_pushnotification_changelist"


def reconnect_url(request: Any, account: LinkedAccount) -> str | None:
    """The absolute URL of the connect page for the account's data center: what its user
    opens (signed in to this site) to connect Cronofy again. None when the app's browser
    URLs (``cronofy_conferencing``) are not mounted."""
    try:
        path = reverse("cronofy_conferencing:connect")
    except NoReverseMatch:
        return None
    return request.build_absolute_uri(f"{path}?{urlencode({'data_center': account.data_center})}")


def _link(site_name: str, name: str, **params: str) -> str:
    url = reverse(f"{site_name}:{name}")
    return f"{url}?{urlencode(params)}" if params else url


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def fleet_context(site_name: str, health: FleetHealth) -> dict[str, Any]:
    """The fleet page's rows: ``(label, count, share, url)`` per figure."""
    accounts = [
        (
            status.label,
            health.accounts[status.value],
            _share(health.accounts[status.value], health.total),
            _link(site_name, ACCOUNTS, status__exact=status.value),
        )
        for status in LinkedAccount.Status
    ]
    due = [
        (
            DUE_REASON_LABELS[code],
            count,
            _share(count, health.active),
            _link(site_name, ACCOUNTS, due_reason=code),
        )
        for code, count in health.due.items()
    ]
    failing = []
    for code, count in health.failing.items():
        reason = failure_reason_by_code(code)
        failing.append(
            (
                reason.label if reason else code,
                count,
                _share(count, health.active),
                _link(site_name, ACCOUNTS, failure=code),
            )
        )

    def profiles(changelist: str, found: dict[str, int], present: int) -> list[tuple]:
        return [
            (
                provider_label(provider),
                count,
                _share(count, present),
                _link(
                    site_name,
                    changelist,
                    provider_name=provider,
                    profile_connected__exact="0",
                    presence="present",
                    account__status__exact=LinkedAccount.Status.ACTIVE,
                ),
            )
            for provider, count in sorted(found.items(), key=lambda item: (-item[1], item[0]))
        ]

    return {
        "health": health,
        "account_rows": accounts,
        "due_rows": due,
        "due_url": _link(site_name, ACCOUNTS, attention="due"),
        "failing_rows": failing,
        "failing_url": _link(site_name, ACCOUNTS, attention="failing"),
        "failing_share": _share(health.failing_total, health.active),
        "attention_url": _link(site_name, ACCOUNTS, attention="any"),
        "profile_rows": profiles(
            CONFERENCING_PROFILES, health.profiles_disconnected, health.profiles_present
        ),
        "profiles_disconnected_total": sum(health.profiles_disconnected.values()),
        "calendar_rows": profiles(
            CALENDAR_PROFILES,
            health.calendar_profiles_disconnected,
            health.calendar_profiles_present,
        ),
        "calendar_disconnected_total": sum(health.calendar_profiles_disconnected.values()),
        "without_push_channel_url": _link(site_name, ACCOUNTS, attention="no_push_channel"),
        "push_notifications_url": _link(site_name, PUSH_NOTIFICATIONS, signature_valid__exact="1"),
        "rate_limit_rows": [
            (dc_id, rate) for dc_id, rates in health.rate_limits.items() for rate in rates
        ],
        "never": gettext("never"),
    }

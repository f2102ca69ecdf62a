"""The admin built for triage (issue 23): what needs attention, why, in words, and what to do
(a reconnect link rather than a useless Sync now); the fleet page; data centers and account
types in words; long emails cut with the whole on hover; the inline tables' headers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_cronofy_conferencing.admin import STATUS_COLORS
from django_cronofy_conferencing.models import (
    CalendarProfile,
    ConferencingProfile,
    LinkedAccount,
    PushNotification,
)

pytestmark = pytest.mark.django_db

ACCOUNTS = reverse("admin:cronofy_conferencing_linkedaccount_changelist")
FLEET = reverse("admin:cronofy_conferencing_linkedaccount_fleet")
Status = LinkedAccount.Status
UNAVAILABLE = "Cronofy failed with HTTP 503 on GET /v1/userinfo (us)."
DEAD_GRANT = "Cronofy refused the grant on POST /oauth/token (uk): invalid_grant."
LONG_EMAIL = "firstname.lastname.staff039@regional-office.example-healthcare-group.com"


def change_url(pk: int) -> str:
    return reverse("admin:cronofy_conferencing_linkedaccount_change", args=[pk])


@pytest.fixture
def triage(scanner, scan_ciphertexts):
    """One account in each state an operator triages."""
    made = {}
    for n, (name, fields) in enumerate(
        {
            "healthy": {},
            "reauth": {
                "status": Status.REAUTHORIZATION_REQUIRED,
                "last_sync_error": DEAD_GRANT,
                "data_center": "uk",
                "account_type": "service_account",
            },
            "failing": {"consecutive_failures": 2, "last_sync_error": UNAVAILABLE},
            "zoom_down": {},
            "calendar_down": {"channel_id": ""},
            "revoked": {"status": Status.REVOKED},
            "stale": {"last_synced_at": timezone.now() - timedelta(days=1)},
            "removed_only": {},
        }.items()
    ):
        access, refresh = f"triage-access-{n}-secret", f"triage-refresh-{n}-secret"
        scanner.add(access, refresh)
        made[name] = LinkedAccount.objects.create(
            **{
                "data_center": "us",
                "sub": f"acc_triage{n}",
                "email": f"{name}@example.com",
                "account_type": "account",
                "access_token": access,
                "refresh_token": refresh,
                "last_synced_at": timezone.now(),
                "channel_id": f"chn_triage{n}",
                **fields,
            }
        )
    ConferencingProfile.objects.create(
        account=made["zoom_down"],
        profile_id="pro_z",
        provider_name="zoom",
        profile_connected=False,
        profile_relink_url="https://app.cronofy.com/v2/relink/zoom",
    )
    ConferencingProfile.objects.create(
        account=made["removed_only"],
        profile_id="pro_gone",
        provider_name="zoom",
        profile_connected=False,
        removed_at=timezone.now(),
    )
    CalendarProfile.objects.create(
        account=made["calendar_down"],
        profile_id="pro_g",
        provider_name="google",
        profile_connected=False,
    )
    scan_ciphertexts()
    return made


def listed(staff_client, **params) -> set[str]:
    response = staff_client.get(ACCOUNTS, params)
    assert response.status_code == 200
    return {a.email.split("@")[0] for a in response.context["cl"].result_list}


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"attention": "any"}, {"reauth", "failing", "zoom_down", "calendar_down"}),
        ({"attention": "reauthorization"}, {"reauth"}),
        ({"attention": "failing"}, {"failing"}),
        ({"attention": "disconnected"}, {"zoom_down", "calendar_down"}),
        ({"attention": "due"}, {"stale"}),
        ({"attention": "no_push_channel"}, {"calendar_down"}),
        ({"failure": "unavailable"}, {"failing"}),
        ({"failure": "reauthorization"}, set()),  # no failure counted on it
        ({"due_reason": "stale"}, {"stale"}),
        ({"due_reason": "never_synced"}, set()),
        ({"data_center__exact": "uk"}, {"reauth"}),
        ({"account_type__exact": "service_account"}, {"reauth"}),
    ],
)
def test_triage_filters(staff_client, triage, params, expected):
    assert listed(staff_client, **params) == expected


def test_filters_speak_words(staff_client, triage):
    response = staff_client.get(ACCOUNTS)
    specs = {getattr(f, "parameter_name", None): f for f in response.context["cl"].filter_specs}
    assert dict(specs["data_center__exact"].lookup_choices) == {
        "uk": "United Kingdom",
        "us": "United States",
    }
    assert dict(specs["account_type__exact"].lookup_choices) == {
        "account": "Individual account",
        "service_account": "Service account",
    }
    assert ("any", "Needs attention") in specs["attention"].lookup_choices
    html = response.content.decode()
    assert "United Kingdom" in html and "Service account" in html
    assert ">uk<" not in html and ">service_account<" not in html


def test_long_emails_are_cut_with_the_whole_on_hover(staff_client, triage):
    LinkedAccount.objects.filter(pk=triage["healthy"].pk).update(email=LONG_EMAIL)
    html = staff_client.get(ACCOUNTS).content.decode()
    assert f'<span class="cronofy-truncate" title="{LONG_EMAIL}">{LONG_EMAIL}</span>' in html
    assert "django_cronofy_conferencing/admin.css" in html
    header = re.findall(r'<th scope="col" class="[^"]*?(column-[a-z_]+)', html)
    assert header[:3] == ["column-account", "column-status_badge", "column-user_name"]


def test_the_reauthorization_badge_is_readable():
    """White on the badge: at least 4.5:1 (axe's color-contrast; it was 4.23:1)."""

    def luminance(hex_color: str) -> float:
        channels = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    for color in STATUS_COLORS.values():
        assert (1.05) / (luminance(color) + 0.05) >= 4.5, color


def test_the_change_page_puts_the_error_in_words(staff_client, triage):
    html = staff_client.get(change_url(triage["failing"].pk)).content.decode()
    assert "<strong>Cronofy could not be reached.</strong> Usually temporary" in html
    assert (
        "<details><summary>Technical detail</summary><code>Cronofy failed with HTTP 503 on GET "
        "/v1/userinfo (us).</code></details>"
    ) in html
    assert "United States" in html and "Individual account" in html


def test_an_account_to_reconnect_offers_the_link_not_sync_now(staff_client, triage):
    reauth = triage["reauth"]
    html = staff_client.get(change_url(reauth.pk)).content.decode()
    assert "Sync now</button>" not in html
    assert "This account must be connected again (Reauthorization required)." in html
    link = "http://testserver/cronofy/connect/?data_center=uk"
    assert f'<a href="{link}" class="cronofy-reconnect-link">{link}</a>' in html
    assert "<strong>Cronofy access was withdrawn.</strong>" in html
    healthy = staff_client.get(change_url(triage["healthy"].pk)).content.decode()
    assert "Sync now</button>" in healthy and "cronofy-reconnect" not in healthy


def test_sync_now_on_an_account_to_reconnect_changes_nothing(staff_client, triage, sim):
    reauth = triage["reauth"]
    url = reverse("admin:cronofy_conferencing_linkedaccount_sync", args=[reauth.pk])
    response = staff_client.post(url, follow=True)
    [message] = response.context["messages"]
    assert message.level_tag == "warning"
    assert str(message).startswith("Not synced: reauth@example.com (United Kingdom) must be")
    assert sim.requests == []
    reauth.refresh_from_db()
    assert (reauth.last_sync_error, reauth.consecutive_failures) == (DEAD_GRANT, 0)


def test_messages_never_start_with_an_email(staff_client, triage, sim):
    """The admin capitalises a message's first letter: "alice@" would read "Alice@"."""
    sim.add_account(sub=triage["healthy"].sub)
    response = staff_client.post(
        ACCOUNTS,
        {"action": "sync_now", "_selected_action": [triage["reauth"].pk], "index": 0},
        follow=True,
    )
    html = response.content.decode()
    for text in re.findall(r'<li class="[^"]*">(.*?)</li>', html, re.S):
        assert not re.match(r"\s*[A-Z][a-z]*@", text), text


def test_inline_tables_have_no_empty_header(staff_client, triage):
    html = staff_client.get(change_url(triage["zoom_down"].pk)).content.decode()
    headers = re.findall(r"<th\b[^>]*>(.*?)</th>", html, re.S)
    assert headers, "no table header found"
    empty = [h for h in headers if not re.sub(r"<[^>]+>", "", h).strip()]
    assert empty == []
    assert '<span class="cronofy-visually-hidden">Conferencing profile</span>' in html


# -- the fleet page ---------------------------------------------------------------------


def test_the_fleet_page_shows_every_figure_with_links(staff_client, triage):
    PushNotification.objects.create(
        notification_type="change", signature_valid=True, outcome="resynced"
    )
    response = staff_client.get(FLEET)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Cronofy fleet health" in html
    assert "8 linked accounts" in html
    links = set(re.findall(r'<a href="([^"]+)"', html))
    for expected in (
        f"{ACCOUNTS}?status__exact=reauthorization_required",
        f"{ACCOUNTS}?attention=any",
        f"{ACCOUNTS}?attention=due",
        f"{ACCOUNTS}?due_reason=stale",
        f"{ACCOUNTS}?attention=failing",
        f"{ACCOUNTS}?failure=unavailable",
        f"{ACCOUNTS}?attention=no_push_channel",
        reverse("admin:cronofy_conferencing_conferencingprofile_changelist")
        + "?provider_name=zoom&amp;profile_connected__exact=0&amp;presence=present"
        "&amp;account__status__exact=active",
        reverse("admin:cronofy_conferencing_calendarprofile_changelist")
        + "?provider_name=google&amp;profile_connected__exact=0&amp;presence=present"
        "&amp;account__status__exact=active",
        reverse("admin:cronofy_conferencing_pushnotification_changelist")
        + "?signature_valid__exact=1",
    ):
        assert expected in links, expected
    assert "Cronofy could not be reached" in html and "Zoom" in html and "Google" in html
    assert "1 active account whose last sync failed" in html


def test_every_fleet_link_opens_its_filtered_list(staff_client, triage):
    html = staff_client.get(FLEET).content.decode()
    for link in re.findall(r'<a href="(/admin/cronofy_conferencing/[^"]+\?[^"]+)"', html):
        response = staff_client.get(link.replace("&amp;", "&"))
        assert response.status_code == 200, link
        assert "?e=1" not in response.get("Location", "")
    zoom = reverse("admin:cronofy_conferencing_conferencingprofile_changelist")
    response = staff_client.get(
        zoom,
        {
            "provider_name": "zoom",
            "profile_connected__exact": "0",
            "presence": "present",
            "account__status__exact": "active",
        },
    )
    assert [p.profile_id for p in response.context["cl"].result_list] == ["pro_z"]


def test_the_fleet_page_is_linked_from_the_account_list(staff_client, triage):
    html = staff_client.get(ACCOUNTS).content.decode()
    assert f'<a href="{FLEET}">Fleet health</a>' in html


def test_the_fleet_page_needs_the_view_permission(triage, scanning_client, django_user_model):
    staff = django_user_model.objects.create_user("clerk", password=None, is_staff=True)
    client = scanning_client(staff)
    assert client.get(FLEET).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_linkedaccount"))
    assert client.get(FLEET).status_code == 200


def test_the_fleet_page_queries_are_constant(staff_client, triage):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(FLEET).status_code == 200
        return len(ctx.captured_queries)

    small = count()
    LinkedAccount.objects.bulk_create(
        [
            LinkedAccount(data_center="us", sub=f"acc_more{i}", access_token="a", refresh_token="b")
            for i in range(300)
        ]
    )
    assert count() == small == 8  # session, user, and the six of fleet_health

"""The admin shows what a sync left as stored (issue 20 §1): ``sync_warnings`` on the
account's change page, a warning after "Sync now", and calendar profiles whose
connection state is unknown (the older UserInfo shape) as unknown."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from django_cronofy_conferencing.models import CalendarProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account

pytestmark = pytest.mark.django_db

ACCOUNTS = "admin:cronofy_conferencing_linkedaccount_changelist"


def account_change(pk: int) -> str:
    return reverse("admin:cronofy_conferencing_linkedaccount_change", args=[pk])


@pytest.fixture
def broken_calendar(link_account, sim, user):
    """An account whose calendar section Cronofy answers with a duplicated (HTML-looking) id."""
    account, sim_account = link_account(
        user=user,
        email="carol@cronofy.example",
        conferencing_profiles=[sim.profile("zoom", profile_id="pro_zoom")],
        calendar_profiles=[
            sim.calendar_profile("google", profile_id="<b>x</b>", calendars=[]),
            sim.calendar_profile("apple", profile_id="<b>x</b>", calendars=[]),
        ],
    )
    sync_account(account)
    account.refresh_from_db()
    return account, sim_account


def test_the_change_page_lists_each_warning_with_its_path(staff_client, broken_calendar):
    account, _ = broken_calendar
    assert account.sync_warnings == [
        {
            "section": "profiles",
            "path": "cronofy.data.profiles[1].profile_id",
            "problem": "duplicates an earlier profile ('<b>x</b>')",
        }
    ]
    html = staff_client.get(account_change(account.pk)).content.decode()
    assert "Sync warnings" in html
    assert "calendar profiles left as stored: <code>cronofy.data.profiles[1].profile_id</code>" in (
        html
    )
    assert "duplicates an earlier profile (&#x27;&lt;b&gt;x&lt;/b&gt;&#x27;)" in html
    assert "<b>x</b>" not in html  # Cronofy's values are escaped


def test_no_warning_reads_as_a_dash(staff_client, synced):
    account, _ = synced
    model_admin = admin.site._registry[LinkedAccount]
    assert model_admin.sync_warnings_list(account) == "-"
    assert staff_client.get(account_change(account.pk)).status_code == 200


def test_sync_now_says_what_was_left_as_stored(staff_client, broken_calendar):
    account, _ = broken_calendar
    response = staff_client.post(
        reverse(ACCOUNTS),
        {"action": "sync_now", "_selected_action": [str(account.pk)], "index": 0},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert messages[0].startswith("Synced carol@cronofy.example (United States): 0 created")
    assert messages[1] == (
        "Left as stored for carol@cronofy.example (United States): 1 part of Cronofy's "
        "answer (see its sync warnings)."
    )


def test_an_unknown_connection_state_is_neither_connected_nor_broken(
    staff_client, link_account, sim, user
):
    older = {"provider_name": "google", "profile_id": "pro_old", "profile_name": "g@example.com"}
    account, _ = link_account(user=user, calendar_profiles=[older])
    sync_account(account)
    assert CalendarProfile.objects.get().profile_connected is None
    model_admin = admin.site._registry[LinkedAccount]
    # The count without the changelist's annotation (a queryset from elsewhere).
    assert model_admin.calendar_profiles(LinkedAccount.objects.get()) == "0 / 1 connected"
    listing = staff_client.get(reverse(ACCOUNTS)).content.decode()
    assert "0 / 1 connected" in listing
    profiles = staff_client.get(
        reverse("admin:cronofy_conferencing_calendarprofile_changelist")
    ).content.decode()
    assert 'alt="None"' in profiles  # Django's "unknown" icon

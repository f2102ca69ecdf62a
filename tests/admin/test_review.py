"""The admin after the browser review (issue 11, item 5) and with calendar profiles (issue 12):
one column per fact, linked accounts, "Sync now" and "Unlink (revoke at Cronofy)" on the
change page, provider names in inline titles, calendar profiles read-only with filters."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from django_cronofy_conferencing.models import CalendarProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account

pytestmark = pytest.mark.django_db

ACCOUNTS = "admin:cronofy_conferencing_linkedaccount_changelist"
CALENDAR_PROFILES = "admin:cronofy_conferencing_calendarprofile_changelist"
CONFERENCING_PROFILES = "admin:cronofy_conferencing_conferencingprofile_changelist"


def change_url(pk: int) -> str:
    return reverse("admin:cronofy_conferencing_linkedaccount_change", args=[pk])


def sync_url(pk: int) -> str:
    return reverse("admin:cronofy_conferencing_linkedaccount_sync", args=[pk])


@pytest.fixture
def with_calendars(accounts, sim):
    alice, bob = accounts
    sim_alice = sim.accounts[alice.sub]
    sim_alice.calendar_profiles = [
        sim.calendar_profile(
            "google",
            profile_id="pro_google",
            profile_name="alice@gmail.example",
            calendars=[
                sim.calendar("Work", primary=True, integrated=True),
                sim.calendar("Holidays", readonly=True, integrated=False),
            ],
        ),
        sim.calendar_profile("apple", profile_id="pro_apple", connected=False),
    ]
    sync_account(alice)
    return alice, bob


def headers(html: str) -> list[str]:
    return [h.lower() for h in re.findall(r'<div class="text"><(?:a|span)[^>]*>([^<]+)<', html)]


def test_account_changelist_has_one_column_per_fact(staff_client, with_calendars):
    alice, _bob = with_calendars
    html = staff_client.get(reverse(ACCOUNTS)).content.decode()
    assert headers(html) == [
        "email",
        "status",  # second: seen without scrolling, however long the emails
        "user",
        "data center",
        "conferencing profiles",
        "calendar profiles",
        "last synced at",
        "consecutive failures",
    ]
    # The first column links to the account and is not repeated (no "email (dc)" beside it).
    rows = re.findall(r"<tr>(?:(?!</tr>).)*</tr>", html, re.S)
    [row] = [r for r in rows if "alice@cronofy.example" in r]
    assert row.count(">alice@cronofy.example<") == 1  # shown once (the checkbox label aside)
    assert f'href="{change_url(alice.pk)}"' in row
    assert "1 / 2 connected" in row  # calendar profiles: google connected, apple not


@pytest.mark.parametrize("changelist", [CONFERENCING_PROFILES, CALENDAR_PROFILES])
def test_profile_changelists_link_the_account(staff_client, with_calendars, changelist):
    alice, _bob = with_calendars
    html = staff_client.get(reverse(changelist)).content.decode()
    assert f'<a href="{change_url(alice.pk)}">alice@cronofy.example</a>' in html


def test_change_page_offers_sync_now_and_unlink(staff_client, with_calendars):
    alice, _bob = with_calendars
    html = staff_client.get(change_url(alice.pk)).content.decode()
    assert f'action="{sync_url(alice.pk)}"' in html
    assert ">Sync now</button>" in html
    assert "Unlink (revoke at Cronofy)" in html
    assert ">Delete<" not in html


def test_sync_now_on_the_change_page_syncs_and_comes_back(staff_client, with_calendars, sim):
    alice, _bob = with_calendars
    sim.set_calendar_profile_connected(alice.sub, "pro_apple", True)
    before = sim.count("userinfo")
    response = staff_client.post(sync_url(alice.pk), follow=True)
    assert response.redirect_chain[-1][0] == change_url(alice.pk)
    assert sim.count("userinfo") == before + 1
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("Synced alice@cronofy.example (United States): ")
    assert "calendar profiles: 0 created, 1 updated" in message
    assert CalendarProfile.objects.get(profile_id="pro_apple").profile_connected


def test_sync_now_failure_is_reported_on_the_change_page(staff_client, with_calendars, sim):
    alice, _bob = with_calendars
    sim.fail("userinfo", status=503, times=None)
    response = staff_client.post(sync_url(alice.pk), follow=True)
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("Sync of alice@cronofy.example (United States) failed: ")


def test_sync_now_needs_post_and_the_change_permission(
    with_calendars, scanning_client, django_user_model, sim
):
    from django.contrib.auth.models import Permission

    alice, _bob = with_calendars
    viewer = django_user_model.objects.create_user("viewer", password=None, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_linkedaccount"))
    staff_client = scanning_client(viewer)
    html = staff_client.get(change_url(alice.pk)).content.decode()
    assert "Sync now" not in html
    before = sim.count("userinfo")
    assert staff_client.post(sync_url(alice.pk)).status_code == 403
    assert sim.count("userinfo") == before


def test_sync_now_answers_405_to_get(staff_client, with_calendars):
    assert staff_client.get(sync_url(with_calendars[0].pk)).status_code == 405


def test_unlink_confirmation_says_unlink(staff_client, with_calendars):
    alice, _bob = with_calendars
    url = reverse("admin:cronofy_conferencing_linkedaccount_delete", args=[alice.pk])
    html = staff_client.get(url).content.decode()
    assert "Access is revoked at Cronofy" in html and 'value="Yes, unlink"' in html
    assert "permission" not in html  # not Django's delete page (profiles are not deletable)


def test_account_page_shows_both_kinds_with_provider_names(staff_client, with_calendars):
    alice, _bob = with_calendars
    html = staff_client.get(change_url(alice.pk)).content.decode()
    assert "Conferencing profiles" in html and "Calendar profiles" in html
    # Inline row titles: the provider's name for people, not its code.
    assert "Zoom: alice@zoom.example" in html
    assert "Microsoft Teams: alice@teams.example" in html
    assert "Google: alice@gmail.example" in html
    assert "Work <small>primary, integrated conferencing</small>" in html
    assert "Holidays <small>read-only</small>" in html


def test_calendar_profiles_are_read_only_with_filters(staff_client, with_calendars):
    google = CalendarProfile.objects.get(profile_id="pro_google")
    response = staff_client.get(reverse(CALENDAR_PROFILES), {"profile_connected__exact": "0"})
    assert [p.profile_id for p in response.context["cl"].result_list] == ["pro_apple"]
    response = staff_client.get(reverse(CALENDAR_PROFILES), {"provider_name": "google"})
    assert [p.profile_id for p in response.context["cl"].result_list] == ["pro_google"]
    spec = next(
        f for f in response.context["cl"].filter_specs if f.parameter_name == "provider_name"
    )
    assert [value for value, _label in spec.lookup_choices] == ["apple", "google"]
    html = staff_client.get(reverse(CALENDAR_PROFILES)).content.decode()
    assert re.search(r'rel="noopener noreferrer">Relink</a>', html)  # apple's relink link
    change = reverse("admin:cronofy_conferencing_calendarprofile_change", args=[google.pk])
    assert 'name="_save"' not in staff_client.get(change).content.decode()
    assert staff_client.post(change, {"profile_name": "x"}).status_code == 403
    add = reverse("admin:cronofy_conferencing_calendarprofile_add")
    assert staff_client.get(add).status_code == 403
    delete = reverse("admin:cronofy_conferencing_calendarprofile_delete", args=[google.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert LinkedAccount.objects.count() == 2 and CalendarProfile.objects.count() == 2

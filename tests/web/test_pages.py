"""The packaged "My conferencing" page (``cronofy_conferencing:profiles``) and its actions."""

from __future__ import annotations

import html
import re

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account

pytestmark = pytest.mark.django_db

PROFILES = reverse("cronofy_conferencing:profiles")


def cronofy_settings(**overrides):
    return override_settings(CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, **overrides})


def page_text(response) -> str:
    """The page as a person reads it: tags dropped, whitespace collapsed."""
    text = re.sub(r"<[^>]+>", " ", response.content.decode())
    return html.unescape(re.sub(r"\s+", " ", text))


def sync_url(account) -> str:
    return reverse("cronofy_conferencing:sync_now", args=[account.pk])


def unlink_url(account) -> str:
    return reverse("cronofy_conferencing:unlink", args=[account.pk])


def test_the_page_needs_a_login(client):
    response = client.get(PROFILES)
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)


def test_no_account_yet_offers_to_connect(browser):
    with cronofy_settings(APPLICATIONS={}):
        response = browser.get(PROFILES)
    assert response.status_code == 200
    text = page_text(response)
    assert "You have not linked a calendar account yet." in text
    # The empty state says what connecting gives.
    assert "tells you when one stops working" in text
    assert "Connect a calendar account" in text
    # Only the data center this site has an application in: no picker to get wrong.
    assert 'name="data_center" value="us"' in response.content.decode()
    assert "<select" not in response.content.decode()


def test_the_picker_offers_the_data_centers_with_an_application(browser):
    de = {"CLIENT_ID": "x", "CLIENT_SECRET": "y"}
    with cronofy_settings(DEFAULT_DATA_CENTER="uk", APPLICATIONS={"de": de}):
        source = browser.get(PROFILES).content.decode()
    options = re.findall(r'<option value="(\w+)"( selected)?>', source)
    assert options == [("uk", " selected"), ("de", "")]
    # The suite's settings: an application in every data center, the default first.
    source = browser.get(PROFILES).content.decode()
    options = re.findall(r'<option value="(\w+)"( selected)?>', source)
    assert options[0] == ("us", " selected")
    assert {dc for dc, _ in options} == {"us", "uk", "de", "au", "ca", "sg"}


def test_healthy_account(browser, linked, sim):
    account, _ = linked(sim.profile("zoom", profile_name="jane@zoom.example"))
    response = browser.get(PROFILES)
    text = page_text(response)
    assert account.email in text
    assert "All conferencing profiles connected" in text
    assert "Zoom jane@zoom.example Connected" in text
    assert "Sync now" in text
    assert "Relink" not in text
    # Zoom is there already: "another", not a plain "Add Zoom".
    assert "Add another Zoom" in text
    assert "Add Microsoft Teams" in text and "Add GoTo" in text


def test_profiles_that_need_relinking_come_first_and_say_so(browser, linked, sim):
    linked(
        sim.profile("zoom"),
        sim.profile("go_to", connected=False, profile_name="jane@goto.example"),
        sim.profile("ms_teams", connected=False, profile_name="jane@teams.example"),
    )
    response = browser.get(PROFILES)
    source = response.content.decode()
    text = page_text(response)
    assert "2 conferencing profiles need relinking" in text
    assert "All conferencing profiles connected" not in text
    providers = re.findall(r'data-provider="(\w+)"', source)
    assert providers == ["go_to", "ms_teams", "zoom"]
    assert "Relink GoTo (opens in a new tab)" in text
    assert "come back and choose Sync now" in text
    assert source.count('target="_blank" rel="noopener noreferrer"') == 2
    # No "Add GoTo" / "Add Microsoft Teams": relinking is the fix, not a duplicate.
    assert "Add GoTo" not in text and "Add Microsoft Teams" not in text
    assert "Microsoft Teams, GoTo: relink the profile above instead of adding it again." in text


def test_one_profile_needs_relinking_is_singular(browser, linked, sim):
    linked(sim.profile("zoom", connected=False))
    assert "1 conferencing profile needs relinking" in page_text(browser.get(PROFILES))


def test_reauthorization_required_reads_for_people(browser, linked, sim):
    account, _ = linked(sim.profile("zoom"), sim.profile("go_to", connected=False))
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    response = browser.get(PROFILES)
    text = page_text(response)
    assert "Reconnect your calendar account" in text
    assert "Reconnect your calendar" in text
    assert text.count("Status unknown") == 2
    assert "Connected" not in text and "Needs relinking" not in text
    assert "Sync now" not in text
    assert "Relink" not in text
    assert "reauthorization_required" not in response.content.decode()
    assert f"account {account.pk}" not in text


def test_unknown_providers_are_title_cased_without_raw_codes(browser, linked, sim):
    linked(sim.profile("webex_next", profile_name="jane@webex.example"))
    response = browser.get(PROFILES)
    text = page_text(response)
    assert "Webex Next jane@webex.example" in text
    assert "webex_next" not in text  # only in a data- attribute, never shown


def test_a_failing_sync_is_shown(browser, linked, sim):
    account, _ = linked(sim.profile("zoom"))
    sim.fail("userinfo", status=503, times=None)
    with cronofy_settings(MAX_RETRIES=0):
        response = browser.post(sync_url(account))
    assert response.status_code == 302
    text = page_text(browser.get(PROFILES))
    assert "The calendar service could not be reached just now" in text
    assert "The last sync failed. What you see was last confirmed" in text
    assert "All conferencing profiles connected" not in text  # not a green all-clear


def test_the_query_count_does_not_grow_with_accounts(browser, linked, sim):
    linked(sim.profile("zoom"))

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert browser.get(PROFILES).status_code == 200
        return len(queries)

    few = count()
    for _ in range(3):
        linked(sim.profile("zoom"), sim.profile("go_to", connected=False), sim.profile("x"))
    assert count() == few


def test_only_the_users_own_accounts(browser, link_account, other_user, sim):
    account, _ = link_account(user=other_user, email="bob@example.com")
    assert "bob@example.com" not in page_text(browser.get(PROFILES))
    assert browser.post(sync_url(account)).status_code == 404
    assert browser.get(unlink_url(account)).status_code == 404
    assert browser.post(unlink_url(account)).status_code == 404
    assert LinkedAccount.objects.filter(pk=account.pk).exists()


def test_another_users_synced_account_and_its_profiles_never_show(
    browser, linked, link_account, other_user, sim
):
    """Synced, so there is something to leak: the other user's email and profile names
    (the test above leaves Bob's account unsynced, so it could not fail)."""
    linked(sim.profile("zoom", profile_name="alice@zoom.example"))
    bobs, _ = link_account(
        user=other_user,
        email="bob@example.com",
        conferencing_profiles=[sim.profile("go_to", profile_name="bob@goto.example")],
    )
    sync_account(bobs)
    bobs.refresh_from_db()
    assert bobs.email == "bob@example.com"
    text = page_text(browser.get(PROFILES))
    assert "alice@zoom.example" in text
    assert "bob@example.com" not in text and "bob@goto.example" not in text


def test_calendar_profile_problems_show_with_their_relink(browser, linked, sim):
    linked(
        sim.profile("zoom"),
        calendar_profiles=[
            sim.calendar_profile("google", profile_name="work@x.test"),
            sim.calendar_profile("apple", profile_name="home@x.test", connected=False),
        ],
    )
    response = browser.get(PROFILES)
    text = page_text(response)
    # Counted apart from conferencing: a broken calendar breaks scheduling like a broken
    # Zoom, but it is not a conferencing profile.
    assert "1 calendar needs relinking" in text
    assert "All conferencing profiles connected" in text
    assert "conferencing profile needs relinking" not in text
    problems = text.split("Calendars that need relinking")[1]
    assert "home@x.test Needs relinking" in problems
    assert "work@x.test" not in problems
    assert (
        'href="https://app.cronofy.com/'
        in response.content.decode().split("Calendars that need relinking")[1]
    )


def test_no_calendar_block_when_every_calendar_is_connected(browser, linked, sim):
    linked(sim.profile("zoom"), calendar_profiles=[sim.calendar_profile("google")])
    response = browser.get(PROFILES)
    assert "Calendars that need relinking" not in page_text(response)


# -- Sync now ----------------------------------------------------------------------


def test_sync_now_reports_the_changes(browser, linked, sim):
    account, sim_account = linked(sim.profile("zoom"))
    sim.set_connected(sim_account.sub, sim_account.conferencing_profiles[0]["profile_id"], False)
    response = browser.post(sync_url(account), follow=True)
    text = page_text(response)
    # Outcomes, not a diff.
    assert f"Synced {account.email}: Zoom needs relinking." in text
    assert "1 conferencing profile needs relinking" in text
    # The outcome takes the focus (no JavaScript): autofocus on the status message.
    assert re.search(
        r'<div id="cc-status"[^>]*role="status"[^>]*tabindex="-1" autofocus',
        response.content.decode(),
    )
    response = browser.post(sync_url(account), follow=True)
    assert f"Synced {account.email}: nothing changed." in page_text(response)


def test_sync_now_needs_post_and_csrf(user, linked, sim):
    account, _ = linked(sim.profile("zoom"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get(sync_url(account)).status_code == 405
    assert client.post(sync_url(account)).status_code == 403
    assert sim.count("userinfo") == 1  # the first sync only


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"status": 503}, "The calendar service could not be reached just now"),
        ({"status": 429}, "The calendar service could not be reached just now"),
        (
            {"status": 200, "body": "not json"},
            "the calendar service sent an answer we could not use",
        ),
    ],
)
def test_sync_now_failures_are_messages_not_errors(browser, linked, sim, fault, message):
    account, _ = linked(sim.profile("zoom"))
    sim.fail("userinfo", times=None, **fault)
    with cronofy_settings(MAX_RETRIES=0):
        response = browser.post(sync_url(account), follow=True)
    assert response.status_code == 200
    assert message in page_text(response)


def test_sync_now_on_a_dead_grant_asks_to_reconnect(browser, linked, sim):
    account, sim_account = linked(sim.profile("zoom"))
    sim.revoke_grant(sim_account.sub)
    sim.expire_access_token(sim_account.sub)
    response = browser.post(sync_url(account), follow=True)
    text = page_text(response)
    assert "no longer accepts" in text and "reconnect it" in text
    assert "Reconnect your calendar account" in text
    # Now that it is known, Sync now is neither offered nor honoured.
    calls = sim.count()
    response = browser.post(sync_url(account), follow=True)
    assert "Reconnect" in page_text(response)
    assert sim.count() == calls


def test_sync_now_has_a_per_user_budget(browser, linked, sim):
    account, _ = linked(sim.profile("zoom"))
    calls = sim.count("userinfo")
    with cronofy_settings(API_SYNC_THROTTLE_RATE="2/m"):
        for _ in range(2):
            browser.post(sync_url(account))
        response = browser.post(sync_url(account), follow=True)
    assert "Please wait a minute and try again." in page_text(response)
    assert sim.count("userinfo") == calls + 2


# -- Unlink ------------------------------------------------------------------------


def test_unlink_asks_for_confirmation_then_revokes(browser, linked, sim):
    account, _ = linked(sim.profile("zoom"))
    response = browser.get(unlink_url(account))
    text = page_text(response)
    assert f"Unlink {account.email}?" in text
    assert "This site's access to the calendar account is revoked" in text
    assert LinkedAccount.objects.filter(pk=account.pk).exists()
    assert sim.count("revoke") == 0

    response = browser.post(unlink_url(account), follow=True)
    assert f"Unlinked {account.email}: this site's access to it was revoked." in page_text(response)
    assert not LinkedAccount.objects.filter(pk=account.pk).exists()
    assert sim.count("revoke") == 1


def test_unlink_when_cronofy_is_down_keeps_the_account(browser, linked, sim, caplog):
    account, _ = linked(sim.profile("zoom"))
    sim.fail("revoke", status=503, times=None)
    with cronofy_settings(MAX_RETRIES=0):
        response = browser.post(unlink_url(account), follow=True)
    assert response.status_code == 200
    assert f"so {account.email} is still linked" in page_text(response)
    assert LinkedAccount.objects.filter(pk=account.pk).exists()
    assert f"Unlink failed for account {account.pk}" in caplog.text  # for the operators


def test_unlink_needs_csrf(user, linked, sim):
    account, _ = linked(sim.profile("zoom"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(unlink_url(account)).status_code == 403
    assert LinkedAccount.objects.filter(pk=account.pk).exists()


# -- the page is the app's default landing -----------------------------------------


def test_link_redirect_url_defaults_to_this_page():
    from django.shortcuts import resolve_url

    from django_cronofy_conferencing.conf import DEFAULTS

    assert resolve_url(DEFAULTS["LINK_REDIRECT_URL"]) == PROFILES


def test_error_page_actions_are_buttons(browser):
    response = browser.get(reverse("cronofy_conferencing:connect"), {"data_center": "nowhere"})
    source = response.content.decode()
    assert response.status_code == 400
    assert '<ul class="actions">' not in source
    assert re.search(
        r'<a class="cc-button[^"]*" href="/cronofy/">Back to my conferencing</a>', source
    )


def test_when_the_last_sync_was(browser, linked, sim):
    from datetime import timedelta

    from django.utils import timezone

    account, _ = linked(sim.profile("zoom"))
    for elapsed, expected in (
        (timedelta(seconds=40), "Last synced just now"),
        (timedelta(seconds=90), "Last synced 1 minute ago"),
        (timedelta(hours=2, seconds=10), "Last synced 2 hours ago"),
    ):
        synced = timezone.now() - elapsed
        LinkedAccount.objects.filter(pk=account.pk).update(last_synced_at=synced)
        assert expected in page_text(browser.get(PROFILES)), elapsed


def test_accounts_that_need_the_user_come_first(browser, linked, sim):
    linked(sim.profile("zoom"), email="fine@example.com")
    linked(sim.profile("go_to", connected=False), email="broken@example.com")
    linked(sim.profile("zoom"), email="alsofine@example.com")
    text = page_text(browser.get(PROFILES))
    assert text.index("broken@example.com") < text.index("fine@example.com")
    assert text.index("fine@example.com") < text.index("alsofine@example.com")  # else in order


def test_the_connect_chooser_offers_the_default_data_center_first(browser):
    from django_cronofy_conferencing.testing import simulated_applications

    applications = simulated_applications(["uk", "au", "sg"])
    with cronofy_settings(DEFAULT_DATA_CENTER="au", APPLICATIONS=applications):
        html = browser.get(PROFILES).content.decode()
    options = re.findall(r'<option value="(\w+)"( selected)?>', html)
    assert options[0] == ("au", " selected")
    assert [value for value, _ in options[1:]] == ["uk", "sg"]


def test_each_account_names_its_data_center(browser, linked, sim):
    linked(sim.profile("zoom"), data_center="uk")
    assert "Data center: United Kingdom" in page_text(browser.get(PROFILES))

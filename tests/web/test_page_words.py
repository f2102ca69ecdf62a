"""The "My conferencing" page in words a user understands: counts apart, one primary action,
outcomes instead of diffs, vendor words only where the host opts in, duplicates told apart,
the default profile."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from tests.web.test_pages import PROFILES, page_text

pytestmark = pytest.mark.django_db


def primary_buttons(source: str) -> list[str]:
    found = re.findall(
        r'<(?:a|button)[^>]*class="cc-button cc-primary"[^>]*>(.*?)</(?:a|button)>', source, re.S
    )
    return [re.sub(r"<[^>]+>", "", text).strip() for text in found]


# -- counts apart ---------------------------------------------------------------------


def test_conferencing_and_calendars_are_counted_apart_each_linking_to_its_item(
    browser, linked, sim
):
    account, _ = linked(
        sim.profile("zoom"),
        sim.profile("go_to", connected=False, profile_name="goto@x.test"),
        calendar_profiles=[
            sim.calendar_profile("apple", profile_name="home@x.test", connected=False)
        ],
    )
    source = browser.get(PROFILES).content.decode()
    goto = ConferencingProfile.objects.get(account=account, provider_name="go_to")
    apple = account.calendar_profiles.get()
    assert re.search(
        rf'<a href="#cc-profile-{goto.pk}"[^>]*><strong>1 conferencing profile needs relinking',
        source,
    )
    assert re.search(
        rf'<a href="#cc-calendar-{apple.pk}"[^>]*><strong>1 calendar needs relinking', source
    )
    assert f'id="cc-profile-{goto.pk}"' in source and f'id="cc-calendar-{apple.pk}"' in source
    assert "profiles need relinking" not in source  # never the two added together


def test_once_goto_works_only_the_calendar_is_counted(browser, linked, sim):
    account, sim_account = linked(
        sim.profile("go_to", connected=False),
        calendar_profiles=[sim.calendar_profile("apple", connected=False)],
    )
    sim.set_connected(sim_account.sub, sim_account.conferencing_profiles[0]["profile_id"], True)
    sync_account(account)
    text = page_text(browser.get(PROFILES))
    assert "All conferencing profiles connected" in text
    assert "1 calendar needs relinking" in text
    assert "conferencing profile needs relinking" not in text


# -- reauthorization: one primary action ------------------------------------------------


def test_reauthorization_offers_one_primary_action_and_calendars_as_unknown(browser, linked, sim):
    account, _ = linked(
        sim.profile("zoom"),
        calendar_profiles=[sim.calendar_profile("apple", connected=False)],
    )
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    response = browser.get(PROFILES)
    source, text = response.content.decode(), page_text(response)
    assert primary_buttons(source) == [f"Reconnect your calendar: {account.email}"]
    assert "Relink" not in text
    assert text.count("Status unknown") == 2  # Zoom and the Apple calendar
    assert "Calendars that need relinking" not in text
    # Not "Last synced just now" above "can no longer read": nothing is known now.
    assert "Last synced" not in text
    assert "This site can no longer read" in text


def test_connect_is_the_primary_action_only_without_accounts(browser, linked, sim):
    source = browser.get(PROFILES).content.decode()
    assert primary_buttons(source) == ["Connect your calendar"]
    linked(sim.profile("zoom"))
    source = browser.get(PROFILES).content.decode()
    assert primary_buttons(source) == []
    assert "Add another calendar account" in page_text(browser.get(PROFILES))


# -- outcomes, not diffs -----------------------------------------------------------------


def sync_url(account) -> str:
    return reverse("cronofy_conferencing:sync_now", args=[account.pk])


def test_sync_now_says_what_happened(browser, linked, sim):
    account, sim_account = linked(
        sim.profile("zoom", profile_id="pro_zoom"),
        sim.profile("go_to", profile_id="pro_goto", connected=False),
        calendar_profiles=[sim.calendar_profile("apple", profile_id="pro_apple", connected=False)],
    )
    sim.set_connected(sim_account.sub, "pro_goto", True)
    sim.set_connected(sim_account.sub, "pro_zoom", False)
    sim.set_calendar_profile_connected(sim_account.sub, "pro_apple", True)
    text = page_text(browser.post(sync_url(account), follow=True))
    assert (
        f"Synced {account.email}: GoTo is working again. Zoom needs relinking. "
        "Apple calendar is working again." in text
    )
    assert "added" not in text.split("Synced")[1].split(".")[0]


def test_sync_now_names_added_and_removed_profiles(browser, linked, sim):
    account, sim_account = linked(sim.profile("zoom", profile_id="pro_zoom"))
    sim.remove_profile(sim_account.sub, "pro_zoom")
    sim.accounts[sim_account.sub].conferencing_profiles.append(sim.profile("ms_teams"))
    text = page_text(browser.post(sync_url(account), follow=True))
    assert "Microsoft Teams was added" in text and "Zoom was removed" in text


def test_two_of_a_kind_are_named_in_outcomes(browser, linked, sim):
    account, sim_account = linked(
        sim.profile("zoom", profile_id="pro_a", profile_name="work@zoom"),
        sim.profile("zoom", profile_id="pro_b", profile_name="home@zoom"),
    )
    sim.set_connected(sim_account.sub, "pro_b", False)
    text = page_text(browser.post(sync_url(account), follow=True))
    assert "Zoom (home@zoom) needs relinking" in text


# -- vendor words only where the host opts in ---------------------------------------------


def test_no_vendor_words_by_default(browser, linked, sim, settings_with):
    linked(sim.profile("zoom", connected=False))
    with settings_with(APPLICATIONS={}):  # one data center offered: none shown
        response = browser.get(PROFILES)
    text = page_text(response)
    assert "Cronofy" not in text
    assert "Data center" not in text
    assert "Other providers" in text and "Another provider" not in text


def test_the_host_opts_into_its_product_name(browser, linked, sim, settings_with):
    account, _ = linked(sim.profile("zoom"))
    with settings_with(PRODUCT_NAME="Cronofy"):
        text = page_text(browser.get(PROFILES))
        assert "Add another Cronofy account" in text
        LinkedAccount.objects.filter(pk=account.pk).update(
            status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
        )
        text = page_text(browser.get(PROFILES))
        assert "Reconnect your Cronofy account" in text
        assert "Reconnect Cronofy" in text


def test_data_centers_show_only_when_there_is_a_choice(browser, linked, sim, settings_with):
    linked(sim.profile("zoom"))
    # The suite offers six data centers: the account says which one it is in.
    assert "Data center:" in page_text(browser.get(PROFILES))
    with settings_with(APPLICATIONS={}):
        assert "Data center" not in page_text(browser.get(PROFILES))


# -- duplicates and the default profile ---------------------------------------------------


def test_duplicates_are_told_apart_by_name_then_by_when_added(browser, linked, sim):
    linked(
        sim.profile("zoom", profile_id="pro_a", profile_name="me@zoom"),
        sim.profile("zoom", profile_id="pro_b", profile_name="me@zoom"),
        sim.profile("zoom", profile_id="pro_c", profile_name="other@zoom"),
    )
    ConferencingProfile.objects.filter(profile_id="pro_a").update(
        first_seen_at=timezone.now() - timedelta(days=40)
    )
    source = browser.get(PROFILES).content.decode()
    hints = re.findall(r'<span class="cc-added">\(added ([^)]+)\)</span>', source)
    assert len(hints) == 2 and hints[0] != hints[1]  # both me@zoom, each with its date
    assert "other@zoom <span" not in source
    # Added the same day: the time tells them apart.
    ConferencingProfile.objects.filter(profile_id="pro_a").update(
        first_seen_at=timezone.now() - timedelta(hours=2)
    )
    source = browser.get(PROFILES).content.decode()
    hints = re.findall(r'<span class="cc-added">\(added ([^)]+)\)</span>', source)
    assert len(hints) == 2 and hints[0] != hints[1], hints


def set_preferred_url(account) -> str:
    return reverse("cronofy_conferencing:set_preferred", args=[account.pk])


def test_the_user_makes_a_profile_the_default_on_the_page(browser, linked, sim):
    account, _ = linked(
        sim.profile("zoom", profile_id="pro_a", profile_name="work@zoom"),
        sim.profile("zoom", profile_id="pro_b", profile_name="home@zoom"),
        sim.profile("go_to", profile_id="pro_goto", connected=False),
    )
    text = page_text(browser.get(PROFILES))
    assert "Default for new meetings" not in text
    assert text.count("Make default") == 2  # the connected ones only
    response = browser.post(set_preferred_url(account), {"profile_id": "pro_b"}, follow=True)
    text = page_text(response)
    assert "New meetings will use Zoom (home@zoom) by default." in text
    assert "home@zoom Connected Default for new meetings" in text
    assert text.count("Make default") == 1
    account.refresh_from_db()
    assert account.preferred_conferencing_profile_id == "pro_b"


def test_making_default_refuses_what_is_not_the_users(
    browser, linked, sim, link_account, other_user
):
    account, _ = linked(sim.profile("zoom", profile_id="pro_a"))
    theirs, _ = link_account(
        user=other_user, conferencing_profiles=[sim.profile("zoom", profile_id="pro_x")]
    )
    sync_account(theirs)
    assert browser.post(set_preferred_url(theirs), {"profile_id": "pro_x"}).status_code == 404
    # Another account's profile id on the user's own account: nothing is set.
    response = browser.post(set_preferred_url(account), {"profile_id": "pro_x"}, follow=True)
    assert "That conferencing profile is no longer there." in page_text(response)
    for bad in ("", "x" * 300, "pro\x00a"):
        browser.post(set_preferred_url(account), {"profile_id": bad})
    account.refresh_from_db()
    theirs.refresh_from_db()
    assert account.preferred_conferencing_profile_id == ""
    assert theirs.preferred_conferencing_profile_id == ""


def test_making_default_needs_post_and_csrf(user, linked, sim):
    account, _ = linked(sim.profile("zoom", profile_id="pro_a"))
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.get(set_preferred_url(account)).status_code == 405
    assert strict.post(set_preferred_url(account), {"profile_id": "pro_a"}).status_code == 403
    account.refresh_from_db()
    assert account.preferred_conferencing_profile_id == ""


def test_the_page_keeps_its_query_count_with_preferences_and_duplicates(browser, linked, sim):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    linked(sim.profile("zoom"))

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert browser.get(PROFILES).status_code == 200
        return len(queries)

    few = count()
    for _ in range(3):
        account, _ = linked(
            sim.profile("zoom", profile_name="x"), sim.profile("zoom", profile_name="x")
        )
        browser.post(
            set_preferred_url(account),
            {"profile_id": account.conferencing_profiles.first().profile_id},
        )
    assert count() == few

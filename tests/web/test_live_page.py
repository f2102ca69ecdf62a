"""The open "My conferencing" page keeping itself up to date, server side: the accounts
section behind a cheap conditional request, and the sync when the user comes back from a
Relink tab. (The script itself runs in tests/browser/test_live_page.py.)"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_cronofy_conferencing.accounts.preferences import set_preferred
from django_cronofy_conferencing.exceptions import CronofyError
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from tests.web.test_pages import PROFILES, page_text

pytestmark = pytest.mark.django_db

SECTION = reverse("cronofy_conferencing:profiles_section")


def relinked_url(account) -> str:
    return reverse("cronofy_conferencing:sync_after_relink", args=[account.pk])


def etag_of(browser) -> str:
    response = browser.get(SECTION)
    assert response.status_code == 200
    return response["ETag"]


def ours(queries) -> list[str]:
    return [q["sql"] for q in queries if "cronofy_conferencing" in q["sql"]]


# -- the section and its ETag -------------------------------------------------------


def test_the_page_carries_the_sections_etag_and_where_to_ask(browser, linked, sim):
    linked(sim.profile("zoom"))
    source = browser.get(PROFILES).content.decode()
    etag = re.search(r'data-cc-etag="([^"]+)"', source).group(1)
    assert html_unescape(etag) == etag_of(browser)
    assert f'data-cc-live-url="{SECTION}"' in source
    assert "cronofy_conferencing.js" in source


def html_unescape(value: str) -> str:
    import html

    return html.unescape(value)


def test_the_section_is_the_pages_accounts_part(browser, linked, sim):
    account, _ = linked(sim.profile("zoom", profile_name="jane@zoom.example"))
    response = browser.get(SECTION)
    source = response.content.decode()
    assert source.lstrip().startswith('<div class="cc-accounts" data-cc-accounts>')
    assert "<html" not in source and "<h1" not in source  # the section only
    assert f'data-account-id="{account.pk}"' in source
    assert "Zoom jane@zoom.example Connected" in page_text(response)
    assert response["Cache-Control"].startswith("max-age=0")
    assert "private" in response["Cache-Control"]


def test_an_unchanged_section_is_a_304_for_one_cheap_query(browser, linked, sim):
    linked(sim.profile("zoom"), sim.profile("go_to", connected=False))
    linked(sim.profile("ms_teams"))
    etag = etag_of(browser)
    with CaptureQueriesContext(connection) as queries:
        response = browser.get(SECTION, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    # One query of the app's own (the version); the rest is the session and the user.
    assert len(ours(queries)) == 1, ours(queries)
    assert "COUNT" in ours(queries)[0].upper() and "MAX" in ours(queries)[0].upper()
    assert len(queries) <= 3, [q["sql"] for q in queries]


def test_the_304_costs_the_same_whatever_the_number_of_accounts(browser, linked, sim):
    linked(sim.profile("zoom"))

    def cost() -> int:
        etag = etag_of(browser)
        with CaptureQueriesContext(connection) as queries:
            assert browser.get(SECTION, HTTP_IF_NONE_MATCH=etag).status_code == 304
        return len(queries)

    few = cost()
    for _ in range(4):
        linked(sim.profile("zoom"), sim.profile("go_to", connected=False))
    assert cost() == few


def test_a_weak_or_listed_etag_matches_too(browser, linked, sim):
    linked(sim.profile("zoom"))
    etag = etag_of(browser)
    assert browser.get(SECTION, HTTP_IF_NONE_MATCH=f'"other", W/{etag}').status_code == 304
    assert browser.get(SECTION, HTTP_IF_NONE_MATCH='"other"').status_code == 200


@pytest.mark.parametrize(
    "change",
    ["disconnect", "sync_failure", "preference", "unlink_elsewhere", "link", "reauthorization"],
)
def test_every_change_the_section_shows_changes_the_etag(
    browser, linked, sim, link_account, user, change
):
    account, sim_account = linked(sim.profile("zoom"), sim.profile("go_to"))
    other, _ = linked(sim.profile("ms_teams"))
    etag = etag_of(browser)
    if change == "disconnect":
        sim.set_connected(
            sim_account.sub, sim_account.conferencing_profiles[0]["profile_id"], False
        )
        sync_account(account)
    elif change == "sync_failure":
        sim.fail("userinfo", status=503, times=None)
        with pytest.raises(CronofyError):
            sync_account(account)
    elif change == "preference":
        set_preferred(account.conferencing_profiles.get(provider_name="go_to"))
    elif change == "unlink_elsewhere":
        other.delete()
    elif change == "link":
        link_account(user=user)
    elif change == "reauthorization":
        sim.revoke_grant(sim_account.sub)
        sim.expire_access_token(sim_account.sub)
        with pytest.raises(CronofyError):
            sync_account(account)
        account.refresh_from_db()
        assert account.status == LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    response = browser.get(SECTION, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200, change
    assert response["ETag"] != etag


def test_another_users_changes_do_not_touch_the_etag(
    browser, linked, sim, link_account, other_user
):
    linked(sim.profile("zoom"))
    theirs, _ = link_account(user=other_user)
    etag = etag_of(browser)
    sync_account(theirs)
    assert browser.get(SECTION, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_the_etag_is_per_user(scanning_client, user, other_user):
    mine = scanning_client(user).get(SECTION)["ETag"]
    theirs = scanning_client(other_user).get(SECTION)["ETag"]
    assert mine != theirs


def test_the_section_shows_only_the_users_own_accounts(browser, link_account, other_user, sim):
    account, _ = link_account(user=other_user, email="bob@example.com")
    sync_account(account)
    assert "bob@example.com" not in browser.get(SECTION).content.decode()


def test_anonymous_gets_a_403_not_a_login_page(client):
    response = client.get(SECTION)
    assert response.status_code == 403
    assert b"<form" not in response.content


def test_the_section_is_read_only(browser):
    assert browser.post(SECTION).status_code == 405


# -- coming back from a Relink tab --------------------------------------------------


def test_coming_back_syncs_the_account_once(browser, linked, sim):
    account, sim_account = linked(sim.profile("zoom", connected=False))
    calls = sim.count("userinfo")
    sim.set_connected(sim_account.sub, sim_account.conferencing_profiles[0]["profile_id"], True)
    response = browser.post(relinked_url(account))
    assert response.status_code == 204
    assert sim.count("userinfo") == calls + 1
    assert "All conferencing profiles connected" in page_text(browser.get(SECTION))
    # No message left for the next page: the open page shows the outcome itself.
    assert "Synced" not in page_text(browser.get(PROFILES))


def test_coming_back_spends_from_the_users_budget(browser, linked, sim, settings_with):
    account, _ = linked(sim.profile("zoom", connected=False))
    calls = sim.count("userinfo")
    with settings_with(API_SYNC_THROTTLE_RATE="1/m"):
        assert browser.post(relinked_url(account)).status_code == 204
        assert browser.post(relinked_url(account)).status_code == 429
    assert sim.count("userinfo") == calls + 1


def test_coming_back_to_an_account_that_must_reconnect_calls_nothing(browser, linked, sim):
    account, _ = linked(sim.profile("zoom", connected=False))
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    calls = sim.count()
    assert browser.post(relinked_url(account)).status_code == 409
    assert sim.count() == calls


def test_coming_back_when_cronofy_is_down_is_recorded_not_an_error(
    browser, linked, sim, settings_with
):
    account, _ = linked(sim.profile("zoom"))
    sim.fail("userinfo", status=503, times=None)
    with settings_with(MAX_RETRIES=0):
        assert browser.post(relinked_url(account)).status_code == 503
    account.refresh_from_db()
    assert account.consecutive_failures == 1


def test_coming_back_needs_post_csrf_a_login_and_the_users_account(
    user, other_user, linked, sim, link_account
):
    account, _ = linked(sim.profile("zoom"))
    calls = sim.count()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.get(relinked_url(account)).status_code == 405
    assert strict.post(relinked_url(account)).status_code == 403
    assert Client().post(relinked_url(account)).status_code == 403
    bob = Client()
    bob.force_login(other_user)
    assert bob.post(relinked_url(account)).status_code == 404
    assert sim.count() == calls

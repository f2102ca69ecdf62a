"""Browser flow: connect, callback, conferencing connect and return, against the simulator."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.accounts import state as oauth_state
from django_cronofy_conferencing.cronofy.datacenters import BUILTIN_DATA_CENTERS
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import SimulatedCronofy

pytestmark = pytest.mark.django_db

CALLBACK = "http://testserver/cronofy/callback/"
DATA_CENTERS = sorted(BUILTIN_DATA_CENTERS)


def cronofy_settings(**overrides):
    return override_settings(CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, **overrides})


@pytest.fixture
def browser(scanning_client, user):
    """A logged-in browser whose every response is scanned for tokens and the secret."""
    return scanning_client(user)


def connect(client, **params) -> str:
    """Start the flow (a POST); returns the Cronofy authorization URL the browser is sent to."""
    response = client.post(reverse("cronofy_conferencing:connect"), params)
    assert response.status_code == 302, response.content
    return response["Location"]


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def secrets_of(sim) -> set[str]:
    """Every token and code the simulator ever issued."""
    values = set(sim.access_tokens) | set(sim.refresh_tokens) | set(sim.codes)
    for account in sim.accounts.values():
        values |= {account.access_token, account.refresh_token}
    return {v for v in values if v}


def assert_no_secrets(sim, *texts) -> None:
    secrets = secrets_of(sim) | {settings.CRONOFY_CONFERENCING["CLIENT_SECRET"]}
    for text in texts:
        text = text.decode() if isinstance(text, bytes) else str(text)
        for secret in secrets:
            assert secret not in text


def link_through_browser(browser, sim, sim_account=None, **params):
    url = connect(browser, **params)
    back = sim.authorize(url, account=sim_account)
    return browser.get(back)


# -- connect ------------------------------------------------------------------


def test_connect_requires_login(client, sim):
    response = client.get(reverse("cronofy_conferencing:connect"))
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)
    assert sim.count() == 0


@pytest.mark.parametrize("dc_id", DATA_CENTERS)
def test_connect_redirects_to_the_data_centers_app_host(browser, dc_id):
    url = connect(browser, data_center=dc_id)
    dc = BUILTIN_DATA_CENTERS[dc_id]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == dc.app_url
    assert parts.path == "/oauth/authorize"
    query = parse_qs(parts.query)
    assert query["response_type"] == ["code"]
    # The authorize URL carries the client id of that data center's application.
    assert query["client_id"] == [SimulatedCronofy().credentials_for(dc_id)[0]]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["scope"] == ["read_account"]
    assert len(query["state"][0]) >= 40
    assert "provider_name" not in query


def test_connect_uses_the_default_data_center_and_scope_settings(browser):
    with cronofy_settings(DEFAULT_DATA_CENTER="au", SCOPE="read_account read_events"):
        url = connect(browser)
    assert url.startswith("https://app-au.cronofy.com/oauth/authorize?")
    assert parse_qs(urlsplit(url).query)["scope"] == ["read_account read_events"]


def test_connect_passes_provider_name_through(browser):
    url = connect(browser, data_center="uk", provider_name="ms_teams")
    assert parse_qs(urlsplit(url).query)["provider_name"] == ["ms_teams"]


@pytest.mark.parametrize(
    "value", ["xx", "https://evil.example.com", "api.cronofy.com", "US ", "../us"]
)
def test_unknown_data_center_is_a_400_never_a_redirect(browser, value):
    response = browser.get(reverse("cronofy_conferencing:connect"), {"data_center": value})
    assert response.status_code == 400
    assert "Location" not in response
    assert b"evil" not in response.content
    assert oauth_state.SESSION_KEY not in browser.session


def test_invalid_provider_name_is_a_400(browser):
    response = browser.get(
        reverse("cronofy_conferencing:connect"), {"provider_name": 'zoom"><script>'}
    )
    assert response.status_code == 400
    assert "Location" not in response


def test_connect_get_is_a_button_with_no_side_effect(browser):
    response = browser.get(
        reverse("cronofy_conferencing:connect"),
        {"data_center": "de", "provider_name": "zoom", "next": "/after/"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html
    assert 'name="data_center" value="de"' in html
    assert 'name="provider_name" value="zoom"' in html
    assert 'name="next" value="/after/"' in html
    assert oauth_state.SESSION_KEY not in browser.session


def test_connect_is_csrf_protected(sim, user):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(reverse("cronofy_conferencing:connect")).status_code == 403
    assert oauth_state.SESSION_KEY not in strict.session
    token = strict.get(reverse("cronofy_conferencing:connect")).context["csrf_token"]
    response = strict.post(
        reverse("cronofy_conferencing:connect"), {"csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302


def test_cross_site_requests_cannot_evict_a_pending_state(sim, user):
    """Issue #10 item 8. Before: five forced GETs pushed the user's state out (callback 400).
    After: GET issues nothing and a POST without the CSRF token is refused: the flow works."""
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    sim_account = sim.add_account()
    token = strict.get(reverse("cronofy_conferencing:connect")).context["csrf_token"]
    start = strict.post(
        reverse("cronofy_conferencing:connect"), {"csrfmiddlewaretoken": str(token)}
    )
    for _ in range(oauth_state.MAX_PENDING * 2):  # an <img> or a form on another site
        strict.get(reverse("cronofy_conferencing:connect"))
        strict.post(reverse("cronofy_conferencing:connect"))
    assert len(strict.session[oauth_state.SESSION_KEY]) == 1
    response = strict.get(sim.authorize(start["Location"], account=sim_account))
    assert response.status_code == 302
    assert LinkedAccount.objects.filter(sub=sim_account.sub).exists()


# -- callback -----------------------------------------------------------------


@pytest.mark.parametrize("dc_id", DATA_CENTERS)
def test_link_in_each_data_center(browser, sim, user, dc_id):
    sim_account = sim.add_account(
        data_center=dc_id,
        email="jane@example.com",
        conferencing_profiles=[sim.profile("zoom", profile_name="Jane Zoom")],
    )
    before = timezone.now()
    response = link_through_browser(browser, sim, sim_account, data_center=dc_id)

    assert response.status_code == 302
    assert response["Location"] == "/cronofy/"  # LINK_REDIRECT_URL: the profiles page
    account = LinkedAccount.objects.get()
    assert (account.user, account.data_center, account.sub) == (user, dc_id, sim_account.sub)
    assert account.access_token == sim_account.access_token
    assert account.refresh_token == sim_account.refresh_token
    assert account.status == LinkedAccount.Status.ACTIVE
    expected = before + timedelta(seconds=3600)
    assert expected <= account.token_expires_at <= timezone.now() + timedelta(seconds=3600)
    assert account.email == "jane@example.com"
    assert account.last_synced_at is not None
    assert [p.profile_name for p in account.conferencing_profiles.all()] == ["Jane Zoom"]
    # The code exchange and the first sync went to that data center's API host.
    token_request = next(r for r in sim.requests if r.endpoint == "token")
    assert token_request.data_center == dc_id
    assert token_request.form["grant_type"] == "authorization_code"
    assert token_request.form["redirect_uri"] == CALLBACK
    assert {r.data_center for r in sim.requests} == {dc_id}
    assert messages_of(response) == ["Your calendar account jane@example.com is linked."]
    assert_no_secrets(sim, response.content, response["Location"], *messages_of(response))


def test_callback_redirects_to_configured_url(browser, sim):
    with cronofy_settings(LINK_REDIRECT_URL="/settings/integrations/"):
        response = link_through_browser(browser, sim)
    assert response["Location"] == "/settings/integrations/"


def test_callback_honours_a_safe_next_and_ignores_an_unsafe_one(browser, sim):
    response = link_through_browser(browser, sim, next="/profile/?tab=video")
    assert response["Location"] == "/profile/?tab=video"
    response = link_through_browser(browser, sim, next="https://evil.example.com/")
    assert response["Location"] == "/cronofy/"  # LINK_REDIRECT_URL: the profiles page


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "/\\/evil.example/",
        "https:evil.example",
        "javascript:alert(1)",
        "http://testserver.evil.example/",
    ],
)
def test_no_next_url_leads_off_the_site(browser, sim, next_url):
    """Scheme-relative and backslash forms that browsers treat as another host."""
    response = link_through_browser(browser, sim, next=next_url)
    assert response["Location"] == "/cronofy/"


def test_on_https_a_next_url_must_stay_on_https(sim, user, scanner):
    from tests.secret_scan import ScanningClient

    secure = ScanningClient(scanner)
    secure.force_login(user)
    url = secure.post(
        reverse("cronofy_conferencing:connect"), {"next": "http://testserver/a/"}, secure=True
    )
    response = secure.get(sim.authorize(url["Location"]), secure=True)
    assert response["Location"] == "/cronofy/"
    url = secure.post(
        reverse("cronofy_conferencing:connect"), {"next": "https://testserver/a/"}, secure=True
    )
    response = secure.get(sim.authorize(url["Location"]), secure=True)
    assert response["Location"] == "https://testserver/a/"


def test_the_callback_takes_the_data_center_from_the_state_not_the_query(browser, sim):
    """The flow was started for "uk": a data_center added to the return URL changes
    nothing (the code is exchanged, and the account stored, in "uk")."""
    sim_account = sim.add_account(data_center="uk")
    back = sim.authorize(connect(browser, data_center="uk"), account=sim_account)
    response = browser.get(back + "&data_center=us")
    assert response.status_code == 302
    assert [r.data_center for r in sim.requests if r.endpoint == "token"] == ["uk"]
    assert LinkedAccount.objects.get().data_center == "uk"


def test_callback_requires_login(client, sim, user):
    client.force_login(user)
    url = connect(client)
    back = sim.authorize(url)
    client.logout()
    response = client.get(back)
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)
    assert not LinkedAccount.objects.exists()
    assert sim.count("token") == 0


def _with_state(url: str, state: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if state is None:
        query.pop("state")
    else:
        query["state"] = state
    from urllib.parse import urlencode

    return f"{parts.path}?{urlencode(query)}"


def assert_refused(response, sim) -> None:
    assert response.status_code == 400
    assert "Location" not in response
    assert b"Nothing was linked" in response.content
    assert not LinkedAccount.objects.exists()
    assert sim.count("token") == 0
    assert_no_secrets(sim, response.content)


def test_missing_state_is_refused(browser, sim):
    back = sim.authorize(connect(browser))
    assert_refused(browser.get(_with_state(back, None)), sim)


def test_forged_state_is_refused(browser, sim):
    back = sim.authorize(connect(browser))
    assert_refused(browser.get(_with_state(back, "forged" + "A" * 40)), sim)


def test_state_from_another_session_is_refused(browser, sim, scanning_client, user, other_user):
    back = sim.authorize(connect(browser))
    # An attacker's browser (another session, another user) replays the callback.
    attacker = scanning_client(other_user)
    assert_refused(attacker.get(back), sim)
    # The same user in another browser session is refused as well.
    second = scanning_client(user)
    assert_refused(second.get(back), sim)


def test_expired_state_is_refused(browser, sim, monkeypatch):
    back = sim.authorize(connect(browser))
    later = time.time() + 601
    monkeypatch.setattr(oauth_state, "_now", lambda: later)
    assert_refused(browser.get(back), sim)


def test_reused_state_is_refused(browser, sim):
    back = sim.authorize(connect(browser))
    assert browser.get(back).status_code == 302
    assert LinkedAccount.objects.count() == 1
    response = browser.get(back)
    assert response.status_code == 400
    assert sim.count("token") == 1  # the code was not sent again
    assert LinkedAccount.objects.count() == 1


def test_two_flows_in_flight_each_state_works_once(browser, sim):
    # Two tabs started linking: each callback works, once.
    first = sim.authorize(connect(browser))
    second = sim.authorize(connect(browser))
    assert browser.get(first).status_code == 302
    assert browser.get(second).status_code == 302
    assert browser.get(first).status_code == 400


def test_access_denied_shows_a_friendly_page(browser, sim):
    back = sim.authorize(connect(browser), approve=False)
    response = browser.get(back)
    assert response.status_code == 200
    assert b"You chose not to give access" in response.content
    assert b'href="/cronofy/connect/?data_center=us"' in response.content
    assert not LinkedAccount.objects.exists()
    assert sim.count("token") == 0
    # The denied flow's state is used up.
    assert browser.session[oauth_state.SESSION_KEY] == {}


def test_access_denied_without_a_valid_state_is_still_friendly(browser, sim):
    response = browser.get(reverse("cronofy_conferencing:callback"), {"error": "access_denied"})
    assert response.status_code == 200
    assert not LinkedAccount.objects.exists()


def test_other_oauth_error_is_a_400(browser, sim):
    url = connect(browser)
    state = parse_qs(urlsplit(url).query)["state"][0]
    response = browser.get(
        reverse("cronofy_conferencing:callback"), {"error": "server_error", "state": state}
    )
    assert response.status_code == 400
    assert not LinkedAccount.objects.exists()


def test_missing_code_is_a_400(browser, sim):
    url = connect(browser)
    state = parse_qs(urlsplit(url).query)["state"][0]
    response = browser.get(reverse("cronofy_conferencing:callback"), {"state": state})
    assert response.status_code == 400
    assert sim.count("token") == 0


def test_expired_code_is_a_400_and_nothing_stored(browser, sim):
    back = sim.authorize(connect(browser))
    sim.clock = lambda: time.time() + 601  # Cronofy's codes live 10 minutes
    response = browser.get(back)
    assert response.status_code == 400
    assert b"Cronofy did not accept the authorization code" in response.content
    assert sim.count("token", status=400) == 1
    assert not LinkedAccount.objects.exists()
    assert_no_secrets(sim, response.content)


def test_used_code_is_a_400(browser, sim):
    url = connect(browser)
    back = sim.authorize(url)
    code = parse_qs(urlsplit(back).query)["code"][0]
    sim.codes[code]["used"] = True  # e.g. a double submit already traded it
    response = browser.get(back)
    assert response.status_code == 400
    assert not LinkedAccount.objects.exists()


def test_cronofy_down_during_the_exchange(browser, sim):
    back = sim.authorize(connect(browser))
    sim.fail("token", status=503, times=None)
    response = browser.get(back)
    assert response.status_code == 503
    assert b"Cronofy could not be reached" in response.content
    assert sim.count("token") == 1  # a code exchange is never replayed
    assert not LinkedAccount.objects.exists()


def test_relink_by_the_same_user_updates_tokens_and_reactivates(browser, sim, user):
    sim_account = sim.add_account(data_center="uk")
    link_through_browser(browser, sim, sim_account, data_center="uk")
    account = LinkedAccount.objects.get()
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED, last_sync_error="dead grant"
    )
    sim.revoke_grant(sim_account.sub)
    old_access = account.access_token

    response = link_through_browser(browser, sim, sim_account, data_center="uk")

    assert response.status_code == 302
    account = LinkedAccount.objects.get()
    assert account.status == LinkedAccount.Status.ACTIVE
    assert account.user == user
    assert account.access_token == sim_account.access_token != old_access
    assert account.refresh_token == sim_account.refresh_token
    assert account.last_sync_error == ""
    assert sync_account(account).created == 0


@pytest.mark.parametrize("message", [None, "Ask your admin to move this calendar account."])
def test_account_of_another_user_is_refused_never_moved(
    browser, sim, user, other_user, link_account, message
):
    theirs, sim_account = link_account(user=other_user, data_center="de")
    before = (theirs.access_token, theirs.refresh_token, theirs.token_expires_at)
    overrides = {"LINK_CONFLICT_MESSAGE": message} if message else {}
    with cronofy_settings(**overrides):
        response = link_through_browser(browser, sim, sim_account, data_center="de")
    assert response.status_code == 409
    expected = message or "This Cronofy account is already linked to another user of this site."
    assert expected in response.content.decode()
    account = LinkedAccount.objects.get()
    assert account.user == other_user
    assert (account.access_token, account.refresh_token, account.token_expires_at) == before
    assert not LinkedAccount.objects.filter(user=user).exists()
    assert_no_secrets(sim, response.content)


def test_an_orphan_account_is_claimed(browser, sim, user, link_account):
    orphan, sim_account = link_account(user=None)
    response = link_through_browser(browser, sim, sim_account)
    assert response.status_code == 302
    orphan.refresh_from_db()
    assert orphan.user == user


def test_a_failed_first_sync_keeps_the_account_and_tells_the_user(browser, sim):
    sim_account = sim.add_account(email="jane@example.com")
    sim.fail("userinfo", status=503, times=None)
    response = link_through_browser(browser, sim, sim_account)
    assert response.status_code == 302
    account = LinkedAccount.objects.get()
    assert account.status == LinkedAccount.Status.ACTIVE
    assert account.last_synced_at is None
    assert account.last_sync_error
    (message,) = messages_of(response)
    assert "is linked, but its conferencing profiles could not be loaded yet" in message
    sim.clear_faults()
    assert sync_account(account).created == 0


def test_push_channel_is_created_after_linking(browser, sim):
    with cronofy_settings(PUSH_NOTIFICATIONS_CALLBACK_URL="https://example.com/cronofy/n/"):
        link_through_browser(browser, sim)
    account = LinkedAccount.objects.get()
    assert account.channel_id.startswith("chn_")


def test_a_push_channel_failure_does_not_fail_the_link(browser, sim, caplog):
    sim.fail("channels", status=500, body='{"token": "leaky"}', times=None)
    with (
        cronofy_settings(PUSH_NOTIFICATIONS_CALLBACK_URL="https://example.com/cronofy/n/"),
        caplog.at_level(logging.WARNING, logger="django_cronofy_conferencing"),
    ):
        response = link_through_browser(browser, sim)
    assert response.status_code == 302
    account = LinkedAccount.objects.get()
    assert account.channel_id == ""
    assert account.last_synced_at is not None
    assert "push notification channel" in caplog.text
    assert_no_secrets(sim, caplog.text)


# -- conferencing -------------------------------------------------------------


def conferencing_url(account, name="conferencing_connect", flow=None) -> str:
    if name == "conferencing_return" and flow is None:
        name = "conferencing_return_without_flow"
    args = [account.pk] if flow is None else [account.pk, flow]
    return reverse(f"cronofy_conferencing:{name}", args=args)


def return_url(account, user) -> str:
    """A return URL with a fresh flow value, as the conferencing connect POST hands Cronofy."""
    flow = oauth_state.issue_return(user, account.pk)
    return conferencing_url(account, "conferencing_return", flow)


def test_conferencing_connect_shows_a_form(browser, link_account, user):
    account, _ = link_account(user=user)
    response = browser.get(conferencing_url(account))
    assert response.status_code == 200
    assert b'method="post"' in response.content
    assert b"csrfmiddlewaretoken" in response.content
    assert b'<label for="id_provider_name">' in response.content


def test_provider_labels_are_translated_per_request_not_at_import():
    from django.utils.functional import Promise

    from django_cronofy_conferencing.providers import LINKABLE_PROVIDER_CHOICES

    assert isinstance(dict(LINKABLE_PROVIDER_CHOICES)[""], Promise)


def test_conferencing_connect_offers_the_linkable_providers(browser, link_account, user):
    account, _ = link_account(user=user)
    html = browser.get(conferencing_url(account)).content.decode()
    options = re.findall(r'<option value="([^"]*)">([^<]*)</option>', html)
    assert options == [
        ("", "Let me choose at Cronofy"),
        ("zoom", "Zoom"),
        ("ms_teams", "Microsoft Teams"),
        ("go_to", "GoTo"),
    ]


@pytest.mark.parametrize("dc_id", ["us", "sg"])
def test_conferencing_connect_redirects_to_cronofy(browser, sim, link_account, user, dc_id):
    account, _ = link_account(user=user, data_center=dc_id)
    response = browser.post(conferencing_url(account), {"provider_name": "zoom"})
    assert response.status_code == 302
    assert response["Location"].startswith(
        BUILTIN_DATA_CENTERS[dc_id].app_url + "/conferencing_services/"
    )
    request = sim.requests[-1]
    assert request.endpoint == "conferencing_service_authorizations"
    assert request.data_center == dc_id
    assert request.json["provider_name"] == "zoom"
    prefix = f"http://testserver/cronofy/accounts/{account.pk}/conferencing/return/"
    assert request.json["redirect_uri"].startswith(prefix)
    assert re.fullmatch(r"[\w-]{40,}/", request.json["redirect_uri"][len(prefix) :])


def test_conferencing_connect_without_provider(browser, sim, link_account, user):
    account, _ = link_account(user=user)
    assert browser.post(conferencing_url(account), {"provider_name": ""}).status_code == 302
    assert "provider_name" not in sim.requests[-1].json


def test_conferencing_connect_is_csrf_protected(sim, link_account, user):
    account, _ = link_account(user=user)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(conferencing_url(account), {"provider_name": "zoom"}).status_code == 403
    assert sim.count() == 0
    page = strict.get(conferencing_url(account))
    token = page.context["csrf_token"]
    response = strict.post(
        conferencing_url(account), {"provider_name": "zoom", "csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302


def test_conferencing_views_hide_other_users_accounts(browser, sim, link_account, other_user):
    theirs, _ = link_account(user=other_user)
    assert browser.get(conferencing_url(theirs)).status_code == 404
    assert browser.post(conferencing_url(theirs), {"provider_name": "zoom"}).status_code == 404
    response = browser.get(return_url(theirs, other_user), {"last_linked_profile_id": "pro_x"})
    assert response.status_code == 404
    assert sim.count() == 0


def test_conferencing_views_require_login(client, link_account, user):
    account, _ = link_account(user=user)
    for url in (conferencing_url(account), return_url(account, user)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(settings.LOGIN_URL)


def test_conferencing_return_syncs_and_names_the_new_profile(browser, sim, link_account, user):
    account, _ = link_account(user=user)
    start = browser.post(conferencing_url(account), {"provider_name": "ms_teams"})
    back = sim.complete_conferencing_authorization(
        start["Location"], profile_name="jane@contoso.example"
    )
    response = browser.get(back)
    assert response.status_code == 302
    assert response["Location"] == "/cronofy/"  # LINK_REDIRECT_URL: the profiles page
    profile = ConferencingProfile.objects.get(account=account)
    assert profile.provider_name == "ms_teams"
    assert profile.profile_connected is True
    assert profile.profile_id in back
    assert messages_of(response) == ["Microsoft Teams profile jane@contoso.example is connected."]


@pytest.mark.parametrize(
    ("provider_name", "label"),
    [("google_meet_api", "Google Meet"), ("webex_next", "Webex Next")],
)
def test_conferencing_return_names_the_provider_like_the_admin(
    browser, sim, link_account, user, provider_name, label
):
    """One list of provider labels (``providers``); a name it lacks shows as Cronofy sends it."""
    profile = sim.profile(provider_name, profile_name="jane@example.com")
    account, _ = link_account(user=user, conferencing_profiles=[profile])
    response = browser.get(
        return_url(account, user), {"last_linked_profile_id": profile["profile_id"]}
    )
    assert messages_of(response) == [f"{label} profile jane@example.com is connected."]


def test_conferencing_return_access_denied(browser, sim, link_account, user):
    account, _ = link_account(user=user)
    start = browser.post(conferencing_url(account), {"provider_name": "zoom"})
    back = sim.complete_conferencing_authorization(start["Location"], approve=False)
    response = browser.get(back)
    assert response.status_code == 200
    assert b"You chose not to connect a conferencing provider" in response.content
    assert sim.count("userinfo") == 0
    assert not ConferencingProfile.objects.exists()


def test_conferencing_return_without_profile_id_is_a_400(browser, sim, link_account, user):
    account, _ = link_account(user=user)
    response = browser.get(conferencing_url(account, "conferencing_return"))
    assert response.status_code == 400
    assert sim.count() == 0


def test_conferencing_return_when_the_sync_fails(browser, sim, link_account, user):
    account, _ = link_account(user=user)
    sim.fail("userinfo", status=503, times=None)
    response = browser.get(return_url(account, user), {"last_linked_profile_id": "pro_abc"})
    assert response.status_code == 302
    assert "could not be loaded yet" in messages_of(response)[0]


def test_conferencing_connect_for_an_account_needing_reauthorization(
    browser, sim, link_account, user
):
    account, _ = link_account(user=user, data_center="ca")
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    response = browser.post(conferencing_url(account), {"provider_name": "zoom"})
    assert response.status_code == 409
    assert b'href="/cronofy/connect/?data_center=ca"' in response.content
    assert sim.count() == 0


def test_conferencing_connect_when_cronofy_is_down(browser, sim, link_account, user):
    account, _ = link_account(user=user)
    sim.fail("conferencing_service_authorizations", status=503, times=None)
    response = browser.post(conferencing_url(account), {"provider_name": "zoom"})
    assert response.status_code == 503


# -- the whole story ----------------------------------------------------------


def test_connect_survive_expiry_add_provider_unlink(browser, sim, user, caplog):
    """The issue's "done when": link, expire, add a provider, unlink; no token anywhere."""
    caplog.set_level(logging.DEBUG, logger="django_cronofy_conferencing")
    pages = []
    sim_account = sim.add_account(
        data_center="uk", conferencing_profiles=[sim.profile("zoom", profile_name="Jane Zoom")]
    )
    response = link_through_browser(browser, sim, sim_account, data_center="uk")
    pages += [response.content, response["Location"], *messages_of(response)]
    account = LinkedAccount.objects.get()
    assert account.conferencing_profiles.count() == 1

    # The access token expires at Cronofy and locally: the next sync refreshes it.
    sim.expire_access_token(sim_account.sub)
    LinkedAccount.objects.filter(pk=account.pk).update(
        token_expires_at=timezone.now() - timedelta(minutes=1)
    )
    account.refresh_from_db()
    sync_account(account)
    assert sim.count("token") == 2
    assert [r.data_center for r in sim.requests if r.endpoint == "token"] == ["uk", "uk"]
    account.refresh_from_db()
    assert account.access_token == sim_account.access_token
    assert account.token_expires_at > timezone.now()

    # Add a new conferencing provider.
    page = browser.get(conferencing_url(account))
    pages.append(page.content)
    start = browser.post(conferencing_url(account), {"provider_name": "go_to"})
    back = sim.complete_conferencing_authorization(start["Location"], profile_name="Jane GoTo")
    response = browser.get(back)
    pages += [response.content, *messages_of(response)]
    assert sorted(account.conferencing_profiles.values_list("provider_name", flat=True)) == [
        "go_to",
        "zoom",
    ]

    # Unlink: revoked at Cronofy, gone locally.
    refresh_token = account.refresh_token
    linking.unlink(account)
    assert sim.requests[-1].endpoint == "revoke"
    assert sim.requests[-1].form["token"] == refresh_token
    assert not LinkedAccount.objects.exists()
    assert not ConferencingProfile.objects.exists()
    assert_no_secrets(sim, *pages, caplog.text)


# -- per-user budget and side-effect-free GETs (issue #10 item 1) ----------------------


def test_200_conferencing_connects_spend_the_users_budget_only(
    browser, sim, link_account, user, settings_with
):
    """Before: 200 POSTs made 200 Cronofy calls. After: 12 (API_SYNC_THROTTLE_RATE 12/m)."""
    account, _ = link_account(user=user)
    statuses = []
    with settings_with(API_SYNC_THROTTLE_RATE="12/m"):
        for _ in range(200):
            statuses.append(
                browser.post(conferencing_url(account), {"provider_name": "zoom"}).status_code
            )
    assert sim.count("conferencing_service_authorizations") == 12
    assert statuses.count(302) == 12 and statuses.count(429) == 188


def test_the_conferencing_return_syncs_once_per_flow(browser, sim, link_account, user):
    """Before: every GET of the return URL (an <img> on another site) synced. After: once."""
    account, _ = link_account(user=user)
    start = browser.post(conferencing_url(account), {"provider_name": "zoom"})
    back = sim.complete_conferencing_authorization(start["Location"])
    for _ in range(200):
        assert browser.get(back).status_code == 302
    assert sim.count("userinfo") == 1
    assert ConferencingProfile.objects.filter(account=account).count() == 1


def test_a_return_without_a_valid_flow_changes_nothing(
    browser, sim, link_account, user, other_user, django_assert_num_queries
):
    account, _ = link_account(user=user)
    theirs = oauth_state.issue_return(other_user, account.pk)  # someone else's flow value
    urls = [
        conferencing_url(account, "conferencing_return"),  # an old-style URL
        conferencing_url(account, "conferencing_return", "forged" * 8),
        conferencing_url(account, "conferencing_return", theirs),
    ]
    before = LinkedAccount.objects.values().get(pk=account.pk)
    for url in urls:
        # Only reads: the session, the user, the account.
        with django_assert_num_queries(3):
            response = browser.get(url, {"last_linked_profile_id": "pro_x"})
        assert response.status_code == 302
    assert sim.count() == 0
    assert LinkedAccount.objects.values().get(pk=account.pk) == before


def test_the_callback_spends_the_budget_before_using_the_state(browser, sim, user, settings_with):
    sim_account = sim.add_account()
    with settings_with(API_SYNC_THROTTLE_RATE="1/m"):
        first = connect(browser)
        second = connect(browser)
        assert browser.get(sim.authorize(first, account=sim_account)).status_code == 302
        calls = sim.count()
        back = sim.authorize(second, account=sim_account)
        refused = browser.get(back)
        assert refused.status_code == 429
        assert sim.count() == calls  # no code exchange
    # The state is still pending: the same link works once the budget allows.
    assert browser.get(back).status_code == 302


@pytest.mark.parametrize("pk", [str(2**63), "9" * 40])
def test_out_of_range_account_ids_in_browser_urls_are_a_404(browser, sim, pk):
    for name in ("conferencing_connect", "conferencing_return_without_flow"):
        url = reverse(f"cronofy_conferencing:{name}", args=[1]).replace("/1/", f"/{pk}/")
        assert browser.get(url, {"last_linked_profile_id": "pro_x"}).status_code == 404
        assert browser.post(url, {"provider_name": "zoom"}).status_code in (404, 405)
    assert sim.count() == 0


@pytest.mark.parametrize("value", ["zoom\n", "zoom\r\n", "zo om"])
def test_a_provider_name_with_a_final_newline_is_refused(browser, sim, link_account, user, value):
    """``$`` matches before a final newline: the patterns end in ``\\Z``."""
    account, _ = link_account(user=user)
    assert browser.post(conferencing_url(account), {"provider_name": value}).status_code == 400
    assert (
        browser.post(reverse("cronofy_conferencing:connect"), {"provider_name": value}).status_code
        == 400
    )
    assert sim.count() == 0


def test_a_huge_next_url_is_not_kept_in_the_session(browser):
    """Unbounded sizes: ``next`` rides along in the session with every pending state."""
    huge = "/" + "n" * 2_000_000
    url = connect(browser, next=huge)
    pending = browser.session[oauth_state.SESSION_KEY]
    assert [entry["next_url"] for entry in pending.values()] == [""]
    assert url.startswith("https://app.cronofy.com/oauth/authorize?")


# -- issue 20 §3: mutation audit survivors --------------------------------------


def test_a_refused_callback_is_logged(browser, sim, caplog):
    response = browser.get(reverse("cronofy_conferencing:callback"), {"code": "c", "state": "x"})
    assert response.status_code == 400
    assert "Cronofy OAuth callback refused" in caplog.text


@pytest.mark.parametrize(("length", "exchanged"), [(512, True), (513, False)])
def test_a_code_longer_than_512_characters_is_never_sent(browser, sim, length, exchanged):
    url = connect(browser)
    back = sim.authorize(url)
    state = parse_qs(urlsplit(back).query)["state"][0]
    response = browser.get(
        reverse("cronofy_conferencing:callback"), {"code": "c" * length, "state": state}
    )
    assert response.status_code == 400
    assert (sim.count("token") == 1) is exchanged
    assert not LinkedAccount.objects.exists()


def test_conferencing_return_with_another_error_is_a_400(browser, sim, link_account, user):
    account, _ = link_account(user=user)
    response = browser.get(return_url(account, user), {"error": "server_error"})
    assert response.status_code == 400
    assert b"Cronofy did not complete the connection." in response.content
    assert sim.count() == 0


def test_conferencing_return_for_a_profile_not_synced_yet(browser, sim, link_account, user):
    account, _ = link_account(user=user)
    response = browser.get(return_url(account, user), {"last_linked_profile_id": "pro_later"})
    assert response.status_code == 302
    assert sim.count("userinfo") == 1
    assert messages_of(response) == [
        "Your conferencing provider was connected. It will appear after the next sync."
    ]

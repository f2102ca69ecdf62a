"""One Cronofy application per data center: settings, checks, and every call that
carries client credentials going to the right host with the right application's."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_cronofy_conferencing.accounts import linking, tokens
from django_cronofy_conferencing.accounts.state import SESSION_KEY
from django_cronofy_conferencing.checks import check_accounts_have_applications
from django_cronofy_conferencing.cronofy.applications import (
    NoApplication,
    configured_applications,
    get_application,
    linkable_data_centers,
)
from django_cronofy_conferencing.cronofy.client import budget_for
from django_cronofy_conferencing.cronofy.ratelimit import Rate, RateLimiter
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import simulated_application

pytestmark = pytest.mark.django_db

THREE = ["uk", "de", "au"]
CALLBACK = "http://testserver/cronofy/callback/"
REDIRECT = "https://example.com/return"


def cronofy_settings(**overrides):
    return override_settings(CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, **overrides})


def check_ids(**overrides) -> list[tuple[str, str]]:
    with cronofy_settings(**overrides):
        return [
            (m.id, m.msg)
            for m in run_checks(tags=["cronofy_conferencing"])
            if m.id and m.id.startswith("cronofy_conferencing.E01")
        ]


# -- settings -----------------------------------------------------------------


def test_the_top_level_credentials_are_the_default_data_centers_application():
    application = get_application("us")
    assert application.client_id == settings.CRONOFY_CONFERENCING["CLIENT_ID"]
    assert application.setting == "CRONOFY_CONFERENCING"
    with cronofy_settings(DEFAULT_DATA_CENTER="sg", APPLICATIONS={}):
        assert get_application("sg").client_id == settings.CRONOFY_CONFERENCING["CLIENT_ID"]
        with pytest.raises(NoApplication, match=r"CRONOFY_CONFERENCING\['APPLICATIONS'\]\['us'\]"):
            get_application("us")


def test_each_further_data_center_has_its_own_application():
    ids = {dc: get_application(dc).client_id for dc in ["us", *THREE]}
    assert len(set(ids.values())) == 4
    assert ids["de"] == simulated_application("de")["CLIENT_ID"]


def test_secrets_drop_empty_values_and_stay_out_of_repr():
    secret = "s3cret-value-for-de-000"
    with cronofy_settings(
        APPLICATIONS={
            "de": {
                "CLIENT_ID": "id-de",
                "CLIENT_SECRET": secret,
                "PREVIOUS_CLIENT_SECRETS": ["", "p"],
            }
        }
    ):
        application = get_application("de")
        # An empty secret would be an HMAC key anyone can sign with.
        assert application.secrets == (secret, "p")
        assert secret not in repr(application)
        assert secret not in application.budget_key
    with cronofy_settings(CLIENT_SECRET="top", PREVIOUS_CLIENT_SECRETS=["", "old"]):
        assert get_application("us").secrets == ("top", "old")


@pytest.mark.parametrize(
    "applications, message",
    [
        ([], r"\['APPLICATIONS'\] must be a dict"),
        (
            {"xx": {"CLIENT_ID": "a", "CLIENT_SECRET": "b"}},
            r"\['APPLICATIONS'\]\['xx'\].*not a known",
        ),
        ({"de": "id:secret"}, r"\['APPLICATIONS'\]\['de'\] must be a dict"),
        ({"de": {"CLIENT_ID": "a"}}, r"\['APPLICATIONS'\]\['de'\]\['CLIENT_SECRET'\] is missing"),
        (
            {"de": {"CLIENT_ID": 5, "CLIENT_SECRET": "b"}},
            r"\['de'\]\['CLIENT_ID'\] must be a string",
        ),
        ({"de": {"CLIENT_ID": "a", "CLIENT_SECRET": "b", "SECRET": "c"}}, r"\['de'\]\['SECRET'\]"),
        (
            {"de": {"CLIENT_ID": "a", "CLIENT_SECRET": "b", "PREVIOUS_CLIENT_SECRETS": "c"}},
            r"\['de'\]\['PREVIOUS_CLIENT_SECRETS'\] must be a list",
        ),
    ],
)
def test_a_malformed_application_fails_naming_the_exact_key(applications, message):
    with (
        cronofy_settings(APPLICATIONS=applications),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        configured_applications()


def test_linkable_data_centers_are_those_with_an_application():
    assert list(linkable_data_centers()) == ["us", "uk", "de", "au", "ca", "sg"]
    with cronofy_settings(APPLICATIONS={"de": simulated_application("de")}):
        assert list(linkable_data_centers()) == ["us", "de"]
    with cronofy_settings(APPLICATIONS=[]):  # malformed: nothing is linkable (and E010 says why)
        assert linkable_data_centers() == {}


# -- checks -------------------------------------------------------------------


def test_checks_name_the_exact_key():
    assert check_ids() == []
    assert check_ids(APPLICATIONS="de")[0][0] == "cronofy_conferencing.E010"
    found = check_ids(
        APPLICATIONS={
            "zz": {"CLIENT_ID": "a", "CLIENT_SECRET": "b"},
            "de": {"CLIENT_ID": "a"},
            "uk": {"CLIENT_ID": ["a"], "CLIENT_SECRET": "b"},
            "au": {"CLIENT_ID": "a", "CLIENT_SECRET": "b", "CLIENT_SECRETS": []},
            "us": {"CLIENT_ID": "a", "CLIENT_SECRET": "b"},
        }
    )
    by_id = {}
    for check_id, message in found:
        by_id.setdefault(check_id, []).append(message)
    assert any("['APPLICATIONS']['zz']" in m for m in by_id["cronofy_conferencing.E010"])
    assert any("['au']['CLIENT_SECRETS']" in m for m in by_id["cronofy_conferencing.E010"])
    assert by_id["cronofy_conferencing.E011"] == [
        "CRONOFY_CONFERENCING['APPLICATIONS']['de']['CLIENT_SECRET'] is not set."
    ]
    assert by_id["cronofy_conferencing.E012"] == [
        "CRONOFY_CONFERENCING['APPLICATIONS']['uk']['CLIENT_ID'] must be a string."
    ]
    assert "['APPLICATIONS']['us']" in by_id["cronofy_conferencing.E013"][0]


def test_accounts_in_a_data_center_without_an_application_are_a_warning():
    LinkedAccount.objects.create(data_center="de", sub="acc_1", access_token="a", refresh_token="r")
    assert check_accounts_have_applications(databases=["default"]) == []
    with cronofy_settings(APPLICATIONS={"uk": simulated_application("uk")}):
        warnings = check_accounts_have_applications(databases=["default"])
        assert [w.id for w in warnings] == ["cronofy_conferencing.W004"]
        assert "'de'" in warnings[0].msg
        assert "['APPLICATIONS']['de']" in warnings[0].hint
        # Only with a database to look at (migrate, check --database).
        assert check_accounts_have_applications(databases=None) == []


# -- every call with client credentials -----------------------------------------


@pytest.mark.parametrize("dc_id", THREE)
def test_connect_and_callback_use_the_data_centers_application(scanning_client, user, sim, dc_id):
    browser = scanning_client(user)
    response = browser.post(reverse("cronofy_conferencing:connect"), {"data_center": dc_id})
    assert response.status_code == 302
    url = response["Location"]
    parts = urlsplit(url)
    assert parse_qs(parts.query)["client_id"] == [simulated_application(dc_id)["CLIENT_ID"]]
    assert parts.netloc == f"app-{dc_id}.cronofy.com"
    back = sim.authorize(url)
    assert browser.get(back).status_code == 302
    exchange = next(r for r in sim.requests if r.endpoint == "token")
    assert exchange.data_center == dc_id
    assert exchange.form["client_id"] == simulated_application(dc_id)["CLIENT_ID"]
    assert exchange.form["client_secret"] == simulated_application(dc_id)["CLIENT_SECRET"]
    assert LinkedAccount.objects.get().data_center == dc_id


@pytest.mark.parametrize("dc_id", THREE)
def test_refresh_revoke_authorization_and_channel_use_the_data_centers_application(
    sim, link_account, dc_id
):
    account, sim_account = link_account(data_center=dc_id)
    account.token_expires_at = timezone.now() - timedelta(seconds=1)
    tokens.refresh_access_token(account)
    with cronofy_settings(PUSH_NOTIFICATIONS_CALLBACK_URL="https://example.com/push/"):
        linking.ensure_push_channel(account)
    linking.create_conferencing_authorization(account, REDIRECT, "zoom")
    linking.unlink(account)
    expected = simulated_application(dc_id)
    by_endpoint = {r.endpoint: r for r in sim.requests}
    assert set(by_endpoint) == {
        "token",
        "channels",
        "conferencing_service_authorizations",
        "revoke",
    }
    for request in sim.requests:
        assert request.data_center == dc_id, request.endpoint
        assert request.status in (200, 202), request.endpoint
    for endpoint in ("token", "revoke"):
        assert by_endpoint[endpoint].form["client_id"] == expected["CLIENT_ID"]
        assert by_endpoint[endpoint].form["client_secret"] == expected["CLIENT_SECRET"]
    for endpoint in ("channels", "conferencing_service_authorizations"):
        assert by_endpoint[endpoint].sub == sim_account.sub  # its bearer token, at its host


def test_a_data_center_without_an_application_is_refused_before_any_redirect(
    scanning_client, user, sim
):
    browser = scanning_client(user)
    with cronofy_settings(APPLICATIONS={"uk": simulated_application("uk")}):
        response = browser.get(reverse("cronofy_conferencing:connect"), {"data_center": "de"})
        assert response.status_code == 400
        assert "us, uk" in response.content.decode()
        assert not browser.session.get(SESSION_KEY)
        assert (
            browser.post(reverse("cronofy_conferencing:connect"), {"data_center": "uk"}).status_code
            == 302
        )
    assert sim.count() == 0
    assert LinkedAccount.objects.count() == 0


def test_an_account_whose_data_center_lost_its_application_fails_cleanly(
    sim, link_account, user, scanning_client
):
    """Its sync records an error naming the setting (W004 warns); the API answers 503."""
    account, _ = link_account(data_center="ca", user=user, token_expires_in=-10)
    api = scanning_client(user, api=True)
    with cronofy_settings(APPLICATIONS={}):
        with pytest.raises(NoApplication, match=r"\['APPLICATIONS'\]\['ca'\]"):
            sync_account(account)
        account.refresh_from_db()
        assert "['APPLICATIONS']['ca']" in account.last_sync_error
        assert account.consecutive_failures == 1
        response = api.post(reverse("cronofy_conferencing_api:account-sync", args=[account.pk]))
        assert response.status_code == 503
    assert sim.count("token") == 0


# -- one rate-limit budget per application ---------------------------------------


def test_each_application_has_its_own_rate_limit_budget(fake_clock):
    """Slots are claimed per application: one data center's traffic never delays another's."""
    assert budget_for("us") != budget_for("de")
    assert budget_for("de") == budget_for("de")

    def limiter(dc_id):
        return RateLimiter(
            [Rate(2, 1)],
            clock=fake_clock,
            sleep=fake_clock.sleep,
            safety_margin=0,
            budget=budget_for(dc_id),
        )

    us, de, us_again = limiter("us"), limiter("de"), limiter("us")
    assert [us.reserve() for _ in range(2)] == [1000.0, 1000.5]
    assert [de.reserve() for _ in range(2)] == [1000.0, 1000.5]  # not behind "us"
    assert us_again.reserve() == 1001.0  # another process, the same application: shared

"""The simulated Cronofy itself: tokens, codes, data centers, fault injection, recording."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.exceptions import (
    AccessTokenRejected,
    CronofyUnavailable,
    InvalidGrant,
)
from django_cronofy_conferencing.testing import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ResponsesAdapter,
    SimRequest,
    SimulatedCronofy,
    simulated_cronofy,
)

API = {"us": "https://api.cronofy.com", "uk": "https://api-uk.cronofy.com"}
REDIRECT = "https://app.example.com/cronofy/callback/"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def userinfo(token: str, dc: str = "us") -> requests.Response:
    return requests.get(f"{API[dc]}/v1/userinfo", headers={"Authorization": f"Bearer {token}"})


def token_request(
    form: dict, dc: str = "us", credentials_dc: str | None = None
) -> requests.Response:
    """POST /oauth/token at ``dc`` with the simulator's application of ``credentials_dc``
    (default: ``dc``'s own)."""
    client_id, client_secret = SimulatedCronofy().credentials_for(credentials_dc or dc)
    credentials = {"client_id": client_id, "client_secret": client_secret}
    return requests.post(f"{API[dc]}/oauth/token", data={**credentials, **form})


def authorize(sim, account=None, dc="us", **params) -> str:
    query = {
        "response_type": "code",
        "client_id": sim.credentials_for(dc)[0],
        "redirect_uri": REDIRECT,
        "scope": "read_account",
        "state": "st4te",
        **params,
    }
    app = {"us": "https://app.cronofy.com", "uk": "https://app-uk.cronofy.com"}[dc]
    back = sim.authorize(
        f"{app}/oauth/authorize?" + requests.compat.urlencode(query), account=account
    )
    return parse_qs(urlsplit(back).query)["code"][0]


# -- accounts and tokens ----------------------------------------------------------


def test_userinfo_for_a_live_token(sim):
    zoom = sim.profile("zoom", profile_id="pro_z")
    account = sim.add_account(name="Ann", conferencing_profiles=[zoom])
    response = userinfo(account.access_token)
    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == account.sub and body["name"] == "Ann"
    assert body["cronofy.type"] == "account"
    assert body["cronofy.data"]["conferencing_profiles"] == [zoom]
    assert body["cronofy.data"]["authorization"]["scope"] == "read_account"


def test_unknown_and_missing_tokens_get_401(sim):
    assert userinfo("not-a-token").status_code == 401
    assert requests.get(f"{API['us']}/v1/userinfo").status_code == 401
    assert sim.count("userinfo", status=401) == 2


def test_tokens_only_work_in_their_data_center(sim):
    uk = sim.add_account(data_center="uk")
    assert userinfo(uk.access_token, "uk").status_code == 200
    assert userinfo(uk.access_token, "us").status_code == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": uk.refresh_token}
    assert token_request(refresh, "us").json() == {"error": "invalid_grant"}
    assert token_request(refresh, "uk").status_code == 200
    assert [r.data_center for r in sim.requests] == ["uk", "us", "us", "uk"]


def test_each_data_center_has_its_own_application(sim):
    """Cronofy's data centers are separate instances: another one's credentials fail."""
    uk = sim.add_account(data_center="uk")
    refresh = {"grant_type": "refresh_token", "refresh_token": uk.refresh_token}
    assert token_request(refresh, "uk", credentials_dc="us").json() == {"error": "invalid_client"}
    assert token_request(refresh, "uk", credentials_dc="de").json() == {"error": "invalid_client"}
    assert token_request(refresh, "uk").status_code == 200
    assert sim.credentials_for("uk") != sim.credentials_for("us")


def test_access_tokens_expire_on_the_simulator_clock():
    clock = Clock()
    sim = SimulatedCronofy(clock=clock)
    account = sim.add_account(expires_in=60)
    with simulated_cronofy(sim):
        assert userinfo(account.access_token).status_code == 200
        clock.now += 61
        assert userinfo(account.access_token).status_code == 401


def test_expire_access_token(sim):
    account = sim.add_account()
    sim.expire_access_token(account.sub)
    assert userinfo(account.access_token).status_code == 401


def test_refresh_issues_a_new_access_token(sim):
    account = sim.add_account()
    old = account.access_token
    body = token_request(
        {"grant_type": "refresh_token", "refresh_token": account.refresh_token}
    ).json()
    assert body["access_token"] == account.access_token != old
    assert body["refresh_token"] == account.refresh_token
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert userinfo(body["access_token"]).status_code == 200


def test_refresh_can_rotate_the_refresh_token():
    """``rotate_refresh_tokens``: each refresh issues a new refresh token and the one
    sent stops working, so an answer that is lost or not saved kills the grant."""
    with simulated_cronofy(rotate_refresh_tokens=True) as sim:
        account = sim.add_account()
        sent = account.refresh_token
        body = token_request({"grant_type": "refresh_token", "refresh_token": sent}).json()
        assert body["refresh_token"] == account.refresh_token != sent
        again = token_request({"grant_type": "refresh_token", "refresh_token": sent})
        assert again.json() == {"error": "invalid_grant"}
        newest = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        assert token_request(newest).status_code == 200


def test_refresh_can_omit_the_refresh_token():
    with simulated_cronofy(refresh_returns_refresh_token=False) as sim:
        account = sim.add_account()
        body = token_request(
            {"grant_type": "refresh_token", "refresh_token": account.refresh_token}
        ).json()
        assert "refresh_token" not in body and body["access_token"] == account.access_token


def test_revoked_grant_kills_every_token(sim):
    account = sim.add_account()
    sim.revoke_grant(account.sub)
    assert userinfo(account.access_token).status_code == 401
    response = token_request(
        {"grant_type": "refresh_token", "refresh_token": account.refresh_token}
    )
    assert (response.status_code, response.json()) == (400, {"error": "invalid_grant"})


def test_revoke_endpoint(sim):
    account = sim.add_account()
    form = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
    response = requests.post(
        f"{API['us']}/oauth/token/revoke", data={**form, "token": account.refresh_token}
    )
    assert (response.status_code, response.text) == (200, "")
    assert userinfo(account.access_token).status_code == 401
    # Revoking an unknown token is not an error.
    assert (
        requests.post(f"{API['us']}/oauth/token/revoke", data={**form, "token": "x"}).status_code
        == 200
    )


@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/token/revoke"])
def test_wrong_client_credentials(sim, endpoint):
    form = {"client_id": DEFAULT_CLIENT_ID, "client_secret": "wrong", "grant_type": "refresh_token"}
    response = requests.post(API["us"] + endpoint, data=form)
    assert (response.status_code, response.json()) == (400, {"error": "invalid_client"})


def test_unsupported_grant_type(sim):
    assert token_request({"grant_type": "password"}).json() == {"error": "unsupported_grant_type"}


def test_unknown_endpoint_is_404(sim):
    assert requests.get(f"{API['us']}/v1/calendars").status_code == 404
    assert sim.count("unknown") == 1


def test_json_token_requests_are_understood(sim):
    account = sim.add_account()
    response = requests.post(
        f"{API['us']}/oauth/token",
        json={
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "grant_type": "refresh_token",
            "refresh_token": account.refresh_token,
        },
    )
    assert response.status_code == 200


# -- authorization codes ----------------------------------------------------------------


def test_code_exchange_through_oauth(sim):
    account = sim.add_account(data_center="uk")
    code = authorize(sim, account, dc="uk")
    tokens = linking.exchange_code("uk", code, REDIRECT)
    assert tokens.sub == account.sub
    assert tokens.access_token == account.access_token
    assert tokens.refresh_token == account.refresh_token
    assert tokens.scope == "read_account"
    assert tokens.linking_profile["provider_name"] == "google"


def test_codes_are_single_use(sim):
    code = authorize(sim)
    linking.exchange_code("us", code, REDIRECT)
    with pytest.raises(InvalidGrant):
        linking.exchange_code("us", code, REDIRECT)


def test_codes_expire_after_ten_minutes():
    clock = Clock()
    sim = SimulatedCronofy(clock=clock)
    with simulated_cronofy(sim):
        code = authorize(sim)
        clock.now += 601
        with pytest.raises(InvalidGrant):
            linking.exchange_code("us", code, REDIRECT)
        fresh = authorize(sim)
        clock.now += 599
        assert linking.exchange_code("us", fresh, REDIRECT).sub


def test_code_needs_the_same_redirect_uri_and_data_center(sim):
    code = authorize(sim)
    with pytest.raises(InvalidGrant):
        linking.exchange_code("us", code, REDIRECT + "other/")
    code = authorize(sim)
    with pytest.raises(InvalidGrant):
        linking.exchange_code("uk", code, REDIRECT)


def test_authorize_creates_an_account_in_the_url_data_center(sim):
    code = authorize(sim, dc="uk")
    tokens = linking.exchange_code("uk", code, REDIRECT)
    assert sim.accounts[tokens.sub].data_center == "uk"


def test_authorize_denied_and_bad_requests(sim):
    url = (
        "https://app.cronofy.com/oauth/authorize?response_type=code"
        f"&client_id={DEFAULT_CLIENT_ID}&redirect_uri={REDIRECT}&state=s1"
    )
    back = parse_qs(urlsplit(sim.authorize(url, approve=False)).query)
    assert back == {"error": ["access_denied"], "state": ["s1"]}
    with pytest.raises(ValueError, match="client_id"):
        sim.authorize(url.replace(DEFAULT_CLIENT_ID, "other"))
    with pytest.raises(ValueError, match="not a registered data center"):
        sim.authorize(url.replace("app.cronofy.com", "evil.example"))


# -- conferencing flows and notifications ----------------------------------------------


def test_conferencing_authorization_round_trip(sim):
    account = sim.add_account()
    response = requests.post(
        f"{API['us']}/v1/conferencing_service_authorizations",
        json={"redirect_uri": "https://app.example.com/back", "provider_name": "zoom"},
        headers={"Authorization": f"Bearer {account.access_token}"},
    )
    url = response.json()["authorization_request"]["url"]
    assert url.startswith("https://app.cronofy.com/conferencing_services/")
    back = sim.complete_conferencing_authorization(url, profile_name="new@example.com")
    profile_id = parse_qs(urlsplit(back).query)["last_linked_profile_id"][0]
    assert account.profile(profile_id)["provider_name"] == "zoom"
    denied = sim.complete_conferencing_authorization(url, approve=False)
    assert denied.endswith("error=access_denied")


def test_conferencing_authorization_requires_redirect_uri(sim):
    account = sim.add_account()
    response = requests.post(
        f"{API['us']}/v1/conferencing_service_authorizations",
        json={},
        headers={"Authorization": f"Bearer {account.access_token}"},
    )
    assert response.status_code == 422
    assert "redirect_uri" in response.json()["errors"]


def test_channels_and_signed_notifications(sim):
    account = sim.add_account()
    response = requests.post(
        f"{API['us']}/v1/channels",
        json={"callback_url": "https://app.example.com/hook"},
        headers={"Authorization": f"Bearer {account.access_token}"},
    )
    channel_id = response.json()["channel"]["channel_id"]
    body, headers = sim.notification(account.sub)
    assert json.loads(body)["channel"]["channel_id"] == channel_id
    expected = base64.b64encode(
        hmac.new(DEFAULT_CLIENT_SECRET.encode(), body, hashlib.sha256).digest()
    ).decode()
    assert headers == {"Cronofy-HMAC-SHA256": expected}


def test_notification_without_a_channel_says_how_to_get_one(sim):
    from django_cronofy_conferencing.testing import NoPushChannel

    account = sim.add_account()
    with pytest.raises(NoPushChannel) as excinfo:
        sim.notification(account.sub)
    message = str(excinfo.value)
    assert account.sub in message
    assert "PUSH_NOTIFICATIONS_CALLBACK_URL" in message
    assert "ensure_push_channel" in message
    with pytest.raises(LookupError, match="no such account"):
        sim.notification("acc_nobody")


@pytest.mark.django_db
def test_host_tests_do_not_sleep_through_retries(monkeypatch, settings):
    """Outside this suite (no sleep injected), simulated_cronofy() makes retries instant."""
    import time

    from django_cronofy_conferencing.cronofy import client as client_module
    from django_cronofy_conferencing.models import LinkedAccount
    from django_cronofy_conferencing.sync import sync_account

    monkeypatch.setattr(client_module, "_sleep", time.sleep)  # as in a host project
    settings.CRONOFY_CONFERENCING = {
        **settings.CRONOFY_CONFERENCING,
        "MAX_RETRIES": 2,
        "RETRY_BACKOFF": 5,
    }
    with simulated_cronofy() as cronofy:
        remote = cronofy.add_account()
        account = LinkedAccount.objects.create(
            data_center="us",
            sub=remote.sub,
            access_token=remote.access_token,
            refresh_token=remote.refresh_token,
        )
        cronofy.fail("userinfo", status=503, times=None)
        started = time.monotonic()
        with pytest.raises(CronofyUnavailable):
            sync_account(account)
        elapsed = time.monotonic() - started
    assert len(cronofy.retry_waits) == 2
    assert sum(cronofy.retry_waits) > 3  # what a real sleep would have taken ...
    assert elapsed < 1  # ... and did not
    assert client_module._sleep is time.sleep  # restored after the block


def test_profile_helper_and_state_changes(sim):
    off = sim.profile("go_to", connected=False, profile_name="a b@example.com")
    assert off["profile_relink_url"].startswith("https://app.cronofy.com/v2/relink/go_to?")
    on = sim.profile("zoom")
    assert "profile_relink_url" not in on and on["profile_id"].startswith("pro_")
    account = sim.add_account(conferencing_profiles=[on, off])
    sim.set_connected(account.sub, off["profile_id"], True)
    assert "profile_relink_url" not in account.profile(off["profile_id"])
    sim.set_connected(account.sub, on["profile_id"], False)
    assert account.profile(on["profile_id"])["profile_relink_url"].startswith("https://")
    sim.remove_profile(account.sub, on["profile_id"])
    with pytest.raises(KeyError):
        account.profile(on["profile_id"])


def test_userinfo_body_is_served_verbatim(sim, payload):
    body = payload("userinfo_service_account")
    account = sim.add_account(userinfo_body=body)
    assert account.sub == body["sub"]
    assert userinfo(account.access_token).json() == body


# -- fault injection ----------------------------------------------------------------


def test_fault_status_body_headers_and_count(sim):
    account = sim.add_account()
    sim.fail("userinfo", status=429, headers={"Retry-After": "3"}, body="slow down", times=2)
    first, second, third = (userinfo(account.access_token) for _ in range(3))
    assert (first.status_code, first.text, first.headers["Retry-After"]) == (429, "slow down", "3")
    assert second.status_code == 429
    assert third.status_code == 200
    assert sim.count("userinfo") == 3
    assert sim.count("userinfo", status=429) == 2
    assert sim.faults == []


def test_fault_forever_until_cleared(sim):
    account = sim.add_account()
    sim.fail("userinfo", status=503, times=None)
    assert all(userinfo(account.access_token).status_code == 503 for _ in range(5))
    sim.clear_faults()
    assert userinfo(account.access_token).status_code == 200


def test_fault_exception_is_raised_in_the_client(sim):
    account = sim.add_account()
    sim.fail("userinfo", exception=requests.ReadTimeout)
    with pytest.raises(requests.ReadTimeout):
        userinfo(account.access_token)
    sim.fail("userinfo", exception=requests.ConnectionError("reset"))
    with pytest.raises(requests.ConnectionError, match="reset"):
        userinfo(account.access_token)
    assert [r.status for r in sim.requests] == [None, None]


def test_fault_for_one_account_only(sim):
    one, two = sim.add_account(), sim.add_account()
    sim.fail("userinfo", status=500, sub=one.sub, times=None)
    assert userinfo(one.access_token).status_code == 500
    assert userinfo(two.access_token).status_code == 200


def test_fault_body_only_replaces_the_body(sim):
    account = sim.add_account()
    sim.fail("userinfo", body="{not json")
    response = userinfo(account.access_token)
    assert (response.status_code, response.text) == (200, "{not json")


def test_fault_delay_uses_the_adapter_sleep():
    sim = SimulatedCronofy()
    slept: list[float] = []
    account = sim.add_account()
    sim.fail("userinfo", delay=2.5, status=200, body="{}")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        ResponsesAdapter(sim, sleep=slept.append).install(mock)
        userinfo(account.access_token)
    assert slept == [2.5]


def test_fault_on_token_endpoint_surfaces_through_the_client(sim, sleeps):
    sim.fail("token", status=502, times=None)
    with pytest.raises(CronofyUnavailable):
        linking.exchange_code("us", authorize(sim), REDIRECT)
    assert sim.count("token") == 1  # a code exchange is never retried


def test_counts_by_endpoint(sim):
    account = sim.add_account()
    userinfo(account.access_token)
    userinfo("bad")
    token_request({"grant_type": "refresh_token", "refresh_token": account.refresh_token})
    assert sim.counts() == {"userinfo": 2, "token": 1}
    assert sim.count() == 3
    recorded = sim.requests[-1]
    assert (recorded.endpoint, recorded.method, recorded.path) == ("token", "POST", "/oauth/token")
    assert recorded.form["grant_type"] == "refresh_token"
    assert account.refresh_token not in repr(recorded)


def test_handle_is_transport_independent():
    sim = SimulatedCronofy()
    account = sim.add_account()
    response = sim.handle(
        SimRequest(
            "GET",
            "/v1/userinfo",
            "api.cronofy.com",
            {"authorization": f"Bearer {account.access_token}"},
        ),
        "us",
    )
    assert response.status == 200
    assert json.loads(response.body)["sub"] == account.sub


def test_sim_account_repr_hides_tokens(sim):
    account = sim.add_account()
    assert account.access_token not in repr(account)
    assert account.refresh_token not in repr(account)


def test_unregistered_hosts_are_not_reachable(sim):
    with pytest.raises(requests.ConnectionError):
        requests.get("https://evil.example/v1/userinfo")


def test_401_through_the_client(sim):
    from django_cronofy_conferencing.cronofy.client import get_client

    with pytest.raises(AccessTokenRejected):
        get_client("us").userinfo("unknown-token")

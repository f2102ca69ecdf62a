"""Bodies from Cronofy's own SDK test suites (tests/payloads/sdk, each file's source in
tests/payloads/sdk/SOURCES.md), which differ from the docs' examples: what the app
does with each."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.cronofy.tokens import parse_token_response
from django_cronofy_conferencing.cronofy.userinfo import parse_userinfo
from django_cronofy_conferencing.exceptions import InvalidResponse
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import SimulatedCronofy, simulated_cronofy
from tests.conftest import PAYLOADS

REDIRECT = "https://example.com/cronofy/callback/"

# UserInfo without cronofy.data: account details only, profiles left alone.
NO_DATA = {
    # cronofy/pycronofy pycronofy/tests/test_client.py test_userinfo
    "userinfo_pycronofy_minimal": "userinfo",
    # cronofy/cronofy-ruby spec/lib/cronofy/client_spec.rb "#userinfo"
    "userinfo_ruby_service_account_flat_domain": "service_account",
}
# UserInfo with cronofy.data but no conferencing_profiles key: nothing said of them.
NO_CONFERENCING = {
    # cronofy/cronofy-csharp test/Cronofy.Test/CronofyAccountClientTests/GetUserInfo.cs (older)
    "userinfo_csharp_account_no_conferencing": "account",
    # same file, CanGetUserInfoForApplicationCalendar
    "userinfo_csharp_application_calendar": "application_calendar",
    # cronofy-csharp CronofyEnterpriseConnectAccountClientTests/GetUserInfo.cs
    "userinfo_csharp_service_account": "service_account",
}
TOKEN_RESPONSES = [
    # cronofy-csharp CronofyOAuthClientTests/GetTokenFromCode.cs CanRedeemToken: no sub
    "token_csharp_no_sub",
    # cronofy/pycronofy test_client.py test_get_authorization_from_code: 3 keys only
    "token_pycronofy_code_minimal",
    # cronofy-ruby spec/lib/cronofy/auth_spec.rb "#get_token_from_code": nulls
    "token_ruby_code_null_account_id_linking_profile",
    "token_ruby_code_account_id_only",
    "token_ruby_code_linking_profile_no_account_id",
    # cronofy/cronofy-php tests/CronofyTest.php testRequestToken: apc_ sub
    "token_php_code_application_calendar_shape",
    # cronofy/cronofy-node test/application_calendar_spec.js: expires_in 1800, no sub
    "token_node_application_calendar",
]


def sdk(name: str):
    return json.loads((PAYLOADS / "sdk" / f"{name}.json").read_text())


@pytest.mark.parametrize("name, account_type", sorted(NO_DATA.items()))
def test_userinfo_without_cronofy_data_is_accepted_and_says_nothing_of_profiles(name, account_type):
    info = parse_userinfo(sdk(name))
    assert info.account_type == account_type
    assert info.conferencing_profiles is None


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(NO_DATA))
def test_a_sync_from_a_body_without_cronofy_data_keeps_the_stored_profiles(sim, link_account, name):
    body = sdk(name)
    account, sim_account = link_account(
        sub=body["sub"], conferencing_profiles=[sim.profile("zoom"), sim.profile("go_to")]
    )
    sync_account(account)
    sim_account.userinfo_body = body
    result = sync_account(account)
    assert (result.created, result.updated, result.removed, result.unchanged) == (0, 0, 0, 2)
    assert ConferencingProfile.objects.present().count() == 2
    account.refresh_from_db()
    assert account.account_type == NO_DATA[name]
    assert account.userinfo == body


@pytest.mark.parametrize("name, account_type", sorted(NO_CONFERENCING.items()))
def test_userinfo_without_conferencing_profiles_says_nothing_of_them(name, account_type):
    """DESIGN.md "Sync": a missing section leaves the stored rows as they were."""
    info = parse_userinfo(sdk(name))
    assert info.account_type == account_type
    assert info.conferencing_profiles is None
    problem = next(p for p in info.problems if p.section == "conferencing_profiles")
    assert (problem.path, problem.problem, problem.missing) == (
        "cronofy.data.conferencing_profiles",
        "is missing",
        True,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(NO_CONFERENCING))
def test_a_body_without_conferencing_profiles_keeps_the_stored_ones(sim, link_account, name):
    body = sdk(name)
    account, sim_account = link_account(sub=body["sub"], conferencing_profiles=[sim.profile()])
    assert sync_account(account).created == 1
    sim_account.userinfo_body = body
    assert sync_account(account).unchanged == 1
    assert ConferencingProfile.objects.present().count() == 1
    account.refresh_from_db()
    assert {w["path"] for w in account.sync_warnings} >= {"cronofy.data.conferencing_profiles"}


# -- cronofy-node's "returns userinfo": calendar profiles in their older, minimal shape ------

NODE = "userinfo_node_calendar_profiles_minimal"


def test_the_node_body_parses_every_section():
    info = parse_userinfo(sdk(NODE))
    assert info.problems == ()
    assert [p.profile_id for p in info.conferencing_profiles] == [
        "pro_jknsdfk234",
        "pro_gfmdsg51qa",
    ]
    [calendar] = info.calendar_profiles
    assert (calendar.provider_name, calendar.profile_connected, calendar.calendars) == (
        "google",
        None,
        (),
    )


@pytest.mark.django_db
def test_the_node_body_syncs_its_conferencing_profiles_end_to_end(
    user, received, django_capture_on_commit_callbacks
):
    """Linked through the simulated Cronofy's OAuth flow (code exchange, link, first
    sync), then synced again: the conferencing profiles are stored, the calendar
    profile is stored as it came (its connection unknown, not disconnected)."""
    from django_cronofy_conferencing.choices import conferencing_choices
    from django_cronofy_conferencing.models import CalendarProfile

    body = sdk(NODE)
    with simulated_cronofy() as sim, django_capture_on_commit_callbacks(execute=True):
        sim_account = sim.add_account(sub=body["sub"], userinfo_body=body)
        url = linking.authorization_url("us", redirect_uri=REDIRECT, state="s")
        code = parse_qs(urlsplit(sim.authorize(url, account=sim_account)).query)["code"][0]
        result = linking.link_account(user, "us", linking.exchange_code("us", code, REDIRECT))
        assert result.sync_error is None
        assert (result.sync_result.created, result.sync_result.calendar_created) == (2, 1)
        assert sync_account(result.account).unchanged == 2
    account = LinkedAccount.objects.get()
    assert account.sync_warnings == []
    profiles = {p.profile_id: p.profile_connected for p in account.conferencing_profiles.all()}
    assert profiles == {"pro_jknsdfk234": True, "pro_gfmdsg51qa": False}
    calendar = CalendarProfile.objects.get(account=account)
    assert (calendar.profile_id, calendar.profile_connected) == ("pro_n23kjnwrw2", None)
    assert not CalendarProfile.objects.disconnected().exists()
    assert not CalendarProfile.objects.connected().exists()
    choices = conferencing_choices(account, resync=False)
    assert [c.value for c in choices.available] == ["pro_jknsdfk234", "default"]
    assert choices.calendar_profiles_unavailable == []  # unknown is not broken
    assert ("conferencing_profile_added", "pro_jknsdfk234") in received


def test_the_sdk_account_body_with_conferencing_matches_the_documented_one(payload):
    """cronofy-csharp GetUserInfo.cs CanGetUserInfoForAccount: the documented body, but
    with a trailing comma C#'s parser accepts. Strict JSON (RFC 8259) refuses it; the
    app does too, and the data parses the same once the comma is gone."""
    raw = (
        PAYLOADS / "sdk" / "userinfo_csharp_account_conferencing_trailing_comma.json"
    ).read_text()
    with pytest.raises(ValueError):
        json.loads(raw)
    fixed = json.loads(raw.replace("],\n      }", "]\n      }"))
    assert fixed == payload("userinfo_with_calendar_profiles")
    assert len(parse_userinfo(fixed).conferencing_profiles) == 2


def test_the_legacy_email_as_type_body_is_invalid_json():
    """cronofy-csharp EC GetUserInfo.cs (older): trailing comma, so the client's strict
    decoder answers InvalidResponse and nothing is stored (tests/test_client.py)."""
    raw = (PAYLOADS / "sdk" / "userinfo_csharp_legacy_email_as_type.json").read_text()
    with pytest.raises(ValueError):
        json.loads(raw)
    info = parse_userinfo(json.loads(raw.replace('",\n}', '"\n}')))
    assert (info.account_type, info.conferencing_profiles) == ("janed@company.com", None)


@pytest.mark.parametrize("name", TOKEN_RESPONSES)
def test_code_grant_responses_from_the_sdks_parse(name):
    body = sdk(name)
    tokens = parse_token_response(body, expect_sub=True)
    assert tokens.access_token == body["access_token"]
    assert tokens.refresh_token == body["refresh_token"]
    assert tokens.sub == (body.get("sub") or "")
    assert tokens.expires_in == body["expires_in"]


def test_a_refresh_without_refresh_token_parses():
    """pycronofy tests/test_auth.py test_refresh: the old refresh token is kept by the caller."""
    tokens = parse_token_response(sdk("token_pycronofy_refresh_no_refresh_token"), expect_sub=False)
    assert (tokens.access_token, tokens.refresh_token) == ("tail", "")
    with pytest.raises(InvalidResponse, match="refresh_token is missing"):
        parse_token_response(sdk("token_pycronofy_refresh_no_refresh_token"), expect_sub=True)


@pytest.mark.django_db
def test_a_code_exchange_without_sub_asks_userinfo_whose_account_it_is(user):
    omitted = {"sub", "account_id", "linking_profile"}  # the cronofy-csharp shape
    with simulated_cronofy(SimulatedCronofy(code_response_omits=omitted)) as sim:
        sim_account = sim.add_account(data_center="de", conferencing_profiles=[sim.profile()])
        url = linking.authorization_url("de", redirect_uri=REDIRECT, state="s")
        back = sim.authorize(url, account=sim_account)
        code = parse_qs(urlsplit(back).query)["code"][0]
        tokens = linking.exchange_code("de", code, REDIRECT)
        assert tokens.sub == sim_account.sub
        assert [r.endpoint for r in sim.requests] == ["token", "userinfo"]
        linking.link_account(user, "de", tokens)
    account = LinkedAccount.objects.get()
    assert (account.sub, account.data_center) == (sim_account.sub, "de")
    assert account.conferencing_profiles.count() == 1


@pytest.mark.parametrize(
    "body", [[], {"sub": 5}, {"email": "x"}, {"sub": "acc_x", "cronofy.data": []}]
)
def test_a_body_refused_whole_is_a_plain_invalid_response(body):
    """Failure reasons are reported by class name (``failed_by_reason``, queue results):
    the per-field error used inside the parser never leaks out."""
    with pytest.raises(InvalidResponse) as excinfo:
        parse_userinfo(body)
    assert type(excinfo.value) is InvalidResponse

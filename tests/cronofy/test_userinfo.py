"""UserInfo validation: the lenient cases, and malformed bodies through ``sync_account``.

Every malformed body is served by the simulator as the 200 answer to
``GET /v1/userinfo`` after a first successful sync. A body that is not for the
account (or none of whose sections can be read) is refused whole: nothing but
the account's error fields changes. Otherwise each section stands on its own
(DESIGN.md "Sync"): the malformed one is left as stored and reported in
``sync_warnings`` with its JSON path, and the other sections are applied.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_cronofy_conferencing.cronofy import userinfo as payloads
from django_cronofy_conferencing.cronofy.tokens import parse_token_response
from django_cronofy_conferencing.cronofy.userinfo import (
    MAX_DEPTH,
    MAX_PROFILES,
    ConferencingProfileData,
    parse_userinfo,
)
from django_cronofy_conferencing.exceptions import InvalidResponse
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from tests.conftest import load_payload

SUB = "acc_5700a00eb0ccd07000000000"
ACCOUNT_FIELDS = (
    "email",
    "name",
    "zoneinfo",
    "scope",
    "account_type",
    "userinfo",
    "last_synced_at",
    "status",
)


def profiles_state(account) -> list[tuple]:
    return list(
        ConferencingProfile.objects.filter(account=account)
        .order_by("profile_id")
        .values_list(
            "profile_id",
            "provider_name",
            "profile_name",
            "profile_connected",
            "profile_relink_url",
            "first_seen_at",
            "connection_changed_at",
            "removed_at",
        )
    )


def account_state(account) -> dict:
    return LinkedAccount.objects.filter(pk=account.pk).values(*ACCOUNT_FIELDS).get()


def invalid(body) -> str:
    """What is wrong with ``body``: the refusal of the whole body, or the problems of its
    invalid sections ('' when every section present is valid)."""
    try:
        info = parse_userinfo(body)
    except InvalidResponse as exc:
        return str(exc)
    return "; ".join(problem.message for problem in info.problems if not problem.missing)


# -- the lenient cases ------------------------------------------------------


def test_documented_example_parses(payload):
    info = parse_userinfo(payload("userinfo_conferencing_example"), expected_sub=SUB)
    assert info.sub == SUB
    assert (info.email, info.name, info.zoneinfo) == (
        "janed@company.com",
        "Jane Doe",
        "Europe/London",
    )
    assert (info.account_type, info.scope) == ("account", "read_write")
    assert info.conferencing_profiles == (
        ConferencingProfileData("zoom", "pro_jknsdfk234", "example@cronofy.com", True, ""),
        ConferencingProfileData(
            "go_to",
            "pro_gfmdsg51qa",
            "example@cronofy.com",
            False,
            "https://app.cronofy.com/v2/relink/go_to?email=example%40cronofy.com",
        ),
    )


def test_unknown_keys_are_ignored_and_kept_in_raw(payload):
    body = payload("userinfo_conferencing_example")
    body["future_top_level"] = {"x": [1, 2]}
    body["cronofy.data"]["future_section"] = "y"
    body["cronofy.data"]["conferencing_profiles"][0]["profile_future_flag"] = True
    info = parse_userinfo(body)
    assert len(info.conferencing_profiles) == 2
    assert info.raw["future_top_level"] == {"x": [1, 2]}


@pytest.mark.parametrize("provider", ["google_meet_api", "webex", "brand_new_provider"])
def test_unknown_provider_name_is_kept(payload, provider):
    body = payload("userinfo_conferencing_example")
    body["cronofy.data"]["conferencing_profiles"][0]["provider_name"] = provider
    info = parse_userinfo(body)
    assert info.conferencing_profiles[0].provider_name == provider


def test_missing_conferencing_profiles_says_nothing_of_them(payload):
    """DESIGN.md "Sync": a missing section leaves its stored rows as they were (it is
    reported, as missing rather than invalid)."""
    info = parse_userinfo(payload("userinfo_service_account"))
    assert info.conferencing_profiles is None and info.calendar_profiles is None
    assert [(p.path, p.problem, p.missing) for p in info.problems] == [
        ("cronofy.data.conferencing_profiles", "is missing", True),
        ("cronofy.data.profiles", "is missing", True),
    ]
    assert info.details_valid and info.raw is not None
    assert info.account_type == "service_account"
    assert info.name == ""  # absent
    assert info.scope == "service_account/accounts/manage service_account/resources/manage"


def test_empty_conferencing_profiles_list(payload):
    body = payload("userinfo_conferencing_example")
    body["cronofy.data"]["conferencing_profiles"] = []
    assert parse_userinfo(body).conferencing_profiles == ()


def test_connected_profile_with_relink_url_stores_blank(payload):
    body = payload("userinfo_conferencing_example")
    profile = body["cronofy.data"]["conferencing_profiles"][0]
    profile["profile_relink_url"] = "https://app.cronofy.com/v2/relink/zoom"
    assert parse_userinfo(body).conferencing_profiles[0].profile_relink_url == ""


def test_disconnected_profile_without_relink_url_is_blank(payload):
    body = payload("userinfo_conferencing_example")
    del body["cronofy.data"]["conferencing_profiles"][1]["profile_relink_url"]
    assert parse_userinfo(body).conferencing_profiles[1].profile_relink_url == ""


@pytest.mark.parametrize("key", ["email", "name", "zoneinfo", "cronofy.type"])
def test_optional_strings_may_be_null_or_absent(payload, key):
    body = payload("userinfo_conferencing_example")
    body[key] = None
    assert parse_userinfo(body).sub == SUB
    del body[key]
    assert parse_userinfo(body).sub == SUB


def test_missing_authorization_gives_blank_scope(payload):
    body = payload("userinfo_conferencing_example")
    del body["cronofy.data"]["authorization"]
    assert parse_userinfo(body).scope == ""


def test_profile_name_may_be_missing_or_null(payload):
    body = payload("userinfo_conferencing_example")
    del body["cronofy.data"]["conferencing_profiles"][0]["profile_name"]
    body["cronofy.data"]["conferencing_profiles"][1]["profile_name"] = None
    names = [p.profile_name for p in parse_userinfo(body).conferencing_profiles]
    assert names == ["", ""]


def test_a_literal_backslash_u0000_text_is_not_a_nul(payload):
    body = payload("userinfo_conferencing_example")
    body["note"] = "\\u0000 is how JSON spells NUL"
    assert parse_userinfo(body).raw["note"].startswith("\\u0000")


def test_non_ascii_text_is_accepted(payload):
    body = payload("userinfo_conferencing_example")
    body["name"] = "Zoë Ünïcødé 山田"
    body["cronofy.data"]["conferencing_profiles"][0]["profile_name"] = "Zoë's Zoom ✓"
    info = parse_userinfo(body)
    assert info.name == "Zoë Ünïcødé 山田"


def test_exactly_max_profiles_is_accepted(payload):
    body = payload("userinfo_conferencing_example")
    body["cronofy.data"]["conferencing_profiles"] = [
        {"provider_name": "zoom", "profile_id": f"pro_{i}", "profile_connected": True}
        for i in range(MAX_PROFILES)
    ]
    assert len(parse_userinfo(body).conferencing_profiles) == MAX_PROFILES


def test_token_response_without_refresh_token(payload):
    body = payload("token_refresh")
    del body["refresh_token"]
    tokens = parse_token_response(body, expect_sub=False)
    assert tokens.refresh_token == ""
    assert tokens.access_token == "P531x88i05Ld2yXHIQ7WjiEyqlmOHsgI"
    with pytest.raises(InvalidResponse, match="refresh_token is missing"):
        parse_token_response({**body, "sub": "acc_1"}, expect_sub=True)


def test_documented_code_response_parses(payload):
    tokens = parse_token_response(payload("token_authorization_code"), expect_sub=True)
    assert tokens.sub == "acc_5ba21743f408617d1269ea1e"
    assert tokens.expires_in == 3600
    assert tokens.linking_profile["profile_id"] == "pro_n23kjnwrw2"
    assert "P531x88" not in repr(tokens) and "3gBYG1" not in repr(tokens)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"token_type": "mac"}, "token_type"),
        ({"access_token": None}, "access_token is missing"),
        ({"access_token": "has space"}, "access_token is missing"),
        ({"refresh_token": 5}, "refresh_token is not a token"),
        ({"expires_in": "3600"}, "expires_in"),
        ({"expires_in": True}, "expires_in"),
        ({"expires_in": -1}, "expires_in"),
        ({"scope": ["read"]}, "scope"),
        ({"sub": 12345}, "sub is not an id"),
        ({"sub": "acc_ with space"}, "sub is not an id"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_malformed_token_responses(payload, change, message):
    body = {**payload("token_authorization_code"), **change}
    with pytest.raises(InvalidResponse, match=message):
        parse_token_response(body, expect_sub=True)


def test_token_response_must_be_an_object():
    with pytest.raises(InvalidResponse, match="must be a JSON object, got array"):
        parse_token_response([], expect_sub=False)


# -- malformed bodies through sync_account ------------------------------------

P0 = "cronofy.data.conferencing_profiles[0]"
P1 = "cronofy.data.conferencing_profiles[1]"


def _set(*path, value=None, delete=False):
    """A mutation of the valid body: set (or delete) the value at ``path``."""

    def mutate(body):
        target = body
        for key in path[:-1]:
            target = target[key]
        if delete:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return body

    return mutate


def _profile(index, key, **kwargs):
    return _set("cronofy.data", "conferencing_profiles", index, key, **kwargs)


def _raw(text):
    return lambda body: text


def _replace(old, new):
    """Edit the serialized body (for what Python's json.dumps cannot produce)."""
    return lambda body: json.dumps(body).replace(old, new, 1)


def _duplicate(body):
    profiles = body["cronofy.data"]["conferencing_profiles"]
    profiles[1]["profile_id"] = profiles[0]["profile_id"]
    return body


def _too_many(body):
    body["cronofy.data"]["conferencing_profiles"] = [
        {"provider_name": "zoom", "profile_id": f"pro_{i}", "profile_connected": True}
        for i in range(MAX_PROFILES + 1)
    ]
    return body


def _deep(body):
    nested: object = "bottom"
    for _ in range(MAX_DEPTH + 5):
        nested = [nested]
    body["cronofy.data"]["unmodelled"] = nested  # a key the app does not model
    return body


RELINK = ("cronofy.data", "conferencing_profiles", 1, "profile_relink_url")

MALFORMED = [
    # (id, mutation, the message must contain)
    ("not-json-html", _raw("<html><body>502 Bad Gateway</body></html>"), "the body is not JSON"),
    ("not-json-truncated", _raw('{"sub": "acc_5700a00e'), "the body is not JSON"),
    ("not-json-empty", _raw(""), "the body is not JSON"),
    ("not-json-invalid-utf8", _raw(b'{"sub": "\xff\xfe\xfa"}'), "the body is not UTF-8"),
    ("json-list", _raw("[]"), "the body must be a JSON object, got array"),
    ("json-string", _raw('"userinfo"'), "the body must be a JSON object, got string"),
    ("json-null", _raw("null"), "the body must be a JSON object, got null"),
    ("json-number", _raw("42"), "the body must be a JSON object, got number"),
    ("json-true", _raw("true"), "the body must be a JSON object, got boolean"),
    ("nested-beyond-the-decoder", _raw("[" * 100_000 + "]" * 100_000), "nested too deeply"),
    ("nested-deeper-than-max", _deep, f"nested more than {MAX_DEPTH} levels"),
    ("sub-missing", _set("sub", delete=True), "sub is missing"),
    ("sub-number", _set("sub", value=12345), "sub must be a string, got number"),
    ("sub-null", _set("sub", value=None), "sub must be a string, got null"),
    ("sub-empty", _set("sub", value=""), "sub must not be empty"),
    ("sub-with-spaces", _set("sub", value="acc_57 00"), "sub must be printable ASCII"),
    ("sub-foreign", _set("sub", value="acc_someone_else"), "sub belongs to another"),
    ("sub-too-long", _set("sub", value="a" * 256), "sub is longer than 255"),
    ("email-number", _set("email", value=7), "email must be a string, got number"),
    ("email-too-long", _set("email", value="a" * 250 + "@x.io"), "email is longer than 254"),
    ("email-nul", _set("email", value="jane\x00@company.com"), "email contains a NUL"),
    ("name-object", _set("name", value={"first": "Jane"}), "name must be a string, got object"),
    ("name-too-long", _set("name", value="J" * 256), "name is longer than 255"),
    ("name-lone-surrogate", _replace('"Jane Doe"', '"Jane \\ud800"'), "name is not valid Unicode"),
    ("zoneinfo-boolean", _set("zoneinfo", value=True), "zoneinfo must be a string, got boolean"),
    ("zoneinfo-too-long", _set("zoneinfo", value="Z" * 65), "zoneinfo is longer than 64"),
    ("type-array", _set("cronofy.type", value=["account"]), "cronofy.type must be a string"),
    ("type-too-long", _set("cronofy.type", value="t" * 65), "cronofy.type is longer than 64"),
    ("email-infinity", _replace('"janed@company.com"', "Infinity"), "email must be a string"),
    ("nan-in-unknown-key", _replace('"zoneinfo"', '"x": NaN, "zoneinfo"'), "NaN or Infinity"),
    (
        "nul-in-unknown-key",
        _set("cronofy.data", "unmodelled", value=["a\x00b"]),
        "the body contains",
    ),
    ("surrogate-in-unknown-key", _replace('"profiles": []', '"p": "\\udfff"'), "not valid Unicode"),
    ("data-array", _set("cronofy.data", value=[]), "cronofy.data must be an object, got array"),
    ("data-null", _set("cronofy.data", value=None), "cronofy.data must be an object, got null"),
    ("data-string", _set("cronofy.data", value="{}"), "cronofy.data must be an object, got string"),
    (
        "authorization-array",
        _set("cronofy.data", "authorization", value=["read_write"]),
        "cronofy.data.authorization must be an object",
    ),
    (
        "scope-number",
        _set("cronofy.data", "authorization", "scope", value=1),
        "cronofy.data.authorization.scope must be a string",
    ),
    (
        "scope-too-long",
        _set("cronofy.data", "authorization", "scope", value="s" * 4097),
        "cronofy.data.authorization.scope is longer than 4096",
    ),
    (
        "profiles-object",
        _set("cronofy.data", "conferencing_profiles", value={"0": {}}),
        "cronofy.data.conferencing_profiles must be an array, got object",
    ),
    (
        "profiles-null",
        _set("cronofy.data", "conferencing_profiles", value=None),
        "cronofy.data.conferencing_profiles must be an array, got null",
    ),
    (
        "profiles-string",
        _set("cronofy.data", "conferencing_profiles", value="zoom"),
        "cronofy.data.conferencing_profiles must be an array, got string",
    ),
    ("profiles-too-many", _too_many, f"has more than {MAX_PROFILES} entries"),
    (
        "profile-string",
        _set("cronofy.data", "conferencing_profiles", 0, value="pro_jknsdfk234"),
        f"{P0} must be an object, got string",
    ),
    (
        "profile-null",
        _set("cronofy.data", "conferencing_profiles", 1, value=None),
        f"{P1} must be an object, got null",
    ),
    (
        "profile-array",
        _set("cronofy.data", "conferencing_profiles", 0, value=[]),
        f"{P0} must be an object, got array",
    ),
    ("profile-id-missing", _profile(0, "profile_id", delete=True), f"{P0}.profile_id is missing"),
    ("profile-id-empty", _profile(0, "profile_id", value=""), f"{P0}.profile_id must not be empty"),
    ("profile-id-blank", _profile(0, "profile_id", value="  "), f"{P0}.profile_id must not be"),
    ("profile-id-number", _profile(1, "profile_id", value=5), f"{P1}.profile_id must be a string"),
    ("profile-id-null", _profile(0, "profile_id", value=None), f"{P0}.profile_id must be a string"),
    (
        "profile-id-spaces",
        _profile(0, "profile_id", value="pro_jkn sdfk234"),
        f"{P0}.profile_id must be printable ASCII",
    ),
    (
        "profile-id-non-ascii",
        _profile(0, "profile_id", value="pro_é"),
        f"{P0}.profile_id must be printable ASCII",
    ),
    (
        "profile-id-too-long",
        _profile(0, "profile_id", value="p" * 256),
        f"{P0}.profile_id is longer than 255",
    ),
    ("profile-id-duplicated", _duplicate, f"{P1}.profile_id duplicates an earlier profile"),
    (
        "provider-missing",
        _profile(0, "provider_name", delete=True),
        f"{P0}.provider_name is missing",
    ),
    (
        "provider-number",
        _profile(0, "provider_name", value=3),
        f"{P0}.provider_name must be a string, got number",
    ),
    (
        "provider-null",
        _profile(1, "provider_name", value=None),
        f"{P1}.provider_name must be a string, got null",
    ),
    ("provider-empty", _profile(0, "provider_name", value=""), f"{P0}.provider_name must not be"),
    (
        "provider-too-long",
        _profile(0, "provider_name", value="z" * 101),
        f"{P0}.provider_name is longer than 100",
    ),
    (
        "profile-name-number",
        _profile(0, "profile_name", value=1.5),
        f"{P0}.profile_name must be a string, got number",
    ),
    (
        "profile-name-too-long",
        _profile(0, "profile_name", value="n" * 501),
        f"{P0}.profile_name is longer than 500",
    ),
    (
        "profile-name-nul",
        _profile(1, "profile_name", value="a\x00b"),
        f"{P1}.profile_name contains a NUL character",
    ),
    (
        "connected-string-true",
        _profile(0, "profile_connected", value="true"),
        f"{P0}.profile_connected must be a boolean, got string",
    ),
    (
        "connected-string-false",
        _profile(1, "profile_connected", value="false"),
        f"{P1}.profile_connected must be a boolean, got string",
    ),
    (
        "connected-one",
        _profile(0, "profile_connected", value=1),
        f"{P0}.profile_connected must be a boolean, got number",
    ),
    (
        "connected-null",
        _profile(0, "profile_connected", value=None),
        f"{P0}.profile_connected must be a boolean, got null",
    ),
    (
        "connected-missing",
        _profile(0, "profile_connected", delete=True),
        f"{P0}.profile_connected is missing",
    ),
    (
        "relink-javascript",
        _set(*RELINK, value="javascript:alert(document.cookie)"),
        f"{P1}.profile_relink_url must be an https URL",
    ),
    (
        "relink-http",
        _set(*RELINK, value="http://app.cronofy.com/v2/relink/go_to"),
        f"{P1}.profile_relink_url must be an https URL",
    ),
    (
        "relink-data",
        _set(*RELINK, value="data:text/html;base64,PHNjcmlwdD4="),
        f"{P1}.profile_relink_url must be an https URL",
    ),
    (
        "relink-relative",
        _set(*RELINK, value="/v2/relink/go_to"),
        f"{P1}.profile_relink_url must be an https URL",
    ),
    (
        "relink-scheme-relative",
        _set(*RELINK, value="//evil.example/relink"),
        f"{P1}.profile_relink_url must be an https URL",
    ),
    (
        "relink-space",
        _set(*RELINK, value="https://app.cronofy.com/v2/relink go_to"),
        f"{P1}.profile_relink_url contains whitespace",
    ),
    (
        "relink-newline",
        _set(*RELINK, value="https://app.cronofy.com/v2/\nrelink"),
        f"{P1}.profile_relink_url contains whitespace",
    ),
    (
        "relink-nbsp",
        _set(*RELINK, value="https://app.cronofy.com/v2/\u00a0relink"),
        f"{P1}.profile_relink_url contains whitespace",
    ),
    (
        "relink-credentials",
        _set(*RELINK, value="https://user:secret@app.cronofy.com/v2/relink"),
        f"{P1}.profile_relink_url must be an https URL with a host and no credentials",
    ),
    (
        "relink-no-host",
        _set(*RELINK, value="https:///v2/relink"),
        f"{P1}.profile_relink_url must be an https URL with a host",
    ),
    (
        "relink-bad-port",
        _set(*RELINK, value="https://app.cronofy.com:99999/v2/relink"),
        f"{P1}.profile_relink_url is not a valid URL",
    ),
    (
        "relink-number",
        _set(*RELINK, value=42),
        f"{P1}.profile_relink_url must be a string, got number",
    ),
    (
        "relink-object",
        _set(*RELINK, value={"url": "https://app.cronofy.com"}),
        f"{P1}.profile_relink_url must be a string, got object",
    ),
    (
        "relink-too-long",
        _set(*RELINK, value="https://app.cronofy.com/" + "r" * 2048),
        f"{P1}.profile_relink_url is longer than 2048",
    ),
    (
        "relink-nul",
        _set(*RELINK, value="https://app.cronofy.com/\x00"),
        f"{P1}.profile_relink_url contains a NUL",
    ),
    (
        "relink-on-connected-profile-javascript",
        _profile(0, "profile_relink_url", value="javascript:alert(1)"),
        f"{P0}.profile_relink_url must be an https URL",
    ),
]


def test_at_least_thirty_distinct_malformed_bodies():
    ids = [case[0] for case in MALFORMED]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 30


# Which part of the body each malformed case breaks: the body as a whole (refused), a
# section (left as stored, the rest applied), or only the stored JSON of unknown keys.
WHOLE_BODY = ("not-json", "json-", "nested-beyond", "sub-", "data-")
ACCOUNT_CASES = ("email-", "name-", "zoneinfo-", "type-", "authorization-", "scope-")
USERINFO_CASES = ("nested-deeper", "nan-in", "nul-in", "surrogate-in")


def section_of(case_id: str) -> str | None:
    if case_id.startswith(WHOLE_BODY):
        return None
    if case_id.startswith(ACCOUNT_CASES):
        return "account"
    if case_id.startswith(USERINFO_CASES):
        return "userinfo"
    return "conferencing_profiles"


REFUSED = [case for case in MALFORMED if section_of(case[0]) is None]
SECTIONED = [case for case in MALFORMED if section_of(case[0]) is not None]


def test_every_kind_of_case_is_covered():
    sections = {section_of(case[0]) for case in MALFORMED}
    assert sections == {None, "account", "userinfo", "conferencing_profiles"}
    assert len(REFUSED) >= 15 and len(SECTIONED) >= 40


@pytest.fixture
def synced_example(link_account, sim, payload):
    """An account synced_example once from the documented example, and its stored state."""
    body = payload("userinfo_conferencing_example")
    account, _ = link_account(sub=SUB, userinfo_body=body)
    sync_account(account)
    assert ConferencingProfile.objects.filter(account=account).count() == 2
    return account, profiles_state(account), account_state(account)


def _answer(sim, body) -> None:
    if not isinstance(body, str | bytes):
        body = json.dumps(body)
    sim.fail("userinfo", status=200, body=body, headers={"Content-Type": "application/json"})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "mutate, message", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_a_body_with_no_readable_section_is_refused_and_changes_nothing(
    synced_example, sim, payload, mutate, message
):
    account, profiles_before, account_before = synced_example
    _answer(sim, mutate(copy.deepcopy(payload("userinfo_conferencing_example"))))

    with pytest.raises(InvalidResponse) as excinfo:
        sync_account(account)

    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith("Invalid UserInfo response: ")
    assert profiles_state(account) == profiles_before
    assert account_state(account) == account_before
    account.refresh_from_db()
    assert account.consecutive_failures == 1
    assert message in account.last_sync_error
    assert sim.count("userinfo") == 2


RENAMED_PROFILE = "renamed@example.com"
RENAMED_USER = "Jane Renamed"


def _with_other_changes(section: str):
    """A change to the sections the case leaves alone, to see them applied."""

    def change(body):
        if section in ("account", "userinfo"):
            body["cronofy.data"]["conferencing_profiles"][0]["profile_name"] = RENAMED_PROFILE
        if section in ("conferencing_profiles", "userinfo"):
            body["name"] = RENAMED_USER
        return body

    return change


@pytest.mark.django_db
@pytest.mark.parametrize("case_id, mutate, message", SECTIONED, ids=[case[0] for case in SECTIONED])
def test_an_invalid_section_is_left_as_stored_reported_and_the_rest_applied(
    synced_example, sim, payload, caplog, case_id, mutate, message
):
    account, profiles_before, account_before = synced_example
    section = section_of(case_id)
    body = _with_other_changes(section)(copy.deepcopy(payload("userinfo_conferencing_example")))
    _answer(sim, mutate(body))

    with caplog.at_level("WARNING", logger="django_cronofy_conferencing"):
        sync_account(account)

    account.refresh_from_db()
    assert (account.consecutive_failures, account.last_sync_error) == (0, "")
    missing = {"path": "cronofy.data.profiles", "problem": "is missing", "section": "profiles"}
    warnings = [w for w in account.sync_warnings if w != missing]
    assert [w["section"] for w in warnings] == [section]
    assert message.removeprefix("the body ") in f"{warnings[0]['path']} {warnings[0]['problem']}"
    assert warnings[0]["path"] in caplog.text  # logged with its JSON path
    after = account_state(account)
    assert after["userinfo"] == account_before["userinfo"]  # only a valid body's JSON is kept
    if section == "account":
        details = ("email", "name", "zoneinfo", "scope", "account_type")
        assert {k: after[k] for k in details} == {k: account_before[k] for k in details}
    else:
        assert after["name"] == RENAMED_USER
    names = {row[0]: row[2] for row in profiles_state(account)}
    if section == "conferencing_profiles":
        assert profiles_state(account) == profiles_before
    else:
        assert names["pro_jknsdfk234"] == RENAMED_PROFILE


@pytest.mark.django_db
def test_the_warnings_clear_once_every_section_is_valid_again(synced_example, sim, payload):
    account = synced_example[0]
    body = payload("userinfo_conferencing_example")
    body["cronofy.data"]["profiles"] = [{"profile_id": "pro_x"}]  # no provider_name
    _answer(sim, body)
    sync_account(account)
    account.refresh_from_db()
    assert [w["path"] for w in account.sync_warnings] == ["cronofy.data.profiles[0].provider_name"]
    sim.clear_faults()
    sync_account(account)
    account.refresh_from_db()
    assert account.sync_warnings == []


@pytest.mark.django_db
def test_a_valid_body_after_a_refused_one_clears_the_error(synced_example, sim):
    account, profiles_before, _ = synced_example
    sim.fail("userinfo", status=200, body="[]")
    with pytest.raises(InvalidResponse):
        sync_account(account)
    result = sync_account(account)
    assert result.unchanged == 2
    account.refresh_from_db()
    assert (account.last_sync_error, account.consecutive_failures) == ("", 0)
    assert profiles_state(account) == profiles_before


@pytest.mark.django_db
def test_a_first_sync_with_an_invalid_conferencing_section_stores_the_rest(link_account, payload):
    body = payload("userinfo_conferencing_example")
    body["cronofy.data"]["conferencing_profiles"][0]["profile_connected"] = "yes"
    account, _ = link_account(sub=SUB, userinfo_body=body)
    sync_account(account)
    assert not ConferencingProfile.objects.exists()
    account.refresh_from_db()
    assert (account.email, account.userinfo) == ("janed@company.com", {})
    assert account.sync_warnings == [
        {
            "section": "conferencing_profiles",
            "path": "cronofy.data.conferencing_profiles[0].profile_connected",
            "problem": "must be a boolean, got string",
        }
    ]


# -- property: random JSON never raises anything but InvalidResponse ---------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
random_json = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
profile_keys = st.sampled_from(
    ["provider_name", "profile_id", "profile_name", "profile_connected", "profile_relink_url"]
)


@st.composite
def mutated_documented_body(draw):
    """The documented payload with a few values replaced, removed or added."""
    body = load_payload("userinfo_conferencing_example")
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "data", "profile", "profiles"]))
        if where == "top":
            target = body
            key = draw(st.sampled_from(["sub", "email", "name", "zoneinfo", "cronofy.type", "x"]))
        elif where == "data":
            target = body.get("cronofy.data")
            key = draw(st.sampled_from(["authorization", "conferencing_profiles", "profiles"]))
        elif where == "profiles":
            target = body.get("cronofy.data")
            key = "conferencing_profiles"
            if isinstance(target, dict) and isinstance(target.get(key), list):
                target[key].append(draw(random_json))
                continue
        else:
            data = body.get("cronofy.data")
            profiles = data.get("conferencing_profiles") if isinstance(data, dict) else None
            if not isinstance(profiles, list) or not profiles:
                continue
            target = profiles[draw(st.integers(0, len(profiles) - 1))]
            key = draw(profile_keys)
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(random_json)
    return body


def _serve(value) -> str:
    return json.dumps(value)  # NaN/Infinity come out as the literals Python accepts


@pytest.mark.django_db
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=random_json.map(_serve)
    | mutated_documented_body().map(_serve)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
def test_random_bodies_raise_only_invalid_response(synced_example, sim, body):
    account = synced_example[0]
    profiles_before = profiles_state(account)
    account_before = account_state(account)
    sim.fail("userinfo", status=200, body=body)
    try:
        result = sync_account(account)
    except InvalidResponse:
        assert profiles_state(account) == profiles_before
        assert account_state(account) == account_before
    else:
        # Readable after all: each section stored is what was served; the others as before.
        info = parse_userinfo(json.loads(body), expected_sub=SUB)
        after = account_state(account)
        if not info.details_valid:
            for name in ("email", "name", "zoneinfo", "scope", "account_type"):
                assert after[name] == account_before[name]
        if info.raw is None:
            assert after["userinfo"] == account_before["userinfo"]
        if info.conferencing_profiles is None:
            assert profiles_state(account) == profiles_before
            return
        stored = {
            row[0]: row[1:5]
            for row in profiles_state(account)
            if row[7] is None  # present
        }
        assert stored == {
            p.profile_id: (
                p.provider_name,
                p.profile_name,
                p.profile_connected,
                p.profile_relink_url,
            )
            for p in info.conferencing_profiles
        }
        assert result.created + result.updated + result.unchanged == len(stored)


# -- what is kept of keys the app does not model (issue #10 item 6) -----------------------


def test_unknown_keys_are_kept_up_to_the_cap(payload):
    from django_cronofy_conferencing.cronofy.userinfo import MAX_UNKNOWN_KEYS_JSON

    body = payload("userinfo_conferencing_example")
    body["small"] = "kept"
    body["huge"] = "x" * (4 * 1024 * 1024)  # 4 MB: under the body cap, over this one
    body["cronofy.data"]["also_small"] = [1, 2, 3]
    body["cronofy.data"]["also_huge"] = ["y" * 1000] * 1000
    info = parse_userinfo(body)
    assert info.raw["small"] == "kept"
    assert info.raw["cronofy.data"]["also_small"] == [1, 2, 3]
    assert "huge" not in info.raw and "also_huge" not in info.raw["cronofy.data"]
    # Modelled keys are whole; the profiles parsed are the body's.
    assert (
        info.raw["cronofy.data"]["conferencing_profiles"]
        == (body["cronofy.data"]["conferencing_profiles"])
    )
    modelled = len(json.dumps(payload("userinfo_conferencing_example")))
    assert len(json.dumps(info.raw)) <= MAX_UNKNOWN_KEYS_JSON + modelled
    assert MAX_UNKNOWN_KEYS_JSON == 64 * 1024


def test_an_unknown_key_exactly_at_the_cap_is_kept(payload, monkeypatch):
    from django_cronofy_conferencing.cronofy import userinfo as payloads

    body = payload("userinfo_conferencing_example")
    body["k"] = "v" * 10
    size = len(json.dumps({"k": body["k"]}).encode())
    monkeypatch.setattr(payloads, "MAX_UNKNOWN_KEYS_JSON", size)
    assert parse_userinfo(body).raw["k"] == "v" * 10
    monkeypatch.setattr(payloads, "MAX_UNKNOWN_KEYS_JSON", size - 1)
    assert "k" not in parse_userinfo(body).raw


# -- every length limit at the limit, and one past it (issue #10 item 10) -----------------

_TOP = "top"
_PROFILE = "profile"
_AUTH = "authorization"


def _at(body: dict, where: str, key: str, value) -> dict:
    if where == _TOP:
        body[key] = value
    elif where == _AUTH:
        body["cronofy.data"]["authorization"][key] = value
    else:
        body["cronofy.data"]["conferencing_profiles"][0][key] = value
    return body


def _value(key: str, length: int) -> str:
    if key == "profile_relink_url":
        head = "https://app.cronofy.com/relink/"
        return head + "x" * (length - len(head))
    if key == "email":
        return "a" * (length - len("@example.com")) + "@example.com"
    return "x" * length


LIMITS = [
    (_TOP, "sub", payloads.MAX_SUB),
    (_TOP, "email", payloads.MAX_EMAIL),
    (_TOP, "name", payloads.MAX_NAME),
    (_TOP, "zoneinfo", payloads.MAX_ZONEINFO),
    (_TOP, "cronofy.type", payloads.MAX_ACCOUNT_TYPE),
    (_AUTH, "scope", payloads.MAX_SCOPE),
    (_PROFILE, "provider_name", payloads.MAX_PROVIDER_NAME),
    (_PROFILE, "profile_id", payloads.MAX_PROFILE_ID),
    (_PROFILE, "profile_name", payloads.MAX_PROFILE_NAME),
    (_PROFILE, "profile_relink_url", payloads.MAX_RELINK_URL),
]


@pytest.mark.parametrize(("where", "key", "limit"), LIMITS, ids=[k for _, k, _ in LIMITS])
def test_each_length_limit_is_inclusive(payload, where, key, limit):
    at_limit = _at(payload("userinfo_conferencing_example"), where, key, _value(key, limit))
    if key == "profile_relink_url":
        at_limit["cronofy.data"]["conferencing_profiles"][0]["profile_connected"] = False
    assert invalid(at_limit) == ""  # exactly the limit: accepted
    over = _at(payload("userinfo_conferencing_example"), where, key, _value(key, limit + 1))
    if key == "profile_relink_url":
        over["cronofy.data"]["conferencing_profiles"][0]["profile_connected"] = False
    assert re.search(re.escape(key) + r"\S* is longer than", invalid(over))


def test_profiles_at_the_count_limit_and_one_past(payload):
    def body_with(n: int) -> dict:
        body = payload("userinfo_conferencing_example")
        body["cronofy.data"]["conferencing_profiles"] = [
            {"provider_name": "zoom", "profile_id": f"pro_{i}", "profile_connected": True}
            for i in range(n)
        ]
        return body

    assert len(parse_userinfo(body_with(MAX_PROFILES)).conferencing_profiles) == MAX_PROFILES
    over = parse_userinfo(body_with(MAX_PROFILES + 1))
    assert over.conferencing_profiles is None
    assert f"has more than {MAX_PROFILES} entries" in invalid(body_with(MAX_PROFILES + 1))


# -- token responses: scope, sub and token characters ---------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scope": 42}, "scope"),
        ({"scope": "x" * (payloads.MAX_SCOPE + 1)}, "scope"),
        ({"sub": "acc 1"}, "sub"),
        ({"sub": "acc_\x00"}, "sub"),
        ({"sub": "x" * (payloads.MAX_SUB + 1)}, "sub"),
        ({"sub": 12}, "sub"),
        ({"refresh_token": "rt with space"}, "refresh_token"),
        ({"refresh_token": "rt\n"}, "refresh_token"),
        ({"refresh_token": "rté"}, "refresh_token"),
        ({"refresh_token": 7}, "refresh_token"),
        ({"access_token": "at\tx"}, "access_token"),
        ({"access_token": "at_valid_but\n"}, "access_token"),  # "$" would let it through
        ({"sub": "acc_1\n"}, "sub"),
        ({"access_token": ""}, "access_token"),
    ],
)
def test_token_response_fields_are_checked(payload, change, message):
    body = {**payload("token_authorization_code"), **change}
    with pytest.raises(InvalidResponse, match=message):
        parse_token_response(body, expect_sub=True)


def test_token_response_limits_are_inclusive(payload):
    body = {
        **payload("token_authorization_code"),
        "scope": "s" * payloads.MAX_SCOPE,
        "sub": "a" * payloads.MAX_SUB,
    }
    tokens = parse_token_response(body, expect_sub=True)
    assert len(tokens.scope) == payloads.MAX_SCOPE and len(tokens.sub) == payloads.MAX_SUB


def test_a_userinfo_sub_with_a_final_newline_is_refused(payload):
    body = payload("userinfo_conferencing_example")
    body["sub"] += "\n"
    with pytest.raises(InvalidResponse, match="sub"):
        parse_userinfo(body)


CALENDAR_LIMITS = [
    ("profile", "provider_service", payloads.MAX_PROVIDER_SERVICE),
    ("calendar", "calendar_id", payloads.MAX_CALENDAR_ID),
    ("calendar", "calendar_name", payloads.MAX_CALENDAR_NAME),
]


@pytest.mark.parametrize(
    ("where", "key", "limit"), CALENDAR_LIMITS, ids=[k for _, k, _ in CALENDAR_LIMITS]
)
def test_each_calendar_length_limit_is_inclusive(payload, where, key, limit):
    def body_with(length: int) -> dict:
        body = payload("userinfo_with_calendar_profiles")
        profile = body["cronofy.data"]["profiles"][0]
        target = profile if where == "profile" else profile["profile_calendars"][0]
        target[key] = "x" * length
        return body

    assert invalid(body_with(limit)) == ""
    assert key in invalid(body_with(limit + 1))


@pytest.mark.parametrize("calendar_id", ["cal with space", "cal_é", "cal_x\n"])
def test_a_calendar_id_must_be_a_printable_ascii_token(payload, calendar_id):
    body = payload("userinfo_with_calendar_profiles")
    body["cronofy.data"]["profiles"][0]["profile_calendars"][0]["calendar_id"] = calendar_id
    assert "calendar_id must be printable ASCII" in invalid(body)


def test_the_calendar_budget_is_inclusive(payload, monkeypatch):
    body = payload("userinfo_with_calendar_profiles")
    total = sum(len(p["profile_calendars"]) for p in body["cronofy.data"]["profiles"])
    monkeypatch.setattr(payloads, "MAX_CALENDARS", total)
    assert invalid(body) == ""
    monkeypatch.setattr(payloads, "MAX_CALENDARS", total - 1)
    assert f"list more than {total - 1} calendars" in invalid(body)

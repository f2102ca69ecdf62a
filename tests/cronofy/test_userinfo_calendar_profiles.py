"""payloads: ``cronofy.data.profiles`` parsed as strictly as conferencing profiles."""

from __future__ import annotations

import copy

import pytest

from django_cronofy_conferencing.cronofy.userinfo import (
    MAX_CALENDARS,
    MAX_CALENDARS_PER_PROFILE,
    CalendarData,
    parse_userinfo,
)
from tests.conftest import load_payload

BODY = load_payload("userinfo_with_calendar_profiles")


def body_with(change) -> dict:
    body = copy.deepcopy(BODY)
    change(body["cronofy.data"]["profiles"])
    return body


def test_documented_profiles_parse():
    info = parse_userinfo(BODY)
    google, apple = info.calendar_profiles
    assert (google.provider_name, google.provider_service, google.profile_connected) == (
        "google",
        "gsuite",
        True,
    )
    assert google.calendars[0] == CalendarData(
        calendar_id="cal_n23kjnwrw2_jsdfjksn234",
        calendar_name="Home",
        calendar_primary=True,
        calendar_readonly=False,
        calendar_deleted=False,
        calendar_integrated_conferencing_available=True,
    )
    assert apple.profile_relink_url.startswith("https://app.cronofy.com/relink/apple")


def test_unknown_keys_and_absent_optional_fields_are_tolerated():
    def change(profiles):
        profiles[0]["a_future_key"] = {"x": 1}
        profiles[0]["profile_calendars"][0]["calendar_colour"] = "#fff"
        del profiles[0]["profile_calendars"][1]["calendar_integrated_conferencing_available"]
        del profiles[1]["profile_calendars"]
        del profiles[1]["provider_service"]

    google, apple = parse_userinfo(body_with(change)).calendar_profiles
    assert google.calendars[1].calendar_integrated_conferencing_available is False
    assert apple.calendars == () and apple.provider_service == ""


def test_relink_url_is_dropped_while_connected():
    def change(profiles):
        profiles[0]["profile_relink_url"] = "https://app.cronofy.com/relink/google"

    assert parse_userinfo(body_with(change)).calendar_profiles[0].profile_relink_url == ""


def test_no_profiles_key_says_nothing_of_them():
    body = copy.deepcopy(BODY)
    del body["cronofy.data"]["profiles"]
    info = parse_userinfo(body)
    assert info.calendar_profiles is None
    assert [(p.path, p.missing) for p in info.problems] == [("cronofy.data.profiles", True)]


def test_the_older_shape_without_a_connection_state_is_unknown():
    """cronofy-node's "returns userinfo" calendar profiles: provider_name, profile_id and
    profile_name only. Unknown is not "disconnected", and the relink URL is kept."""

    def older(profiles):
        for profile in profiles:
            for key in list(profile):
                if key not in ("provider_name", "profile_id", "profile_name"):
                    del profile[key]
        profiles[1]["profile_relink_url"] = "https://app.cronofy.com/relink/apple"

    info = parse_userinfo(body_with(older))
    google, apple = info.calendar_profiles
    assert (google.profile_connected, google.provider_service, google.calendars) == (None, "", ())
    assert (apple.profile_connected, apple.profile_relink_url) == (
        None,
        "https://app.cronofy.com/relink/apple",
    )
    assert info.problems == ()


def test_an_explicit_null_connection_state_is_still_refused():
    info = parse_userinfo(body_with(_set(0, "profile_connected", None)))
    assert info.calendar_profiles is None
    assert info.problems[0].message == (
        "cronofy.data.profiles[0].profile_connected must be a boolean, got null"
    )


def _set(index, key, value, calendar=None):
    def change(profiles):
        target = profiles[index]
        if calendar is not None:
            target = target["profile_calendars"][calendar]
        if value is KeyError:
            del target[key]
        else:
            target[key] = value

    return change


def _many_calendars(count):
    def change(profiles):
        profiles[0]["profile_calendars"] = [
            {"calendar_id": f"cal_{i}", "calendar_name": "x"} for i in range(count)
        ]

    return change


def _spread_calendars(profiles):
    per = MAX_CALENDARS_PER_PROFILE
    profiles[:] = [
        {
            "provider_name": "google",
            "profile_id": f"pro_{p}",
            "profile_connected": True,
            "profile_calendars": [{"calendar_id": f"cal_{p}_{i}"} for i in range(per)],
        }
        for p in range(MAX_CALENDARS // per + 1)
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.append("pro_x"), "profiles[2] must be an object, got string"),
        (_set(0, "profile_id", KeyError), "profiles[0].profile_id is missing"),
        (_set(1, "profile_id", "pro_n23kjnwrw2"), "duplicates an earlier profile"),
        (_set(0, "provider_name", "goo gle"), "provider_name must be printable ASCII"),
        (_set(0, "provider_service", "s" * 101), "provider_service is longer than 100"),
        (_set(0, "profile_name", 5), "profiles[0].profile_name must be a string, got number"),
        (_set(0, "profile_connected", "yes"), "profile_connected must be a boolean"),
        (_set(1, "profile_relink_url", "http://app.cronofy.com/x"), "must be an https URL"),
        (_set(1, "profile_relink_url", "https://"), "with a host"),
        (_set(0, "profile_calendars", {}), "profile_calendars must be an array, got object"),
        (
            _set(0, "calendar_id", KeyError, calendar=0),
            "profile_calendars[0].calendar_id is missing",
        ),
        (
            _set(0, "calendar_id", "cal_n23kjnwrw2_n1k323nkj23", calendar=0),
            "duplicates an earlier calendar",
        ),
        (_set(0, "calendar_name", "n" * 501, calendar=1), "calendar_name is longer than 500"),
        (_set(0, "calendar_readonly", "no", calendar=1), "calendar_readonly must be a boolean"),
        (
            _set(0, "calendar_integrated_conferencing_available", 1, calendar=0),
            "calendar_integrated_conferencing_available must be a boolean",
        ),
        (_set(0, "calendar_name", "a\x00b", calendar=0), "contains a NUL"),
        (_many_calendars(MAX_CALENDARS_PER_PROFILE + 1), f"more than {MAX_CALENDARS_PER_PROFILE}"),
        (_spread_calendars, f"more than {MAX_CALENDARS} calendars"),
    ],
)
def test_malformed_calendar_profiles_are_reported_naming_the_field(change, message):
    """The calendar section is left as stored; the conferencing profiles still parse."""
    info = parse_userinfo(body_with(change))
    assert info.calendar_profiles is None
    [problem] = info.problems
    assert (problem.section, problem.missing) == ("profiles", False)
    assert message in problem.message
    assert info.conferencing_profiles is not None and len(info.conferencing_profiles) == 2


def test_profiles_must_be_an_array():
    body = copy.deepcopy(BODY)
    body["cronofy.data"]["profiles"] = {"pro_x": {}}
    [problem] = parse_userinfo(body).problems
    assert problem.message == "cronofy.data.profiles must be an array, got object"

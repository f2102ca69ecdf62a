"""The simulator's calendar profiles and event upserts with conferencing, through the
app's client (``CronofyClient.upsert_event`` / ``read_events``)."""

from __future__ import annotations

import json

import pytest

from django_cronofy_conferencing.cronofy.client import CronofyClient
from django_cronofy_conferencing.cronofy.userinfo import parse_userinfo
from django_cronofy_conferencing.exceptions import CronofyValidationError
from tests.conftest import load_payload

START, END = "2030-05-15T15:30:00Z", "2030-05-15T17:00:00Z"


@pytest.fixture
def host(sim):
    account = sim.add_account(
        conferencing_profiles=[
            sim.profile("zoom", profile_id="pro_zoom"),
            sim.profile("go_to", profile_id="pro_goto", connected=False),
        ],
        calendar_profiles=[
            sim.calendar_profile(
                "google",
                profile_id="pro_google",
                calendars=[
                    sim.calendar("Work", calendar_id="cal_work", primary=True),
                    sim.calendar("Plain", calendar_id="cal_plain", integrated=False),
                    sim.calendar("Shared", calendar_id="cal_ro", readonly=True),
                ],
            )
        ],
    )
    return account, CronofyClient("us")


def event(conferencing=None, **extra):
    body = {"event_id": "evt-1", "summary": "Interview", "start": START, "end": END, **extra}
    if conferencing is not None:
        body["conferencing"] = {"profile_id": conferencing}
    return body


def read(client, account) -> list[dict]:
    return client.read_events(account.access_token, tzid="Etc/UTC")["events"]


def test_userinfo_lists_calendar_profiles_in_the_documented_shape(sim):
    documented = load_payload("userinfo_with_calendar_profiles")["cronofy.data"]["profiles"][0]
    entry = sim.calendar_profile("google", provider_service="gsuite")
    assert set(entry) == set(documented) - {"profile_relink_url"}
    assert set(entry["profile_calendars"][0]) == set(documented["profile_calendars"][0])
    account = sim.add_account(calendar_profiles=[entry])
    info = parse_userinfo(sim._userinfo(account), expected_sub=account.sub)
    assert [p.profile_id for p in info.calendar_profiles] == [entry["profile_id"]]
    assert info.calendar_profiles[0].calendars[0].calendar_integrated_conferencing_available


def test_disconnecting_a_calendar_profile_gives_it_an_https_relink_url(sim):
    account = sim.add_account(calendar_profiles=[sim.calendar_profile(profile_id="pro_g")])
    profile = sim.set_calendar_profile_connected(account.sub, "pro_g", False)
    assert profile["profile_relink_url"].startswith("https://")
    assert "profile_relink_url" not in sim.set_calendar_profile_connected(
        account.sub, "pro_g", True
    )


def test_upsert_answers_202_with_an_empty_body_then_pending_then_assigned(sim, host):
    account, client = host
    client.upsert_event(account.access_token, "cal_work", event("pro_zoom"))
    assert sim.requests[-1].endpoint == "upsert_event" and sim.requests[-1].status == 202
    [first] = read(client, account)
    assert first["conferencing"] == {"pending": True}
    assert (first["event_id"], first["calendar_id"], first["summary"]) == (
        "evt-1",
        "cal_work",
        "Interview",
    )
    [second] = read(client, account)
    assert second["conferencing"]["provider_name"] == "zoom"
    assert second["conferencing"]["join_url"].startswith("https://")
    assert second["event_uid"] == first["event_uid"]
    assert sim.events.get(account.sub, "evt-1").status == "assigned"


def test_an_upsert_with_the_same_event_id_updates_the_event(sim, host):
    account, client = host
    client.upsert_event(account.access_token, "cal_work", event("default"))
    client.upsert_event(account.access_token, "cal_work", event(summary="Renamed"))
    [only] = read(client, account)
    assert only["summary"] == "Renamed"
    stored = sim.events.get(account.sub, "evt-1")
    assert stored.updates == 1 and stored.conferencing == {"profile_id": "default"}


def test_a_disconnected_profile_fails_until_relinked(sim, host):
    account, client = host
    sim.events.pending_reads = 0
    body = event("pro_goto")
    body["subscriptions"] = [
        {
            "type": "webhook",
            "uri": "https://host.example/hook",
            "interactions": [{"type": "conferencing_assigned"}, {"type": "conferencing_failing"}],
        }
    ]
    client.upsert_event(account.access_token, "cal_work", body)
    [failing] = read(client, account)
    assert failing["conferencing"] == {"pending": True}
    stored = sim.events.get(account.sub, "evt-1")
    assert stored.status == "failing"
    assert [i["type"] for i in sim.events.interactions] == ["conferencing_failing"]
    sim.set_connected(account.sub, "pro_goto", True)
    [assigned] = read(client, account)  # Cronofy retries: generated once relinked
    assert assigned["conferencing"]["provider_name"] == "go_to"
    assert [i["type"] for i in sim.events.interactions] == [
        "conferencing_failing",
        "conferencing_assigned",
    ]
    assert sim.events.interactions[-1]["uri"] == "https://host.example/hook"


@pytest.mark.parametrize(
    ("calendar_id", "choice", "outcome"),
    [
        ("cal_work", "integrated", ("assigned", "google_meet")),
        ("cal_plain", "integrated", ("failing", None)),
        ("cal_work", "default", ("assigned", "google_meet")),
        ("cal_plain", "default", ("assigned", "zoom")),  # the account's connected profile
    ],
)
def test_integrated_and_default(sim, host, calendar_id, choice, outcome):
    account, client = host
    client.upsert_event(account.access_token, calendar_id, event(choice))
    sim.generate_conferencing(account.sub)
    stored = sim.events.get(account.sub, "evt-1")
    assert (stored.status, stored.details.get("provider_name")) == outcome


def test_explicit_conferencing_is_used_as_given(sim, host):
    account, client = host
    body = event()
    body["conferencing"] = {
        "profile_id": "explicit",
        "provider_description": "Our rooms",
        "join_url": "https://rooms.example/x",
    }
    client.upsert_event(account.access_token, "cal_work", body)
    [read_back] = read(client, account)
    assert read_back["conferencing"] == {
        "provider_description": "Our rooms",
        "join_url": "https://rooms.example/x",
    }


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"event_id", "summary", "start", "end"}),
        (event(summary=""), {"summary"}),
        (event(summary="x" * 1025), {"summary"}),
        (event(description=7), {"description"}),
        (event(start="tomorrow"), {"start"}),
        (event(start=END, end=START), {"end"}),
        (event(start="2030-05-15", end=END), {"end"}),
        (event("pro_not_mine"), {"conferencing.profile_id"}),
        (event(conferencing=""), {"conferencing.profile_id"}),
        ({**event(), "conferencing": "zoom"}, {"conferencing"}),
        (
            {**event(), "conferencing": {"profile_id": "explicit", "join_url": "ftp://x"}},
            {"conferencing.provider_description", "conferencing.join_url"},
        ),
    ],
)
def test_validation_errors_are_422_in_cronofys_shape(sim, host, body, fields):
    account, client = host
    with pytest.raises(CronofyValidationError) as exc:
        client.upsert_event(account.access_token, "cal_work", body)
    assert exc.value.status_code == 422
    assert set(exc.value.errors) == fields
    for problems in exc.value.errors.values():
        assert problems and all(set(p) == {"key", "description"} for p in problems)
    assert sim.events.events == {}


def test_the_documented_422_body_is_parsed(sim, host):
    account, client = host
    documented = load_payload("error_422")
    sim.fail("upsert_event", status=422, body=json.dumps(documented))
    with pytest.raises(CronofyValidationError) as exc:
        client.upsert_event(account.access_token, "cal_work", event())
    assert exc.value.errors == {"event_id": [{"key": "errors.required", "description": "required"}]}
    assert "event_id" in str(exc.value)


def test_read_only_and_unknown_calendars(sim, host):
    from django_cronofy_conferencing.exceptions import CronofyAPIError

    account, client = host
    with pytest.raises(CronofyValidationError) as exc:
        client.upsert_event(account.access_token, "cal_ro", event())
    assert set(exc.value.errors) == {"calendar_id"}
    with pytest.raises(CronofyAPIError) as exc:
        client.upsert_event(account.access_token, "cal_someone_elses", event())
    assert exc.value.status_code == 404


def test_read_events_needs_a_tzid(sim, host):
    account, _client = host
    from django_cronofy_conferencing.testing import SimRequest

    response = sim.handle(
        SimRequest(
            "GET",
            "/v1/events",
            "api.cronofy.com",
            {"authorization": f"Bearer {account.access_token}"},
        ),
        "us",
    )
    assert response.status == 422
    assert json.loads(response.body)["errors"]["tzid"][0]["key"] == "errors.required"


def test_events_need_a_live_token(sim, host):
    from django_cronofy_conferencing.exceptions import AccessTokenRejected

    _account, client = host
    with pytest.raises(AccessTokenRejected):
        client.upsert_event("not-a-token", "cal_work", event())

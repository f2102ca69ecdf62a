"""Calendar profiles (``cronofy.data.profiles``): synced with the conferencing profiles,
in the same transaction, under the same rules, in a fixed number of queries.

Bodies from Cronofy's SDK test suites (``tests/payloads/sdk/``, indexed in its SOURCES.md):

- ``userinfo_csharp_account_conferencing_trailing_comma.json``: cronofy/cronofy-csharp
  test/Cronofy.Test/CronofyAccountClientTests/GetUserInfo.cs, ``CanGetUserInfoForAccount``
  (its trailing comma removed: strict JSON refuses it, as Cronofy never sends it).
- ``userinfo_csharp_account_no_conferencing.json``: the same file, an older version.
- ``userinfo_csharp_application_calendar.json``: the same file,
  ``CanGetUserInfoForApplicationCalendar``.
- ``userinfo_csharp_service_account.json``:
  test/Cronofy.Test/CronofyEnterpriseConnectAccountClientTests/GetUserInfo.cs (no ``profiles``).
- ``userinfo_pycronofy_minimal.json``: cronofy/pycronofy pycronofy/tests/test_client.py
  ``test_userinfo`` (no ``cronofy.data`` at all: nothing said, stored rows kept).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cronofy_conferencing import signals
from django_cronofy_conferencing.models import CalendarProfile, ConferencingProfile
from django_cronofy_conferencing.sync import SyncResult, sync_account
from django_cronofy_conferencing.sync.writes import apply_userinfo_many
from tests.conftest import PAYLOADS
from tests.sync.test_batch import info_for

pytestmark = pytest.mark.django_db

DOCUMENTED_CALENDARS = {
    "pro_n23kjnwrw2": (
        ("google", "gsuite", "example1@cronofy.com", True, ""),
        [
            {
                "calendar_id": "cal_n23kjnwrw2_jsdfjksn234",
                "calendar_name": "Home",
                "calendar_primary": True,
                "calendar_readonly": False,
                "calendar_deleted": False,
                "calendar_integrated_conferencing_available": True,
            },
            {
                "calendar_id": "cal_n23kjnwrw2_n1k323nkj23",
                "calendar_name": "Work",
                "calendar_primary": False,
                "calendar_readonly": True,
                "calendar_deleted": True,
                "calendar_integrated_conferencing_available": True,
            },
        ],
    ),
    "pro_fe145c37de": (
        (
            "apple",
            "icloud",
            "example2@cronofy.com",
            False,
            "https://app.cronofy.com/relink/apple?email=example@cronofy.com",
        ),
        [
            {
                "calendar_id": "cal_fe145c37de_3nkj23wejk1",
                "calendar_name": "Bank Holidays",
                "calendar_primary": False,
                "calendar_readonly": True,
                "calendar_deleted": False,
                "calendar_integrated_conferencing_available": False,
            }
        ],
    ),
}
APPLICATION_CALENDAR = {
    "pro_YYptyBKGewCkrTTz": (
        ("cronofy", "cronofy", "app01", True, ""),
        [
            {
                "calendar_id": "cal_YYptyBKGewCkrTTz_0000000000",
                "calendar_name": "app01",
                "calendar_primary": True,
                "calendar_readonly": False,
                "calendar_deleted": False,
                "calendar_integrated_conferencing_available": False,
            }
        ],
    )
}


def stored(account) -> dict:
    return {
        p.profile_id: (
            (
                p.provider_name,
                p.provider_service,
                p.profile_name,
                p.profile_connected,
                p.profile_relink_url,
            ),
            p.calendars,
        )
        for p in CalendarProfile.objects.filter(account=account)
    }


def body(name: str) -> dict:
    if name == "userinfo_with_calendar_profiles":  # Cronofy's documented example
        return json.loads((PAYLOADS / f"{name}.json").read_text())
    raw = (PAYLOADS / "sdk" / f"{name}.json").read_text()
    return json.loads(raw.replace("],\n      }", "]\n      }"))  # C#'s trailing comma


@pytest.mark.parametrize(
    ("name", "expected", "conferencing"),
    [
        ("userinfo_with_calendar_profiles", DOCUMENTED_CALENDARS, 2),
        ("userinfo_csharp_account_conferencing_trailing_comma", DOCUMENTED_CALENDARS, 2),
        ("userinfo_csharp_account_no_conferencing", DOCUMENTED_CALENDARS, 0),
        ("userinfo_csharp_application_calendar", APPLICATION_CALENDAR, 0),
    ],
)
def test_documented_and_sdk_bodies_sync_calendar_profiles_exactly(
    link_account, name, expected, conferencing
):
    account, _ = link_account(userinfo_body=body(name))
    before = timezone.now()

    result = sync_account(account)

    assert result == SyncResult(created=conferencing, calendar_created=len(expected))
    assert stored(account) == expected
    for profile in CalendarProfile.objects.filter(account=account):
        assert profile.first_seen_at >= before
        assert profile.connection_changed_at is None and profile.removed_at is None
    assert ConferencingProfile.objects.filter(account=account).count() == conferencing
    # Unchanged a second time.
    assert sync_account(account) == SyncResult(
        unchanged=conferencing, calendar_unchanged=len(expected)
    )


@pytest.mark.parametrize("name", ["userinfo_service_account", "userinfo_csharp_service_account"])
def test_no_profiles_key_leaves_the_stored_ones(link_account, sim, payload, name):
    """DESIGN.md "Sync": a missing section leaves its stored rows as they were (and is
    reported); an empty list is what says "none"."""
    account, sim_account = link_account(calendar_profiles=[sim.calendar_profile()])
    assert sync_account(account).calendar_created == 1
    data = payload(name) if name == "userinfo_service_account" else body(name)
    data["sub"] = sim_account.sub
    sim_account.userinfo_body = data

    assert sync_account(account) == SyncResult(calendar_unchanged=1)
    assert CalendarProfile.objects.present().count() == 1
    account.refresh_from_db()
    assert {"section": "profiles", "path": "cronofy.data.profiles", "problem": "is missing"} in (
        account.sync_warnings
    )
    data["cronofy.data"]["profiles"] = []
    assert sync_account(account) == SyncResult(calendar_removed=1)


def test_no_cronofy_data_keeps_the_stored_calendar_profiles(link_account, sim):
    """An older UserInfo shape says nothing about profiles: nothing is removed."""
    account, sim_account = link_account(calendar_profiles=[sim.calendar_profile()])
    sync_account(account)
    data = body("userinfo_pycronofy_minimal")
    data["sub"] = sim_account.sub
    sim_account.userinfo_body = data
    assert sync_account(account) == SyncResult(calendar_unchanged=1)
    assert CalendarProfile.objects.present().count() == 1


@pytest.fixture
def google(link_account, sim):
    account, sim_account = link_account(
        calendar_profiles=[
            sim.calendar_profile("google", profile_id="pro_g", profile_name="g@example.com"),
            sim.calendar_profile("apple", profile_id="pro_a", connected=False),
        ]
    )
    assert sync_account(account) == SyncResult(calendar_created=2)
    return account, sim_account


def test_flip_sets_connection_changed_at_and_relink_url(google, sim):
    account, sim_account = google
    sim.set_calendar_profile_connected(sim_account.sub, "pro_g", False)
    sim.set_calendar_profile_connected(sim_account.sub, "pro_a", True)

    assert sync_account(account) == SyncResult(calendar_updated=2)

    g, a = (
        CalendarProfile.objects.get(profile_id="pro_g"),
        CalendarProfile.objects.get(profile_id="pro_a"),
    )
    assert not g.profile_connected and g.profile_relink_url.startswith("https://")
    assert g.connection_changed_at == account.last_synced_at
    assert a.profile_connected and a.profile_relink_url == ""
    assert list(CalendarProfile.objects.needing_relink()) == [g]


def test_relink_url_is_dropped_while_connected(link_account, sim):
    entry = sim.calendar_profile()
    entry["profile_relink_url"] = "https://app.cronofy.com/relink/google"
    account, _ = link_account(calendar_profiles=[entry])
    sync_account(account)
    assert CalendarProfile.objects.get().profile_relink_url == ""


def test_calendar_change_updates_the_profile(google, sim):
    account, sim_account = google
    sim_account.calendar_profiles[0]["profile_calendars"].append(sim.calendar("Team"))
    sim_account.calendar_profiles[0]["profile_calendars"][0]["calendar_name"] = "Renamed"

    assert sync_account(account) == SyncResult(calendar_updated=1, calendar_unchanged=1)

    names = [c["calendar_name"] for c in CalendarProfile.objects.get(profile_id="pro_g").calendars]
    assert names == ["Renamed", "Team"]


def test_vanished_profile_is_removed_then_restored(google, sim):
    account, sim_account = google
    kept = sim_account.calendar_profiles.pop(1)
    assert sync_account(account) == SyncResult(calendar_removed=1, calendar_unchanged=1)
    assert CalendarProfile.objects.get(profile_id="pro_a").removed_at is not None

    sim_account.calendar_profiles.append(kept)
    assert sync_account(account) == SyncResult(calendar_updated=1, calendar_unchanged=1)
    assert CalendarProfile.objects.get(profile_id="pro_a").removed_at is None


def test_signals_after_commit_for_real_changes_only(
    google, sim, django_capture_on_commit_callbacks
):
    account, sim_account = google
    log = []
    names = ("added", "removed", "disconnected", "reconnected")

    def handler(sender, profile, signal, **kwargs):
        assert sender is CalendarProfile
        log.append(
            (
                next(n for n in names if getattr(signals, f"calendar_profile_{n}") is signal),
                profile.profile_id,
            )
        )

    for name in names:
        getattr(signals, f"calendar_profile_{name}").connect(handler)
    try:
        sim.set_calendar_profile_connected(sim_account.sub, "pro_g", False)
        sim.set_calendar_profile_connected(sim_account.sub, "pro_a", True)
        sim_account.calendar_profiles.append(sim.calendar_profile("office365", profile_id="pro_o"))
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            sync_account(account)
        assert log == []  # nothing before the commit
        for callback in callbacks:
            callback()
        assert sorted(log) == [
            ("added", "pro_o"),
            ("disconnected", "pro_g"),
            ("reconnected", "pro_a"),
        ]
        log.clear()
        sim_account.calendar_profiles.pop()
        with django_capture_on_commit_callbacks(execute=True):
            sync_account(account)
        with django_capture_on_commit_callbacks(execute=True):
            sync_account(account)  # unchanged: nothing more
        assert log == [("removed", "pro_o")]
    finally:
        for name in names:
            getattr(signals, f"calendar_profile_{name}").disconnect(handler)


def test_an_invalid_calendar_section_never_blocks_conferencing_profiles(google, sim):
    """DESIGN.md "Sync": the calendar section is left as stored and reported; the
    conferencing profiles of the same body are applied."""
    account, sim_account = google
    sim_account.calendar_profiles[0]["profile_relink_url"] = "http://insecure.example/relink"
    sim_account.calendar_profiles[0]["profile_connected"] = False
    sim_account.calendar_profiles[1]["profile_calendars"] = "not a list"
    sim_account.conferencing_profiles.append(sim.profile("zoom", profile_id="pro_new_zoom"))
    before = stored(account)

    result = sync_account(account)

    assert stored(account) == before
    assert (result.created, result.calendar_unchanged) == (1, 2)
    assert ConferencingProfile.objects.filter(account=account, profile_id="pro_new_zoom").exists()
    account.refresh_from_db()
    assert account.sync_warnings == [
        {
            "section": "profiles",
            "path": "cronofy.data.profiles[0].profile_relink_url",
            "problem": "must be an https URL",
        }
    ]


@pytest.mark.parametrize(
    ("before", "after", "signal"),
    [
        (None, False, "disconnected"),  # now known to need relinking
        (None, True, None),  # learning it works is no reconnection
        (False, None, None),  # the state went unknown: nothing to tell
        (False, True, "reconnected"),
        (True, None, None),
    ],
)
def test_an_unknown_connection_state_is_no_flip(
    link_account, sim, django_capture_on_commit_callbacks, before, after, signal
):
    """The older shape (no ``profile_connected``) is stored as None: neither connected nor
    disconnected; only a real flip between known states is signalled."""

    def entry(connected):
        profile = sim.calendar_profile("google", profile_id="pro_g", calendars=[])
        if connected is None:
            del profile["profile_connected"]
            profile.pop("profile_relink_url", None)
        else:
            profile["profile_connected"] = connected
        return profile

    account, sim_account = link_account(calendar_profiles=[entry(before)])
    sync_account(account)
    assert CalendarProfile.objects.get(account=account).profile_connected is before
    log = []

    def handler(sender, profile, **kwargs):
        log.append(kwargs["signal"])

    receivers = {
        getattr(signals, f"calendar_profile_{name}"): name
        for name in ("disconnected", "reconnected", "added", "removed")
    }
    for sent in receivers:
        sent.connect(handler, weak=False)
    try:
        sim_account.calendar_profiles[:] = [entry(after)]
        with django_capture_on_commit_callbacks(execute=True):
            result = sync_account(account)
    finally:
        for sent in receivers:
            sent.disconnect(handler)
    profile = CalendarProfile.objects.get(account=account)
    assert profile.profile_connected is after
    assert profile.connection_changed_at is not None and result.calendar_updated == 1
    assert [receivers[s] for s in log] == ([signal] if signal else [])


# -- queries ----------------------------------------------------------------------------------


def fleet_of_profiles(sim, count: int, calendars: int = 20) -> list[dict]:
    return [
        sim.calendar_profile(
            "google",
            profile_id=f"pro_{i:04}",
            calendars=[
                sim.calendar(f"Calendar {j}", calendar_id=f"cal_{i:04}_{j:02}")
                for j in range(calendars)
            ],
        )
        for i in range(count)
    ]


def count_queries(fn) -> int:
    with CaptureQueriesContext(connection) as queries:
        fn()
    return len(queries)


def measure(link_account, sim, count: int) -> dict[str, int]:
    account, sim_account = link_account(
        conferencing_profiles=[sim.profile("zoom"), sim.profile("ms_teams")],
        calendar_profiles=fleet_of_profiles(sim, count),
    )
    counts = {"first": count_queries(lambda: sync_account(account))}
    # Change: a flip, a calendar renamed, a profile gone, one new (of each kind).
    sim.set_calendar_profile_connected(sim_account.sub, "pro_0000", False)
    sim_account.calendar_profiles[-1]["profile_calendars"][3]["calendar_name"] = "Renamed"
    if count > 1:
        sim_account.calendar_profiles.pop(1)
    sim_account.calendar_profiles.append(sim.calendar_profile(profile_id="pro_new"))
    sim_account.conferencing_profiles.append(sim.profile("go_to"))
    sim.set_connected(sim_account.sub, sim_account.conferencing_profiles[0]["profile_id"], False)
    counts["changed"] = count_queries(lambda: sync_account(account))
    counts["unchanged"] = count_queries(lambda: sync_account(account))
    return counts


#: SAVEPOINT, SELECT (lock) the account, SELECT conferencing profiles, SELECT calendar
#: profiles, [INSERT/UPDATE conferencing], [INSERT/UPDATE calendar], UPDATE account, RELEASE.
EXPECTED_QUERIES = {"first": 8, "changed": 10, "unchanged": 6}


def test_query_count_is_the_same_for_1_and_50_profiles_of_20_calendars(link_account, sim):
    one = measure(link_account, sim, 1)
    fifty = measure(link_account, sim, 50)
    assert one == fifty == EXPECTED_QUERIES


def test_unchanged_payload_writes_no_profile_rows(link_account, sim):
    account, _ = link_account(calendar_profiles=fleet_of_profiles(sim, 50))
    sync_account(account)
    tables = (CalendarProfile._meta.db_table, ConferencingProfile._meta.db_table)
    with CaptureQueriesContext(connection) as queries:
        assert sync_account(account) == SyncResult(calendar_unchanged=50)
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and any(table in q["sql"] for table in tables)
    ]
    assert writes == []


def test_more_calendar_profiles_than_one_statement_holds(link_account, sim):
    """200 profiles need several batches under SQLite's 999-parameter limit."""
    account, sim_account = link_account(calendar_profiles=fleet_of_profiles(sim, 200, calendars=2))
    assert sync_account(account) == SyncResult(calendar_created=200)
    for entry in sim_account.calendar_profiles:
        entry["profile_connected"] = False
        entry["profile_relink_url"] = f"https://app.cronofy.com/relink/{entry['profile_id']}"
    assert sync_account(account) == SyncResult(calendar_updated=200)
    assert CalendarProfile.objects.disconnected().count() == 200


@pytest.mark.django_db(transaction=True)
def test_batched_write_syncs_calendar_profiles_like_one_by_one(link_account, sim):
    fleet = [
        link_account(calendar_profiles=fleet_of_profiles(sim, 3, calendars=2))[0] for _ in range(4)
    ]
    for i, account in enumerate(fleet):  # distinct ids per account
        for entry in sim.accounts[account.sub].calendar_profiles:
            entry["profile_id"] += f"_{i}"
    results = apply_userinfo_many([(a, info_for(sim, a)) for a in fleet])
    assert results == [SyncResult(calendar_created=3)] * 4
    sim.set_calendar_profile_connected(fleet[0].sub, "pro_0000_0", False)
    results = apply_userinfo_many([(a, info_for(sim, a)) for a in fleet])
    assert results[0] == SyncResult(calendar_updated=1, calendar_unchanged=2)
    assert results[1:] == [SyncResult(calendar_unchanged=3)] * 3
    assert CalendarProfile.objects.count() == 12
    assert not CalendarProfile.objects.get(profile_id="pro_0000_0").profile_connected

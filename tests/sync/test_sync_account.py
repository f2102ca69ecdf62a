"""sync_account: documented payloads, changes, failures, signals, token refresh, queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cronofy_conferencing import signals
from django_cronofy_conferencing.exceptions import (
    AccessTokenRejected,
    CronofyUnavailable,
    InvalidGrant,
    InvalidResponse,
    ReauthorizationRequired,
)
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import SyncResult, sync_account
from django_cronofy_conferencing.testing import SimulatedCronofy, simulated_cronofy

pytestmark = pytest.mark.django_db


def profiles(account, **filters) -> dict[str, ConferencingProfile]:
    return {
        p.profile_id: p
        for p in ConferencingProfile.objects.filter(account=account, **filters).order_by("pk")
    }


# -- documented payloads --------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["userinfo_conferencing_example", "userinfo_with_calendar_profiles"]
)
def test_documented_account_payloads_sync_to_rows(link_account, payload, name):
    body = payload(name)
    account, _ = link_account(userinfo_body=body)
    before = timezone.now()

    result = sync_account(account)

    calendar_profiles = len(
        body["cronofy.data"]["profiles"]
    )  # see tests/sync/test_calendar_profiles.py
    assert result == SyncResult(created=2, calendar_created=calendar_profiles)
    rows = profiles(account)
    assert set(rows) == {"pro_jknsdfk234", "pro_gfmdsg51qa"}
    zoom, go_to = rows["pro_jknsdfk234"], rows["pro_gfmdsg51qa"]
    assert (zoom.provider_name, zoom.profile_name, zoom.profile_connected) == (
        "zoom",
        "example@cronofy.com",
        True,
    )
    assert zoom.profile_relink_url == ""
    assert (go_to.provider_name, go_to.profile_connected) == ("go_to", False)
    assert (
        go_to.profile_relink_url
        == "https://app.cronofy.com/v2/relink/go_to?email=example%40cronofy.com"
    )
    for row in rows.values():
        assert row.removed_at is None and row.connection_changed_at is None
        assert row.first_seen_at >= before
        assert row.last_seen_at == row.account.last_synced_at
    account.refresh_from_db()
    assert account.sub == "acc_5700a00eb0ccd07000000000"
    assert (account.email, account.name, account.zoneinfo) == (
        "janed@company.com",
        "Jane Doe",
        "Europe/London",
    )
    assert (account.scope, account.account_type) == ("read_write", "account")
    assert account.userinfo == body
    assert account.last_synced_at >= before
    assert (account.last_sync_error, account.consecutive_failures) == ("", 0)


def test_service_account_payload_has_no_profiles(link_account, payload):
    body = payload("userinfo_service_account")
    account, _ = link_account(userinfo_body=body)

    result = sync_account(account)

    assert result == SyncResult()
    assert not ConferencingProfile.objects.exists()
    account.refresh_from_db()
    assert account.sub == "ser_61a8b807a341fc00bee53042"
    assert account.account_type == "service_account"
    assert account.email == "exchange-service-account@example.org"
    assert (account.name, account.zoneinfo) == ("", "")
    assert account.scope == "service_account/accounts/manage service_account/resources/manage"
    assert account.userinfo["cronofy.data"]["service_account"]["domain"] == "example.org"
    assert account.last_synced_at is not None


def test_a_body_without_conferencing_profiles_leaves_the_stored_ones(link_account, sim, payload):
    """DESIGN.md "Sync": a missing section leaves its stored rows as they were (it used
    to mean "none listed" and removed them); an empty list removes them."""
    account, sim_account = link_account(conferencing_profiles=[sim.profile("zoom")])
    sync_account(account)
    body = payload("userinfo_service_account")
    body["sub"] = sim_account.sub
    sim_account.userinfo_body = body
    assert sync_account(account) == SyncResult(unchanged=1)
    assert ConferencingProfile.objects.present().count() == 1
    body["cronofy.data"]["conferencing_profiles"] = []
    assert sync_account(account) == SyncResult(removed=1)
    assert not ConferencingProfile.objects.present().exists()


# -- change semantics -----------------------------------------------------------------


@pytest.fixture
def three(link_account, sim):
    account, sim_account = link_account(
        conferencing_profiles=[
            sim.profile("zoom", profile_id="pro_zoom", profile_name="z@example.com"),
            sim.profile("ms_teams", profile_id="pro_teams", profile_name="t@example.com"),
            sim.profile("go_to", profile_id="pro_goto", connected=False),
        ]
    )
    assert sync_account(account) == SyncResult(created=3)
    return account, sim_account


def test_unchanged_resync_counts_unchanged(three):
    account, _ = three
    first = account.last_synced_at
    assert sync_account(account) == SyncResult(unchanged=3)
    account.refresh_from_db()
    assert account.last_synced_at > first


def test_connection_flip_sets_connection_changed_at_and_relink_url(three, sim):
    account, sim_account = three
    sim.set_connected(sim_account.sub, "pro_zoom", False)
    sim.set_connected(sim_account.sub, "pro_goto", True)
    before = timezone.now()

    assert sync_account(account) == SyncResult(updated=2, unchanged=1)

    rows = profiles(account)
    assert rows["pro_zoom"].profile_connected is False
    assert rows["pro_zoom"].profile_relink_url.startswith("https://app.cronofy.com/v2/relink/zoom")
    assert rows["pro_zoom"].connection_changed_at >= before
    assert rows["pro_goto"].profile_connected is True
    assert rows["pro_goto"].profile_relink_url == ""
    assert rows["pro_goto"].connection_changed_at >= before
    assert rows["pro_teams"].connection_changed_at is None
    assert set(ConferencingProfile.objects.disconnected().values_list("profile_id", flat=True)) == {
        "pro_zoom"
    }


def test_renamed_profile_is_updated_without_connection_change(three, sim):
    account, sim_account = three
    sim_account.profile("pro_teams")["profile_name"] = "renamed@example.com"
    assert sync_account(account) == SyncResult(updated=1, unchanged=2)
    teams = profiles(account)["pro_teams"]
    assert teams.profile_name == "renamed@example.com"
    assert teams.connection_changed_at is None


def test_vanished_profile_is_marked_removed_then_restored(three, sim):
    account, sim_account = three
    first_seen = profiles(account)["pro_teams"].first_seen_at
    saved = sim_account.profile("pro_teams")
    sim.remove_profile(sim_account.sub, "pro_teams")

    assert sync_account(account) == SyncResult(removed=1, unchanged=2)
    teams = profiles(account)["pro_teams"]
    assert teams.removed_at is not None
    assert teams.last_seen_at is None
    assert "pro_teams" not in set(
        ConferencingProfile.objects.present().values_list("profile_id", flat=True)
    )
    # Still absent: nothing more to do, removed_at is kept.
    assert sync_account(account) == SyncResult(unchanged=2)
    assert profiles(account)["pro_teams"].removed_at == teams.removed_at

    sim_account.conferencing_profiles.append(saved)
    assert sync_account(account) == SyncResult(updated=1, unchanged=2)
    restored = profiles(account)["pro_teams"]
    assert restored.removed_at is None
    assert restored.first_seen_at == first_seen
    assert ConferencingProfile.objects.count() == 3


def test_new_profile_is_created(three, sim):
    account, sim_account = three
    sim_account.conferencing_profiles.append(sim.profile("google_meet_api", profile_id="pro_meet"))
    assert sync_account(account) == SyncResult(created=1, unchanged=3)
    assert profiles(account)["pro_meet"].provider_name == "google_meet_api"


def test_profiles_of_other_accounts_are_untouched(three, link_account, sim):
    account, _ = three
    other, _ = link_account(conferencing_profiles=[sim.profile("zoom", profile_id="pro_zoom")])
    assert sync_account(other) == SyncResult(created=1)  # same profile id, other account
    assert sync_account(account) == SyncResult(unchanged=3)
    assert ConferencingProfile.objects.count() == 4


def test_success_clears_error_fields(three, sim):
    account, _ = three
    sim.fail("userinfo", status=503, times=None)
    with pytest.raises(CronofyUnavailable):
        sync_account(account)
    with pytest.raises(CronofyUnavailable):
        sync_account(account)
    account.refresh_from_db()
    assert account.consecutive_failures == 2
    assert "HTTP 503" in account.last_sync_error
    sim.clear_faults()
    sync_account(account)
    account.refresh_from_db()
    assert (account.last_sync_error, account.consecutive_failures) == ("", 0)


def test_failure_records_error_and_keeps_profiles(three, sim):
    account, sim_account = three
    before = {p.profile_id: p.profile_connected for p in profiles(account).values()}
    synced_at = account.last_synced_at
    sim.set_connected(sim_account.sub, "pro_zoom", False)  # a change that must not land
    sim.fail("userinfo", status=500, times=None)

    with pytest.raises(CronofyUnavailable) as excinfo:
        sync_account(account)

    assert excinfo.value.status_code == 500
    assert account.consecutive_failures == 1  # the instance is updated too
    account.refresh_from_db()
    assert account.consecutive_failures == 1
    assert account.last_sync_error == str(excinfo.value)
    assert account.last_synced_at == synced_at
    assert {p.profile_id: p.profile_connected for p in profiles(account).values()} == before


def test_sync_of_a_deleted_account_writes_nothing(link_account, sim):
    account, _ = link_account(conferencing_profiles=[sim.profile()])
    LinkedAccount.objects.filter(pk=account.pk).delete()
    assert sync_account(account) == SyncResult()
    assert not ConferencingProfile.objects.exists()


def test_no_transaction_is_open_during_the_userinfo_call(link_account, sim, monkeypatch):
    account, _ = link_account(conferencing_profiles=[sim.profile()])
    depth_outside = len(connection.savepoint_ids)
    seen = []
    handle = sim.handle

    def spy(request, data_center=None):
        seen.append(len(connection.savepoint_ids))
        return handle(request, data_center)

    monkeypatch.setattr(sim, "handle", spy)
    sync_account(account)
    assert seen == [depth_outside]


# -- signals ------------------------------------------------------------------------


def test_signals_are_sent_after_commit_only(
    link_account, sim, received, django_capture_on_commit_callbacks
):
    account, _ = link_account(conferencing_profiles=[sim.profile(profile_id="pro_a")])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sync_account(account)
    assert received == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert received == [
        ("conferencing_profile_added", "pro_a"),
        ("account_synced", account.pk),
    ]


def test_signals_only_for_real_changes(three, sim, received, django_capture_on_commit_callbacks):
    account, sim_account = three

    with django_capture_on_commit_callbacks(execute=True):
        sync_account(account)
    assert received == [("account_synced", account.pk)]

    received.clear()
    sim.set_connected(sim_account.sub, "pro_zoom", False)
    sim.set_connected(sim_account.sub, "pro_goto", True)
    sim.remove_profile(sim_account.sub, "pro_teams")
    sim_account.conferencing_profiles.append(sim.profile(profile_id="pro_new"))
    with django_capture_on_commit_callbacks(execute=True):
        sync_account(account)
    assert sorted(received) == sorted(
        [
            ("conferencing_profile_disconnected", "pro_zoom"),
            ("conferencing_profile_reconnected", "pro_goto"),
            ("conferencing_profile_removed", "pro_teams"),
            ("conferencing_profile_added", "pro_new"),
            ("account_synced", account.pk),
        ]
    )

    received.clear()
    sim_account.conferencing_profiles.append(
        sim.profile("ms_teams", profile_id="pro_teams", profile_name="t@example.com")
    )
    with django_capture_on_commit_callbacks(execute=True):
        sync_account(account)
    assert received == [("conferencing_profile_added", "pro_teams"), ("account_synced", account.pk)]

    received.clear()
    sim_account.profile("pro_new")["profile_name"] = "renamed"  # a change, but no signal for it
    with django_capture_on_commit_callbacks(execute=True):
        sync_account(account)
    assert received == [("account_synced", account.pk)]


def test_no_signals_on_failure(three, sim, received, django_capture_on_commit_callbacks):
    account, _ = three
    sim.fail("userinfo", status=200, body="[]")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvalidResponse):
        sync_account(account)
    assert received == []


def test_account_synced_carries_the_result(link_account, sim, django_capture_on_commit_callbacks):
    account, _ = link_account(conferencing_profiles=[sim.profile(), sim.profile()])
    results = []

    def handler(sender, account, result, **kwargs):
        results.append((account.last_synced_at is not None, result))

    signals.account_synced.connect(handler)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sync_account(account)
    finally:
        signals.account_synced.disconnect(handler)
    assert results == [(True, SyncResult(created=2))]


# -- token refresh inside sync ---------------------------------------------------------


def endpoints(sim) -> list[tuple[str, int | None]]:
    return [(r.endpoint, r.status) for r in sim.requests]


def test_expired_token_is_refreshed_before_userinfo(link_account, sim):
    account, sim_account = link_account(token_expires_in=-60, conferencing_profiles=[sim.profile()])
    old_access, old_refresh = account.access_token, account.refresh_token

    assert sync_account(account) == SyncResult(created=1)

    assert endpoints(sim) == [("token", 200), ("userinfo", 200)]
    assert sim.requests[0].form["grant_type"] == "refresh_token"
    assert sim.requests[0].form["refresh_token"] == old_refresh
    account.refresh_from_db()
    assert account.access_token == sim_account.access_token != old_access
    assert account.refresh_token == old_refresh
    assert account.token_expires_at > timezone.now() + timedelta(minutes=50)


def test_token_within_the_margin_is_refreshed(link_account, sim):
    account, _ = link_account(token_expires_in=60)  # margin is 300 s
    sync_account(account)
    assert endpoints(sim) == [("token", 200), ("userinfo", 200)]


def test_a_401_refreshes_once_and_retries(link_account, sim):
    account, sim_account = link_account(conferencing_profiles=[sim.profile()])
    old_access = account.access_token
    sim.expire_access_token(sim_account.sub)  # Cronofy forgot it before our expiry time

    assert sync_account(account) == SyncResult(created=1)

    assert endpoints(sim) == [("userinfo", 401), ("token", 200), ("userinfo", 200)]
    account.refresh_from_db()
    assert account.access_token == sim_account.access_token != old_access


def test_a_second_401_raises_reauthorization_required(link_account, sim):
    account, _ = link_account(conferencing_profiles=[sim.profile()])
    sim.fail("userinfo", status=401, times=2)

    with pytest.raises(ReauthorizationRequired) as excinfo:
        sync_account(account)

    assert isinstance(excinfo.value, AccessTokenRejected)
    assert excinfo.value.status_code == 401
    assert endpoints(sim) == [("userinfo", 401), ("token", 200), ("userinfo", 401)]
    assert not ConferencingProfile.objects.exists()
    account.refresh_from_db()
    assert account.consecutive_failures == 1
    assert "HTTP 401" in account.last_sync_error


@pytest.mark.parametrize("trigger", ["expired", "401"])
def test_invalid_grant_requires_reauthorization_once(
    link_account, sim, received, django_capture_on_commit_callbacks, trigger
):
    account, sim_account = link_account(
        token_expires_in=-60 if trigger == "expired" else 3600,
        conferencing_profiles=[sim.profile()],
    )
    sim.revoke_grant(sim_account.sub)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvalidGrant):
        sync_account(account)

    assert sim.count("token", status=400) == 1
    account.refresh_from_db()
    assert account.status == LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    assert account.consecutive_failures == 1
    assert "invalid_grant" in account.last_sync_error
    assert received == [("account_reauthorization_required", account.pk)]

    requests_before = sim.count()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ReauthorizationRequired):
        sync_account(account)
    assert sim.count() == requests_before  # no HTTP at all
    assert received == [("account_reauthorization_required", account.pk)]  # not sent again
    account.refresh_from_db()
    assert account.consecutive_failures == 2


def test_refresh_without_refresh_token_keeps_the_old_one(sleeps):
    simulator = SimulatedCronofy(refresh_returns_refresh_token=False)
    with simulated_cronofy(simulator) as sim:
        sim_account = sim.add_account(conferencing_profiles=[sim.profile()])
        account = LinkedAccount.objects.create(
            data_center="us",
            sub=sim_account.sub,
            access_token=sim_account.access_token,
            refresh_token=sim_account.refresh_token,
            token_expires_at=timezone.now() - timedelta(seconds=1),
        )
        old_refresh = sim_account.refresh_token

        assert sync_account(account) == SyncResult(created=1)

        assert endpoints(sim) == [("token", 200), ("userinfo", 200)]
        account.refresh_from_db()
        assert account.refresh_token == old_refresh
        assert account.access_token == sim_account.access_token
        # And the kept refresh token still works.
        LinkedAccount.objects.filter(pk=account.pk).update(token_expires_at=timezone.now())
        account.refresh_from_db()
        sync_account(account)
        assert sim.count("token", status=200) == 2


def test_refresh_failure_5xx_leaves_the_account_active(link_account, sim):
    account, _ = link_account(token_expires_in=-60)
    sim.fail("token", status=503, times=None)
    with pytest.raises(CronofyUnavailable):
        sync_account(account)
    account.refresh_from_db()
    assert account.status == LinkedAccount.Status.ACTIVE
    assert account.consecutive_failures == 1
    assert sim.count("userinfo") == 0


# -- query counts -------------------------------------------------------------------

# Both backends issue the same statements. Inside the test's transaction
# atomic() is a SAVEPOINT/RELEASE pair: SAVEPOINT, SELECT the account (FOR
# UPDATE on PostgreSQL), SELECT its conferencing profiles, SELECT its calendar
# profiles, [INSERT new], [UPDATE changed], UPDATE the account, RELEASE.
# (Calendar profiles: tests/sync/test_calendar_profiles.py.)
QUERIES = {
    "first": {"sqlite": 7, "postgresql": 7},
    "changed": {"sqlite": 8, "postgresql": 8},
    "unchanged": {"sqlite": 6, "postgresql": 6},
}


@pytest.mark.parametrize("count", [1, 100])
def test_query_count_does_not_grow_with_profiles(
    link_account, sim, django_assert_num_queries, count
):
    account, sim_account = link_account(
        conferencing_profiles=[sim.profile(profile_id=f"pro_{i:04}") for i in range(count)]
    )
    vendor = connection.vendor

    with django_assert_num_queries(QUERIES["first"][vendor]):
        assert sync_account(account) == SyncResult(created=count)

    sim.set_connected(sim_account.sub, "pro_0000", False)
    if count > 1:
        sim.remove_profile(sim_account.sub, f"pro_{count - 1:04}")
    sim_account.conferencing_profiles.append(sim.profile(profile_id="pro_new"))
    with django_assert_num_queries(QUERIES["changed"][vendor]):
        result = sync_account(account)
    assert (result.created, result.updated + result.removed) == (1, 1 if count == 1 else 2)

    with django_assert_num_queries(QUERIES["unchanged"][vendor]):
        assert sync_account(account).changed is False


@pytest.mark.parametrize("count", [1, 100])
def test_unchanged_resync_writes_no_profile_rows(link_account, sim, count):
    account, _ = link_account(conferencing_profiles=[sim.profile() for _ in range(count)])
    sync_account(account)
    table = ConferencingProfile._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        assert sync_account(account) == SyncResult(unchanged=count)

    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and table in q["sql"]
    ]
    assert writes == []
    # ...while the account row itself is written (last_synced_at).
    assert any(
        q["sql"].startswith("UPDATE") and LinkedAccount._meta.db_table in q["sql"]
        for q in queries.captured_queries
    )


def test_more_profiles_than_one_sqlite_statement_holds(link_account, sim):
    """250 rows need several INSERT/UPDATE batches under SQLite's 999-parameter limit."""
    count = 250
    account, sim_account = link_account(
        conferencing_profiles=[sim.profile(profile_id=f"pro_{i:04}") for i in range(count)]
    )
    assert sync_account(account) == SyncResult(created=count)
    for entry in sim_account.conferencing_profiles:
        entry["profile_connected"] = False
        entry["profile_relink_url"] = f"https://app.cronofy.com/v2/relink/{entry['profile_id']}"
    assert sync_account(account) == SyncResult(updated=count)
    assert ConferencingProfile.objects.disconnected().count() == count
    assert set(ConferencingProfile.objects.values_list("profile_relink_url", flat=True)) == {
        f"https://app.cronofy.com/v2/relink/pro_{i:04}" for i in range(count)
    }


def test_fault_on_userinfo_timeout_keeps_data(three, sim):
    account, _ = three
    before = sorted(profiles(account))
    sim.fail("userinfo", exception=requests.ReadTimeout, times=None)
    with pytest.raises(CronofyUnavailable, match="timed out"):
        sync_account(account)
    assert sorted(profiles(account, removed_at__isnull=True)) == before


def test_sync_of_accounts_loaded_from_the_database(link_account, sim):
    """What the fleet does: tokens come from the column, decrypted on access."""
    account, _ = link_account(token_expires_in=-60, conferencing_profiles=[sim.profile()])
    assert sync_account(LinkedAccount.objects.get(pk=account.pk)) == SyncResult(created=1)
    assert sync_account(LinkedAccount.objects.get(pk=account.pk)) == SyncResult(unchanged=1)
    assert endpoints(sim) == [("token", 200), ("userinfo", 200), ("userinfo", 200)]


def test_a_userinfo_without_scope_keeps_the_stored_scope(link_account, payload):
    """Cronofy's older or minimal bodies carry no cronofy.data.authorization: the scope
    the grant was given (stored at linking) stays; a body with a scope replaces it."""
    body = payload("userinfo_conferencing_example")
    body["cronofy.data"].pop("authorization", None)
    account, _ = link_account(userinfo_body=body)
    LinkedAccount.objects.filter(pk=account.pk).update(scope="read_account read_events")
    account.refresh_from_db()

    sync_account(account)

    account.refresh_from_db()
    assert account.last_synced_at is not None
    assert account.scope == "read_account read_events"


def test_sync_result_changed_and_immutable():
    import dataclasses

    assert SyncResult().changed is False
    assert SyncResult(unchanged=3, calendar_unchanged=2).changed is False
    for name in (
        "created",
        "updated",
        "removed",
        "calendar_created",
        "calendar_updated",
        "calendar_removed",
    ):
        assert SyncResult(**{name: 1}).changed is True, name
    result = SyncResult(created=1)
    assert hash(result) == hash(SyncResult(created=1))  # a value: usable as a key
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.created = 2

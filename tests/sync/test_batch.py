"""apply_userinfo_many: sync_accounts' batched write does what apply_userinfo does for each."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_cronofy_conferencing import signals
from django_cronofy_conferencing.cronofy.userinfo import parse_userinfo
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.sync import SyncResult, sync_account
from django_cronofy_conferencing.sync.writes import apply_userinfo, apply_userinfo_many

pytestmark = pytest.mark.django_db(transaction=True)

SIGNALS = {
    "added": signals.conferencing_profile_added,
    "removed": signals.conferencing_profile_removed,
    "disconnected": signals.conferencing_profile_disconnected,
    "reconnected": signals.conferencing_profile_reconnected,
}


@pytest.fixture
def batch_signals():
    """Every signal sent, as (name, account pk, provider name or result)."""
    log: list[tuple] = []
    handlers = {}
    for name, signal in SIGNALS.items():

        def handler(sender, profile, _name=name, **kwargs):
            log.append((_name, profile.account_id, profile.provider_name))

        handlers[name] = handler
        signal.connect(handler)

    def synced(sender, account, result, **kwargs):
        log.append(("synced", account.pk, result))

    signals.account_synced.connect(synced)
    yield log
    for name, signal in SIGNALS.items():
        signal.disconnect(handlers[name])
    signals.account_synced.disconnect(synced)


def info_for(sim, account):
    return parse_userinfo(sim._userinfo(sim.accounts[account.sub]), expected_sub=account.sub)


def snapshot():
    """The stored state, without ids and timestamps."""
    profiles = sorted(
        (
            p.account.sub,
            p.profile_id,
            p.provider_name,
            p.profile_name,
            p.profile_connected,
            p.profile_relink_url,
            p.removed_at is None,
            p.connection_changed_at is None,
        )
        for p in ConferencingProfile.objects.select_related("account")
    )
    accounts = sorted(
        (a.sub, a.email, a.name, a.scope, a.last_sync_error, a.consecutive_failures, a.userinfo)
        for a in LinkedAccount.objects.all()
    )
    return profiles, accounts


def build_fleet(sim, link_account):
    """Accounts in every state a sync can find: new, unchanged, changed, removed, re-added."""
    fleet = []
    for i in range(6):
        profiles = [sim.profile("zoom"), sim.profile("ms_teams", connected=i % 2 == 0)]
        fleet.append(link_account(conferencing_profiles=profiles))
    return fleet


def change_at_cronofy(sim, fleet, ids, step: int):
    for i, (_, sim_account) in enumerate(fleet):
        zoom, teams = ids[i]
        if step == 1:
            if i == 0:
                sim.set_connected(sim_account.sub, zoom, False)
            elif i == 1:
                sim.set_connected(sim_account.sub, teams, True)
            elif i == 2:
                sim.remove_profile(sim_account.sub, teams)
            elif i == 3:
                sim_account.conferencing_profiles.append(sim.profile("go_to"))
            elif i == 4:
                sim_account.name = "Renamed"
        elif step == 2 and i == 2:
            sim_account.conferencing_profiles.append(
                {**sim.profile("ms_teams"), "profile_id": teams}
            )


def run_steps(sim, fleet, write):
    ids = [tuple(p["profile_id"] for p in s.conferencing_profiles) for _, s in fleet]
    outcomes = []
    for step in range(3):
        change_at_cronofy(sim, fleet, ids, step)
        items = [(account, info_for(sim, account)) for account, _ in fleet]
        outcomes.append(write(items))
    return outcomes


def comparable(state):
    profiles, accounts = state
    return sorted(row[2:] for row in profiles), sorted(row[2:6] for row in accounts)


def signal_log(batch_signals, fleet) -> list[tuple]:
    index = {account.pk: i for i, (account, _) in enumerate(fleet)}
    return sorted((name, index[pk], repr(detail)) for name, pk, detail in batch_signals)


def test_same_rows_results_and_signals_as_one_by_one(sim, link_account, batch_signals):
    fleet = build_fleet(sim, link_account)
    batched = run_steps(sim, fleet, apply_userinfo_many)
    batched_state, batched_signals = snapshot(), signal_log(batch_signals, fleet)

    # Again, one account at a time, from scratch.
    ConferencingProfile.objects.all().delete()
    LinkedAccount.objects.all().delete()
    batch_signals.clear()
    fleet = build_fleet(sim, link_account)
    single = run_steps(
        sim, fleet, lambda items: [apply_userinfo(account, info) for account, info in items]
    )

    assert batched == single
    assert batched[0] == [SyncResult(created=2)] * 6
    assert batched[1][0] == SyncResult(updated=1, unchanged=1)
    assert batched[1][2] == SyncResult(removed=1, unchanged=1)
    assert batched[1][3] == SyncResult(created=1, unchanged=2)
    assert batched[1][5] == SyncResult(unchanged=2)
    assert batched[2][2] == SyncResult(updated=1, unchanged=1)  # re-added
    # Same rows (subs, emails and profile ids are random per fleet: all but those).
    assert comparable(snapshot()) == comparable(batched_state)
    assert signal_log(batch_signals, fleet) == batched_signals
    kinds = {entry[0] for entry in batched_signals}
    assert kinds == {"added", "removed", "disconnected", "reconnected", "synced"}


def test_an_account_deleted_meanwhile_is_skipped(sim, link_account):
    (first, _), (gone, _), (last, _) = [link_account() for _ in range(3)]
    items = [(a, info_for(sim, a)) for a in (first, gone, last)]
    LinkedAccount.objects.filter(pk=gone.pk).delete()
    results = apply_userinfo_many(items)
    assert results[1] == SyncResult()
    assert LinkedAccount.objects.filter(last_synced_at__isnull=False).count() == 2


def test_an_account_twice_is_refused(sim, link_account):
    account, _ = link_account()
    info = info_for(sim, account)
    with pytest.raises(ValueError):
        apply_userinfo_many([(account, info), (account, info)])


def test_a_fixed_number_of_queries_whatever_the_batch_size(sim, link_account):
    fleet = [link_account(conferencing_profiles=[sim.profile("zoom")])[0] for _ in range(30)]
    apply_userinfo_many([(a, info_for(sim, a)) for a in fleet])
    counts = []
    for size in (5, 30):
        items = [(a, info_for(sim, a)) for a in fleet[:size]]
        with CaptureQueriesContext(connection) as queries:
            apply_userinfo_many(items)
        counts.append(len(queries))
    # Unchanged: lock the accounts, read their conferencing and calendar profiles,
    # stamp them (+ BEGIN/COMMIT where the backend logs them).
    assert counts[0] == counts[1]
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert statements.count("SELECT") == 3
    assert statements.count("UPDATE") == 1
    assert "INSERT" not in statements


def test_a_first_sync_writes_every_account_in_a_fixed_number_of_queries(sim, link_account):
    """Every account's details change on a first sync: one UPDATE for all of them,
    whatever their number, each with its own values (the same as one by one)."""
    counts = []
    for size in (3, 40):
        fleet = [
            link_account(
                name=f"User {size}-{i}",
                conferencing_profiles=[sim.profile("zoom"), sim.profile("ms_teams")],
            )[0]
            for i in range(size)
        ]
        with CaptureQueriesContext(connection) as queries:
            apply_userinfo_many([(a, info_for(sim, a)) for a in fleet])
        counts.append(len(queries))
        updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
        assert len(updates) == 1
        for account in fleet:
            stored = LinkedAccount.objects.get(pk=account.pk)
            sim_account = sim.accounts[account.sub]
            assert (stored.name, stored.email) == (sim_account.name, sim_account.email)
            assert stored.userinfo == sim._userinfo(sim_account)
            assert stored.last_synced_at == account.last_synced_at is not None
            assert stored.last_sync_error == "" and stored.consecutive_failures == 0
    assert counts[0] == counts[1]


def test_a_first_sync_past_the_parameter_limit_takes_one_more_statement(
    sim, link_account, monkeypatch
):
    monkeypatch.setattr(type(connection.features), "max_query_params", 60)  # 5 rows a statement
    fleet = [link_account(name=f"User {i}")[0] for i in range(12)]
    with CaptureQueriesContext(connection) as queries:
        apply_userinfo_many([(a, info_for(sim, a)) for a in fleet])
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 3
    assert sorted(LinkedAccount.objects.values_list("name", flat=True)) == sorted(
        f"User {i}" for i in range(12)
    )


def test_changed_details_are_written_per_account(sim, link_account):
    (renamed, sim_renamed), (same, _) = link_account(), link_account()
    apply_userinfo_many([(a, info_for(sim, a)) for a in (renamed, same)])
    sim_renamed.name = "New Name"
    with CaptureQueriesContext(connection) as queries:
        apply_userinfo_many([(a, info_for(sim, a)) for a in (renamed, same)])
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 2  # the renamed account's details; the other's stamps
    renamed.refresh_from_db()
    assert renamed.name == "New Name"
    assert renamed.userinfo["name"] == "New Name"


def test_many_profiles_fit_sqlite_parameter_limits(sim, link_account):
    fleet = [
        link_account(conferencing_profiles=[sim.profile("zoom") for _ in range(40)])[0]
        for _ in range(30)
    ]
    results = apply_userinfo_many([(a, info_for(sim, a)) for a in fleet])
    assert results == [SyncResult(created=40)] * 30
    assert ConferencingProfile.objects.count() == 1200


# -- survivors of the mutation audit (issue #10 item 10) --------------------------------


@pytest.mark.parametrize("details_change", [False, True], ids=["stamped", "details-written"])
def test_the_batch_path_resets_the_failure_fields(sim, link_account, details_change):
    account, sim_account = link_account(conferencing_profiles=[sim.profile("zoom")])
    sync_account(account)
    LinkedAccount.objects.filter(pk=account.pk).update(
        consecutive_failures=4, last_sync_error="HTTP 503 four times"
    )
    if details_change:
        sim_account.email = "renamed@example.com"
    account.refresh_from_db()
    apply_userinfo_many([(account, info_for(sim, account))])
    stored = LinkedAccount.objects.get(pk=account.pk)
    assert (stored.consecutive_failures, stored.last_sync_error) == (0, "")
    assert (stored.email == "renamed@example.com") is details_change


def test_batch_signals_are_sent_after_commit(sim, link_account, batch_signals):
    from django.db import transaction

    accounts = [link_account(conferencing_profiles=[sim.profile("zoom")])[0] for _ in range(2)]
    with transaction.atomic():  # the caller's transaction: nothing is sent before it commits
        apply_userinfo_many([(a, info_for(sim, a)) for a in accounts])
        assert batch_signals == []
    assert sorted(name for name, *_ in batch_signals) == ["added", "added", "synced", "synced"]


# -- each UserInfo section on its own (issue 20 §1) ------------------------------------


def _calendar_entry(profile_id: str) -> dict:
    return {"provider_name": "google", "profile_id": profile_id, "profile_name": "g@example.com"}


SECTION_VARIANTS = {
    "valid": lambda body: None,
    "calendar-invalid": lambda body: body["cronofy.data"].update(profiles=[{"profile_id": "p"}]),
    "calendar-older-shape": lambda body: body["cronofy.data"].update(
        profiles=[_calendar_entry("pro_old")]
    ),
    "conferencing-missing": lambda body: body["cronofy.data"].pop("conferencing_profiles"),
    "conferencing-invalid": lambda body: body["cronofy.data"]["conferencing_profiles"][0].update(
        profile_connected="yes"
    ),
    "details-invalid": lambda body: body.update(email=7, name="Changed"),
    "userinfo-unstorable": lambda body: body.update(unmodelled=float("nan"), name="Changed"),
}


def section_snapshot():
    """Every stored field a section sync writes, by account email (set at link time)."""
    from django_cronofy_conferencing.models import CalendarProfile

    accounts = {
        a.pk: (a.name, a.email, a.scope, a.userinfo.get("name"), a.sync_warnings)
        for a in LinkedAccount.objects.all()
    }
    conferencing = sorted(
        (accounts[p.account_id][1], p.provider_name, p.profile_connected, p.removed_at is None)
        for p in ConferencingProfile.objects.all()
    )
    calendars = sorted(
        (accounts[p.account_id][1], p.profile_id, p.profile_connected, p.removed_at is None)
        for p in CalendarProfile.objects.all()
    )
    return sorted(accounts.values(), key=repr), conferencing, calendars


def run_section_variants(sim, link_account, write):
    fleet = []
    for i, variant in enumerate(SECTION_VARIANTS):
        account, sim_account = link_account(
            email=f"user{i}@example.com",
            name=f"User {i}",
            conferencing_profiles=[sim.profile("zoom"), sim.profile("go_to", connected=False)],
            calendar_profiles=[sim.calendar_profile("google", profile_id="pro_cal")],
        )
        fleet.append((account, sim_account, variant))
    outcomes = []
    for step in ("valid", "variant", "valid-again"):
        items = []
        for account, sim_account, variant in fleet:
            sim_account.userinfo_body = None
            body = sim._userinfo(sim_account)
            if step == "variant":
                SECTION_VARIANTS[variant](body)
            items.append((account, parse_userinfo(body, expected_sub=account.sub)))
        outcomes.append((write(items), section_snapshot()))
    return outcomes


def test_each_section_on_its_own_the_same_in_a_batch_and_one_by_one(sim, link_account):
    """DESIGN.md "Sync": ``apply_userinfo`` and ``apply_userinfo_many`` leave the same
    sections as stored, apply the same ones, and record the same warnings."""
    batched = run_section_variants(sim, link_account, apply_userinfo_many)
    LinkedAccount.objects.all().delete()
    single = run_section_variants(
        sim, link_account, lambda items: [apply_userinfo(account, info) for account, info in items]
    )
    assert batched == single

    results, (accounts, conferencing, calendars) = batched[1]
    by_email = {row[1]: row for row in accounts}
    warnings = {email: [w["section"] for w in row[4]] for email, row in by_email.items()}
    variants = list(SECTION_VARIANTS)
    expected = {
        "valid": [],
        "calendar-invalid": ["profiles"],
        "calendar-older-shape": [],
        "conferencing-missing": ["conferencing_profiles"],
        "conferencing-invalid": ["conferencing_profiles"],
        "details-invalid": ["account"],
        "userinfo-unstorable": ["userinfo"],
    }
    assert warnings == {f"user{i}@example.com": expected[v] for i, v in enumerate(variants)}
    names = {row[1]: row[0] for row in accounts}
    assert names["user5@example.com"] == "User 5"  # details left as stored
    assert names["user6@example.com"] == "Changed"  # details applied, JSON kept as it was
    assert by_email["user6@example.com"][3] == "User 6"
    old_shape = [row for row in calendars if row[0] == "user2@example.com" and row[3]]
    assert old_shape == [("user2@example.com", "pro_old", None, True)]
    assert [row for row in calendars if row[0] == "user1@example.com"] == [
        ("user1@example.com", "pro_cal", True, True)
    ]
    assert results[3] == SyncResult(unchanged=2, calendar_unchanged=1)  # missing: kept
    assert [row[1:] for row in conferencing if row[0] == "user4@example.com"] == [
        ("go_to", False, True),
        ("zoom", True, True),
    ]  # invalid: kept as they were
    # Valid again: every warning is cleared.
    assert all(row[4] == [] for row in batched[2][1][0])


def test_a_mixed_batch_takes_a_fixed_number_of_queries(sim, link_account):
    """Accounts leaving different sections as stored write different fields: one
    statement per set of fields, however many accounts."""
    counts = []
    for copies in (1, 3):
        LinkedAccount.objects.all().delete()
        items = []
        for copy in range(copies):
            for i, variant in enumerate(SECTION_VARIANTS):
                account, sim_account = link_account(
                    name=f"User {copy}-{i}", conferencing_profiles=[sim.profile("zoom")]
                )
                body = sim._userinfo(sim_account)
                SECTION_VARIANTS[variant](body)
                items.append((account, parse_userinfo(body, expected_sub=account.sub)))
        with CaptureQueriesContext(connection) as queries:
            apply_userinfo_many(items)
        counts.append(len(queries))
    assert counts[0] == counts[1]

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

"""Spending the budget where it matters (issue 21): the sweep's order, its lane, no token
refreshed only to find nothing due, and the budget outlook with its warning."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_cronofy_conferencing.cronofy import client as client_module
from django_cronofy_conferencing.cronofy.ratelimit import Lane
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.queueing.jobs import run_sync
from django_cronofy_conferencing.sync import sync_account, sync_accounts
from django_cronofy_conferencing.sync.budget import budget_outlook, calls_per_sync
from django_cronofy_conferencing.sync.order import sweep_chunks

pytestmark = pytest.mark.django_db


def test_a_sweep_takes_failing_disconnected_and_never_synced_accounts_first(sim, link_account):
    now = timezone.now()
    old, older, failing, disconnected, never = (link_account()[0] for _ in range(5))
    sim_disconnected = sim.accounts[disconnected.sub]
    sim_disconnected.conferencing_profiles = [sim.profile("zoom", connected=False)]
    sync_account(disconnected)
    LinkedAccount.objects.filter(pk__in=[old.pk, failing.pk, disconnected.pk]).update(
        last_synced_at=now - timedelta(hours=2)
    )
    LinkedAccount.objects.filter(pk=older.pk).update(last_synced_at=now - timedelta(hours=5))
    LinkedAccount.objects.filter(pk=failing.pk).update(consecutive_failures=1)
    order = [a.pk for chunk in sweep_chunks(LinkedAccount.objects.due(), 2) for a in chunk]
    assert order == [failing.pk, disconnected.pk, never.pk, older.pk, old.pk]

    synced = []
    sync_accounts(
        LinkedAccount.objects.due(), concurrency=1, progress=lambda a, r, e: synced.append(a.pk)
    )
    assert synced == order
    assert LinkedAccount.objects.due().count() == 0


def test_a_sweep_reads_nothing_it_synced_after_it_started(sim, link_account):
    """--all: an account that moved class (failing -> synced) is not read again."""
    account, _ = link_account()
    LinkedAccount.objects.filter(pk=account.pk).update(consecutive_failures=3)
    report = sync_accounts(LinkedAccount.objects.active(), concurrency=1)
    assert report.synced == 1
    assert sim.count("userinfo") == 1


def test_sweeps_and_queued_fleet_jobs_use_the_background_lane(sim, link_account, monkeypatch):
    lanes = []
    real = client_module.get_client

    def spy(data_center, lane=Lane.USER):
        lanes.append(Lane(lane))
        return real(data_center, lane)

    monkeypatch.setattr("django_cronofy_conferencing.sync.service.get_client", spy)
    account, _ = link_account()
    sync_accounts(LinkedAccount.objects.all(), concurrency=2)
    assert lanes == [Lane.BACKGROUND]
    run_sync(account.pk)  # a fan-out's task: no lane given
    run_sync(account.pk, None, "user")  # the API's 202 path: the user's lane
    sync_account(account)  # Sync now, the page, linking
    assert lanes == [Lane.BACKGROUND, Lane.BACKGROUND, Lane.USER, Lane.USER]


def test_a_sweep_never_refreshes_a_token_only_to_find_nothing_due(sim, link_account):
    account, _ = link_account(token_expires_in=10)  # needs a refresh first
    selected = list(LinkedAccount.objects.due())
    sync_account(account)  # meanwhile, the user pressed Sync now (it refreshed)
    calls = sim.count()
    report = sync_accounts(selected, concurrency=1)
    assert (report.synced, report.failed, report.skipped) == (0, 0, 1)
    assert sim.count() == calls  # neither a refresh nor a UserInfo call


def test_the_summary_says_when_the_budget_cannot_cover_the_fleet(sim, link_account, settings_with):
    for _ in range(3):
        link_account()
    with settings_with(RATE_LIMITS=["10/d"], FLEET_BUDGET_SHARE=0.5):
        [outlook] = budget_outlook()
        assert (outlook.data_centers, outlook.accounts, outlook.push_confirmed) == (("us",), 3, 0)
        assert outlook.calls_needed == pytest.approx(3 * 24 * 2)  # hourly, with a refresh
        assert outlook.calls_allowed == pytest.approx(10 / 1.03 * 0.5)
        assert not outlook.covered
        err = io.StringIO()
        # At most one fleet slot (whether the wall clock is at one decides), then none
        # within REQUEST_DEADLINE: the others are refused at once (BudgetExhausted).
        with pytest.raises(CommandError, match=r"[23] of 3 Cronofy accounts failed"):
            call_command("cronofy_sync", stdout=io.StringIO(), stderr=err)
    assert "Warning: the fleet falls behind" in err.getvalue()
    assert "144 Cronofy calls a day for 3 accounts" in err.getvalue()
    with settings_with(RATE_LIMITS=["50/s", "500/m"]):
        assert all(o.covered for o in budget_outlook())
        err = io.StringIO()
        call_command("cronofy_sync", "--all", stdout=io.StringIO(), stderr=err)
        assert "falls behind" not in err.getvalue()


def test_push_confirmed_accounts_cost_a_sync_and_a_listing_a_day(settings_with):
    now = timezone.now()
    LinkedAccount.objects.bulk_create(
        LinkedAccount(
            data_center="us",
            sub=f"acc_{i}",
            channel_id=f"chn_{i}",
            channel_confirmed_at=now if i < 9 else None,
            last_synced_at=now,
        )
        for i in range(10)
    )
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL="https://example.com/n/"):
        [outlook] = budget_outlook()
    assert outlook.push_confirmed == 9
    assert outlook.calls_needed == pytest.approx(9 * 2 + 1 * 48 + 10 * 2)
    assert calls_per_sync(600) == pytest.approx(1 + 600 / 3300)


def test_w011_reports_an_uncovered_fleet(link_account, settings_with):
    from django_cronofy_conferencing.checks import check_budget_covers_fleet

    link_account()
    with settings_with(RATE_LIMITS=["1/d"]):
        [warning] = check_budget_covers_fleet(databases=["default"])
    assert warning.id == "cronofy_conferencing.W011"
    assert "RATE_LIMITS" in warning.hint
    assert check_budget_covers_fleet(databases=["default"]) == []
    assert check_budget_covers_fleet(databases=None) == []

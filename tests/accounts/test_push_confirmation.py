"""Push before polling (issue 21): ``LinkedAccount.objects.due()`` at its window edges, and
the three ways Cronofy confirms a channel (created, listed, a signed notification), never
a forged notification."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.accounts.channels import check_channels, confirmation_sweep
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.queueing.jobs import run_channel_check

pytestmark = pytest.mark.django_db

CALLBACK = "https://example.com/cronofy/notifications/"
HOUR, DAY = 3600, 86400
NOW = timezone.now().replace(microsecond=0)


@pytest.fixture(autouse=True)
def push_configured(settings_with):
    with settings_with(
        PUSH_NOTIFICATIONS_CALLBACK_URL=CALLBACK, SYNC_STALE_AFTER=HOUR, SYNC_CONFIRM_AFTER=DAY
    ):
        yield


def account_at(*, synced_ago: float | None, confirmed_ago: float | None, channel: str = "chn_1"):
    ago = lambda s: None if s is None else NOW - timedelta(seconds=s)  # noqa: E731
    return LinkedAccount.objects.create(
        data_center="us",
        sub=f"acc_{LinkedAccount.objects.count()}",
        access_token="a",
        refresh_token="r",
        channel_id=channel,
        last_synced_at=ago(synced_ago),
        channel_confirmed_at=ago(confirmed_ago),
    )


def is_due(account) -> bool:
    return LinkedAccount.objects.due(now=NOW).filter(pk=account.pk).exists()


@pytest.mark.parametrize(
    "synced_ago, confirmed_ago, due",
    [
        (None, 10, True),  # never synced
        (DAY - 1, 10, False),  # confirmed: polled only after SYNC_CONFIRM_AFTER
        (DAY, 10, True),
        (DAY + 1, DAY, True),  # confirmed exactly a window ago: still confirmed, and due
        (DAY - 1, DAY, False),
        (HOUR + 1, DAY + 1, True),  # the confirmation is older than its window: polled
        (HOUR - 1, DAY + 1, False),
        (HOUR, None, True),  # never confirmed: SYNC_STALE_AFTER
        (HOUR - 1, None, False),
    ],
)
def test_due_at_the_window_edges(synced_ago, confirmed_ago, due):
    assert is_due(account_at(synced_ago=synced_ago, confirmed_ago=confirmed_ago)) is due


def test_a_confirmation_without_a_channel_or_without_push_counts_for_nothing(settings_with):
    no_channel = account_at(synced_ago=2 * HOUR, confirmed_ago=10, channel="")
    assert is_due(no_channel)
    confirmed = account_at(synced_ago=2 * HOUR, confirmed_ago=10)
    assert not is_due(confirmed)
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=""):
        assert is_due(confirmed)  # push is off: everything is polled


def test_inactive_accounts_are_never_due():
    account = account_at(synced_ago=None, confirmed_ago=None)
    LinkedAccount.objects.filter(pk=account.pk).update(status=LinkedAccount.Status.REVOKED)
    assert not is_due(account)


def test_due_counts_say_why(settings_with):
    account_at(synced_ago=None, confirmed_ago=None)
    account_at(synced_ago=DAY + 5, confirmed_ago=60)
    failing = account_at(synced_ago=2 * HOUR, confirmed_ago=None)
    LinkedAccount.objects.filter(pk=failing.pk).update(consecutive_failures=2)
    account_at(synced_ago=60, confirmed_ago=None)  # fresh
    counts = LinkedAccount.objects.due_counts(now=NOW)
    assert counts == {
        "total": 3,
        "never_synced": 1,
        "confirmed_channel": 1,
        "no_confirmed_channel": 1,
        "failing": 1,
        "disconnected": 0,
    }


def test_dry_run_says_how_many_are_due_for_each_reason():
    account_at(synced_ago=None, confirmed_ago=None)
    account_at(synced_ago=DAY + 5, confirmed_ago=60)
    account_at(synced_ago=2 * HOUR, confirmed_ago=60)  # confirmed: not due
    out = io.StringIO()
    call_command("cronofy_sync", "--dry-run", stdout=out, stderr=io.StringIO())
    assert out.getvalue().splitlines()[0] == (
        "Due: 1 never synced, 1 with a confirmed push channel (older than SYNC_CONFIRM_AFTER), "
        "0 without (older than SYNC_STALE_AFTER); first: 0 whose last sync failed, "
        "0 with a disconnected profile."
    )
    assert "Would sync 2 accounts" in out.getvalue()


# -- confirmation: created, listed, a signed notification; never forged ---------------


@pytest.fixture
def linked(sim, link_account):
    account, sim_account = link_account(conferencing_profiles=[sim.profile("zoom")])
    return account, sim_account


def stored(account) -> LinkedAccount:
    return LinkedAccount.objects.get(pk=account.pk)


def test_creating_the_channel_confirms_it(linked):
    account, _ = linked
    before = timezone.now()
    linking.ensure_push_channel(account)
    assert stored(account).channel_confirmed_at >= before
    assert account.channel_confirmed_at == stored(account).channel_confirmed_at


def test_a_listing_confirms_it_and_a_missing_channel_loses_it(sim, linked):
    account, _ = linked
    channel_id = linking.ensure_push_channel(account)
    LinkedAccount.objects.filter(pk=account.pk).update(
        channel_confirmed_at=timezone.now() - timedelta(days=3)
    )
    call_command("cronofy_channels", stdout=io.StringIO())
    assert stored(account).channel_confirmed_at > timezone.now() - timedelta(minutes=1)
    sim.close_channel(channel_id)  # Cronofy forgot it
    with pytest.raises(CommandError):
        call_command("cronofy_channels", stdout=io.StringIO())
    assert stored(account).channel_confirmed_at is None  # polled hourly again
    assert stored(account).channel_id == channel_id  # until --repair replaces it
    call_command("cronofy_channels", "--repair", stdout=io.StringIO())
    repaired = stored(account)
    assert repaired.channel_id not in ("", channel_id)
    assert repaired.channel_confirmed_at is not None


def test_a_signed_notification_confirms_it_and_a_forged_one_never(sim, linked):
    account, sim_account = linked
    linking.ensure_push_channel(account)
    LinkedAccount.objects.filter(pk=account.pk).update(channel_confirmed_at=None)
    body, headers = sim.notification(sim_account.sub, "verification")
    client = Client()
    url = "/cronofy/notifications/"
    forged = client.post(
        url,
        data=body,
        content_type="application/json",
        HTTP_CRONOFY_HMAC_SHA256=sim.sign(body, "not-the-secret"),
    )
    assert forged.status_code == 401
    assert stored(account).channel_confirmed_at is None
    unsigned = client.post(url, data=body, content_type="application/json")
    assert unsigned.status_code == 401
    assert stored(account).channel_confirmed_at is None
    before = timezone.now()
    signed = client.post(
        url,
        data=body,
        content_type="application/json",
        HTTP_CRONOFY_HMAC_SHA256=headers["Cronofy-HMAC-SHA256"],
    )
    assert signed.status_code == 200
    assert stored(account).channel_confirmed_at >= before


def test_the_daily_confirmation_visits_the_unconfirmed_oldest_first(sim, link_account):
    accounts = []
    for days in (None, 3, 0):  # never confirmed, 3 days ago, just now
        account, _ = link_account()
        linking.ensure_push_channel(account)
        when = None if days is None else timezone.now() - timedelta(days=days)
        LinkedAccount.objects.filter(pk=account.pk).update(channel_confirmed_at=when)
        accounts.append(account)
    assert [a.pk for a in confirmation_sweep()] == [a.pk for a in accounts]
    assert [a.pk for a in confirmation_sweep(unconfirmed=True)] == [a.pk for a in accounts[:2]]
    before = sim.count("list_channels")
    assert run_channel_check() == {"healthy": 2}  # the task beat / Django's tasks run
    assert sim.count("list_channels") == before + 2  # the confirmed one costs nothing
    assert all(stored(a).channel_confirmed_at is not None for a in accounts)


def test_the_confirmation_uses_the_background_lane(sim, linked, monkeypatch):
    from django_cronofy_conferencing.accounts import channels

    account, _ = linked
    linking.ensure_push_channel(account)
    lanes = []
    real = channels.channel_health

    def spy(account, *, client=None):
        lanes.append(client.lane.value)
        return real(account, client=client)

    monkeypatch.setattr(channels, "channel_health", spy)
    check_channels(confirmation_sweep())
    assert lanes == ["background"]


def test_a_sweep_renews_the_confirmation_with_the_token_it_just_used(sim, link_account):
    from django_cronofy_conferencing.sync import sync_account, sync_accounts

    fresh, _ = link_account()
    old, _ = link_account(token_expires_in=10)  # the sweep refreshes its token first
    dead, _ = link_account()
    for account in (fresh, old, dead):
        linking.ensure_push_channel(account)
    LinkedAccount.objects.filter(pk__in=[old.pk, dead.pk]).update(
        channel_confirmed_at=timezone.now() - timedelta(hours=20)  # past half the window
    )
    sim.close_channel(stored(dead).channel_id)
    sync_account(stored(old))  # a user's sync: no listing, whatever the confirmation
    assert sim.count("list_channels") == 0
    before = {"token": sim.count("token"), "userinfo": sim.count("userinfo")}
    report = sync_accounts(LinkedAccount.objects.all(), concurrency=1)
    assert report.synced == 3
    assert sim.count("list_channels") == 2  # not for the freshly confirmed one
    assert sim.count("token") == before["token"]  # no refresh for the listing
    assert sim.count("userinfo") == before["userinfo"] + 3
    assert stored(old).channel_confirmed_at > timezone.now() - timedelta(minutes=1)
    forgotten = stored(dead)
    assert (forgotten.channel_id, forgotten.channel_confirmed_at) == ("", None)

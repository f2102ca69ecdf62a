"""choices: every rule of what conferencing an account can put on an event, from stored rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from django_cronofy_conferencing import choices as choices_module
from django_cronofy_conferencing import queueing
from django_cronofy_conferencing.choices import (
    ConferencingUnavailable,
    InvalidSelection,
    conferencing_choices,
    conferencing_for,
    needing_relink,
    select,
)
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account

pytestmark = pytest.mark.django_db


def values(result) -> list[str]:
    return [c.value for c in result.available]


# -- conferencing_choices ------------------------------------------------------------


def test_connected_profile_is_available_by_profile_id(booking_host):
    account, _ = booking_host
    result = conferencing_choices(account)
    zoom = result.get("pro_zoom")
    assert zoom is not None and zoom.profile.profile_id == "pro_zoom"
    assert zoom.label == "Zoom (alice@zoom)"
    assert values(result) == ["pro_zoom", "integrated", "default"]


def test_disconnected_profile_is_listed_apart_with_its_relink_url(booking_host):
    account, _ = booking_host
    result = conferencing_choices(account)
    assert "pro_goto" not in values(result)
    assert [p.profile_id for p in result.unavailable] == ["pro_goto"]
    assert result.unavailable[0].profile_relink_url.startswith("https://")


def test_removed_profile_is_neither_available_nor_unavailable(booking_host):
    account, _ = booking_host
    result = conferencing_choices(account)
    assert "pro_gone" not in values(result)
    assert "pro_gone" not in [p.profile_id for p in result.unavailable]


def test_integrated_lists_only_writable_capable_calendars_of_connected_profiles(booking_host):
    account, _ = booking_host
    integrated = conferencing_choices(account).get("integrated")
    assert [c.calendar_id for c in integrated.calendars] == ["cal_work"]
    assert integrated.label == "Calendar's own conferencing (Google Meet)"


def test_integrated_is_not_offered_without_a_capable_calendar(link_account, sim, user):
    account, _ = link_account(
        user=user,
        calendar_profiles=[
            sim.calendar_profile("apple", calendars=[sim.calendar(integrated=False)]),
            sim.calendar_profile("google", calendars=[sim.calendar(readonly=True)]),
            sim.calendar_profile("office365", connected=False),
        ],
    )
    sync_account(account)
    assert values(conferencing_choices(account)) == ["default"]
    with pytest.raises(ConferencingUnavailable, match="own conferencing is not available") as exc:
        conferencing_for(account, "integrated")
    assert exc.value.profile is None and exc.value.relink_url is None


def test_default_is_always_available(link_account, user):
    account, _ = link_account(user=user)
    sync_account(account)
    result = conferencing_choices(account)
    assert values(result) == ["default"]
    assert conferencing_for(account, result.available[0]) == {"profile_id": "default"}


def test_disconnected_calendar_profiles_are_listed_for_relinking(booking_host):
    account, _ = booking_host
    result = conferencing_choices(account)
    assert [p.profile_id for p in result.calendar_profiles_unavailable] == ["pro_o365"]
    relink = needing_relink(account)
    assert [p.profile_id for p in relink.conferencing_profiles] == ["pro_goto"]
    assert [p.profile_id for p in relink.calendar_profiles] == ["pro_o365"]
    assert len(relink) == 2


def test_an_account_needing_reauthorization_offers_nothing(booking_host):
    account, _ = booking_host
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    account.refresh_from_db()
    result = conferencing_choices(account)
    assert result.available == [] and result.reauthorization_required
    with pytest.raises(ConferencingUnavailable, match="connected again"):
        conferencing_for(account, "default")


@pytest.mark.parametrize("profiles", [1, 40])
def test_choices_take_two_queries_whatever_the_number_of_rows(
    link_account, sim, user, django_assert_num_queries, profiles
):
    account, _ = link_account(
        user=user,
        conferencing_profiles=[sim.profile() for _ in range(profiles)],
        calendar_profiles=[
            sim.calendar_profile(calendars=[sim.calendar() for _ in range(20)])
            for _ in range(profiles)
        ],
    )
    sync_account(account)
    with django_assert_num_queries(2):
        result = conferencing_choices(account)
        labels = [c.label for c in result.available]  # no lazy query behind a label
        assert [c.profile.account for c in result.available if c.profile]
    assert len(labels) == profiles + 2


# -- conferencing_for ------------------------------------------------------------------


def test_conferencing_for_a_connected_profile(booking_host):
    account, _ = booking_host
    assert conferencing_for(account, "pro_zoom") == {"profile_id": "pro_zoom"}
    assert conferencing_for(account, conferencing_choices(account).get("pro_zoom")) == {
        "profile_id": "pro_zoom"
    }


def test_conferencing_for_a_disconnected_profile_names_it_and_its_relink_url(booking_host):
    account, _ = booking_host
    with pytest.raises(ConferencingUnavailable) as exc:
        conferencing_for(account, "pro_goto")
    assert exc.value.profile.profile_id == "pro_goto"
    assert exc.value.relink_url == exc.value.profile.profile_relink_url
    assert exc.value.relink_url.startswith("https://")
    assert "GoTo" in str(exc.value) and "disconnected" in str(exc.value)
    assert exc.value.relink_url in str(exc.value)


def test_conferencing_for_a_removed_profile(booking_host):
    account, _ = booking_host
    with pytest.raises(ConferencingUnavailable, match=r"Microsoft Teams .* removed") as exc:
        conferencing_for(account, "pro_gone")
    assert exc.value.profile.profile_id == "pro_gone" and exc.value.relink_url is None


def test_conferencing_for_another_users_profile(booking_host, foreign_account):
    account, _ = booking_host
    with pytest.raises(ConferencingUnavailable, match="pro_bobs is not one of") as exc:
        conferencing_for(account, "pro_bobs")
    assert exc.value.profile is None  # another user's row is never handed out


def test_conferencing_for_integrated_and_the_events_calendar(booking_host):
    account, _ = booking_host
    assert conferencing_for(account, "integrated") == {"profile_id": "integrated"}
    assert conferencing_for(account, "integrated", calendar_id="cal_work") == {
        "profile_id": "integrated"
    }
    for calendar_id in ("cal_plain", "cal_ro", "cal_teams"):
        with pytest.raises(ConferencingUnavailable, match="on this calendar"):
            conferencing_for(account, "integrated", calendar_id=calendar_id)


@pytest.mark.parametrize("value", ["", None, 42])
def test_conferencing_for_nothing_chosen(booking_host, value):
    with pytest.raises(ConferencingUnavailable, match="No conferencing"):
        conferencing_for(booking_host[0], value)


# -- select (what the fields use) --------------------------------------------------------


def test_select_is_limited_to_the_users_accounts(booking_host, foreign_account, user):
    account, _ = booking_host
    mine = LinkedAccount.objects.for_user(user)
    chosen = select(mine, f"{account.pk}:pro_zoom")
    assert (chosen.account, chosen.choice, chosen.conferencing) == (
        account,
        "pro_zoom",
        {"profile_id": "pro_zoom"},
    )
    with pytest.raises(InvalidSelection, match="not one of yours"):
        select(mine, f"{foreign_account.pk}:pro_bobs")
    with pytest.raises(InvalidSelection):
        select(mine, "pro_zoom")  # no account
    assert select(mine, "default", account=account).conferencing == {"profile_id": "default"}
    with pytest.raises(InvalidSelection, match="not one of yours"):
        select(mine, "default", account=foreign_account)


# -- freshness ----------------------------------------------------------------------------


@pytest.fixture
def stale(booking_host):
    account, _ = booking_host
    LinkedAccount.objects.filter(pk=account.pk).update(
        last_synced_at=timezone.now() - timedelta(hours=2)
    )
    account.refresh_from_db()
    cache.clear()
    return account


@pytest.fixture
def queued(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(queueing, "queue_sync", calls.append)
    return calls


def test_fresh_account_is_not_stale(booking_host, queued):
    result = conferencing_choices(booking_host[0])
    assert (result.stale, result.resync_queued, queued) == (False, False, [])


def test_stale_account_without_a_queue_is_flagged_and_cronofy_is_not_called(stale, sim, queued):
    before = len(sim.requests)
    result = conferencing_choices(stale)
    assert result.stale and not result.resync_queued
    assert values(result) == ["pro_zoom", "integrated", "default"]  # the stored answer
    assert queued == [] and len(sim.requests) == before


def test_stale_account_with_a_queue_queues_one_resync(stale, sim, queued, settings):
    before = len(sim.requests)
    with override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "TASK_QUEUE": "celery"}
    ):
        first = conferencing_choices(stale)
        second = conferencing_choices(stale)
    assert first.stale and first.resync_queued and second.resync_queued
    assert queued == [stale.pk]  # debounced: one resync for both renders
    assert values(first) == ["pro_zoom", "integrated", "default"]
    assert len(sim.requests) == before


def test_a_failing_queue_does_not_break_the_choices(stale, monkeypatch, settings):
    def broken(account_id):
        raise ConnectionError("broker down")

    monkeypatch.setattr(queueing, "queue_sync", broken)
    with override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "TASK_QUEUE": "celery"}
    ):
        result = conferencing_choices(stale)
    assert result.stale and not result.resync_queued


def test_never_synced_account_is_stale(link_account, user):
    account, _ = link_account(user=user)
    assert choices_module.is_stale(account)

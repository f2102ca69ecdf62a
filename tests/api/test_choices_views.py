"""API: ``calendar-profiles/`` and ``accounts/<id>/conferencing-choices/``, per user."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_cronofy_conferencing import queueing
from django_cronofy_conferencing.models import LinkedAccount

pytestmark = pytest.mark.django_db

NS = "cronofy_conferencing_api"


def calendar_profiles_url() -> str:
    return reverse(f"{NS}:calendar-profile-list")


def calendar_profile_url(profile_id: str) -> str:
    return reverse(f"{NS}:calendar-profile-detail", kwargs={"profile_id": profile_id})


def choices_url(pk: int) -> str:
    return reverse(f"{NS}:account-conferencing-choices", kwargs={"pk": pk})


def test_url_paths():
    assert calendar_profiles_url() == "/api/cronofy/calendar-profiles/"
    assert calendar_profile_url("pro_x") == "/api/cronofy/calendar-profiles/pro_x/"
    assert choices_url(7) == "/api/cronofy/accounts/7/conferencing-choices/"


# -- calendar-profiles/ -----------------------------------------------------------------


def test_calendar_profile_list_and_detail(alice_client, booking_host):
    account, _ = booking_host
    listed = alice_client.get(calendar_profiles_url()).json()
    assert [p["profile_id"] for p in listed] == ["pro_google", "pro_o365"]
    google = listed[0]
    assert google["provider_name"] == "google" and google["profile_connected"] is True
    assert google["account"] == account.pk
    assert google["last_seen_at"] is not None
    assert [c["calendar_id"] for c in google["calendars"]] == [
        "cal_work",
        "cal_plain",
        "cal_ro",
        "cal_del",
    ]
    assert google["calendars"][0] == {
        "calendar_id": "cal_work",
        "calendar_name": "Work",
        "calendar_primary": True,
        "calendar_readonly": False,
        "calendar_deleted": False,
        "calendar_integrated_conferencing_available": True,
    }
    detail = alice_client.get(calendar_profile_url("pro_o365")).json()
    assert detail["profile_connected"] is False
    assert detail["profile_relink_url"].startswith("https://")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"provider_name": "google"}, ["pro_google"]),
        ({"profile_connected": "false"}, ["pro_o365"]),
        ({"profile_connected": "true"}, ["pro_google"]),
        ({"account": "ACCOUNT"}, ["pro_google", "pro_o365"]),
        ({"account": "999999"}, []),
    ],
)
def test_calendar_profile_filters(alice_client, booking_host, params, expected):
    account, _ = booking_host
    params = {k: (str(account.pk) if v == "ACCOUNT" else v) for k, v in params.items()}
    assert [p["profile_id"] for p in alice_client.get(calendar_profiles_url(), params).json()] == (
        expected
    )


def test_bad_calendar_filter_is_400(alice_client, booking_host):
    response = alice_client.get(calendar_profiles_url(), {"profile_connected": "maybe"})
    assert response.status_code == 400 and "profile_connected" in response.json()


def test_another_users_calendar_profiles_are_hidden(bob_client, booking_host):
    assert bob_client.get(calendar_profiles_url()).json() == []
    assert bob_client.get(calendar_profile_url("pro_google")).status_code == 404


def test_removed_calendar_profiles_are_not_listed(alice_client, booking_host, sim):
    from django_cronofy_conferencing.sync import sync_account

    account, sim_account = booking_host
    sim_account.calendar_profiles.pop()
    sync_account(account)
    assert [p["profile_id"] for p in alice_client.get(calendar_profiles_url()).json()] == [
        "pro_google"
    ]
    assert alice_client.get(calendar_profile_url("pro_o365")).status_code == 404


def test_anonymous_is_refused(anon_client, booking_host):
    account, _ = booking_host
    for path in (
        calendar_profiles_url(),
        calendar_profile_url("pro_google"),
        choices_url(account.pk),
    ):
        assert anon_client.get(path).status_code in (401, 403)


# -- conferencing-choices/ --------------------------------------------------------------


def test_choices_of_the_users_account(alice_client, booking_host, sim):
    account, _ = booking_host
    before = len(sim.requests)
    body = alice_client.get(choices_url(account.pk)).json()
    assert len(sim.requests) == before  # stored rows only
    assert body["account"] == account.pk
    assert [c["value"] for c in body["available"]] == ["pro_zoom", "integrated", "default"]
    zoom, integrated, default = body["available"]
    assert (zoom["provider_name"], zoom["profile_name"], zoom["calendars"]) == (
        "zoom",
        "alice@zoom",
        [],
    )
    assert [c["calendar_id"] for c in integrated["calendars"]] == ["cal_work"]
    assert integrated["provider_name"] is None
    assert default["label"] == "Default conferencing"
    assert [p["profile_id"] for p in body["unavailable"]] == ["pro_goto"]  # removed: absent
    assert body["unavailable"][0]["profile_relink_url"].startswith("https://")
    assert [p["profile_id"] for p in body["calendar_profiles_unavailable"]] == ["pro_o365"]
    assert (body["stale"], body["resync_queued"], body["reauthorization_required"]) == (
        False,
        False,
        False,
    )


def test_choices_of_another_users_account_are_404(bob_client, booking_host):
    account, _ = booking_host
    response = bob_client.get(choices_url(account.pk))
    assert response.status_code == 404
    assert "pro_zoom" not in response.content.decode()


def test_choices_without_a_capable_calendar_offer_no_integrated(
    alice_client, link_account, sim, user
):
    from django_cronofy_conferencing.sync import sync_account

    account, _ = link_account(
        user=user,
        calendar_profiles=[
            sim.calendar_profile("apple", calendars=[sim.calendar(integrated=False)])
        ],
    )
    sync_account(account)
    body = alice_client.get(choices_url(account.pk)).json()
    assert [c["value"] for c in body["available"]] == ["default"]


def test_stale_choices_queue_a_resync_with_a_queue(
    alice_client, booking_host, monkeypatch, settings
):
    account, _ = booking_host
    LinkedAccount.objects.filter(pk=account.pk).update(
        last_synced_at=timezone.now() - timedelta(days=1)
    )
    queued: list[int] = []
    monkeypatch.setattr(queueing, "queue_sync", queued.append)
    settings.CRONOFY_CONFERENCING = {**settings.CRONOFY_CONFERENCING, "TASK_QUEUE": "celery"}
    body = alice_client.get(choices_url(account.pk)).json()
    assert (body["stale"], body["resync_queued"]) == (True, True)
    assert queued == [account.pk]
    assert [c["value"] for c in body["available"]] == ["pro_zoom", "integrated", "default"]


def test_choices_of_an_account_to_reconnect(alice_client, booking_host):
    account, _ = booking_host
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    body = alice_client.get(choices_url(account.pk)).json()
    assert body["available"] == [] and body["reauthorization_required"] is True


def test_choices_queries_are_constant(alice_client, booking_host, django_assert_num_queries):
    account, _ = booking_host
    # The account (scoped to the user), its conferencing profiles, its calendar profiles.
    with django_assert_num_queries(3):
        assert alice_client.get(choices_url(account.pk)).status_code == 200

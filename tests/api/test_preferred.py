"""The preferred (default) conferencing profile through the API, and the API fixes of the
relink loop: the actions describe themselves, every Cronofy error body has its ``code``."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_cronofy_conferencing.models import LinkedAccount

pytestmark = pytest.mark.django_db

NS = "cronofy_conferencing_api"


def profile_url(profile_id: str) -> str:
    return reverse(f"{NS}:conferencing-profile-detail", args=[profile_id])


def preferred_of(account: LinkedAccount) -> str:
    account.refresh_from_db()
    return account.preferred_conferencing_profile_id


@pytest.fixture
def two_zooms(make_account, user):
    return make_account(
        user,
        profiles=[
            {"profile_id": "pro_work", "profile_name": "work@zoom.example"},
            {"profile_id": "pro_home", "profile_name": "home@zoom.example"},
            {"profile_id": "pro_teams", "provider_name": "ms_teams", "profile_connected": False},
        ],
    )


def test_patch_preferred_true_makes_it_the_accounts_default(alice_client, two_zooms):
    response = alice_client.patch(profile_url("pro_home"), {"preferred": True}, format="json")
    assert response.status_code == 200
    assert response.json()["profile_id"] == "pro_home"
    assert response.json()["preferred"] is True
    assert preferred_of(two_zooms) == "pro_home"
    listed = {
        p["profile_id"]: p["preferred"]
        for p in alice_client.get(reverse(f"{NS}:conferencing-profile-list")).json()
    }
    assert listed == {"pro_work": False, "pro_home": True, "pro_teams": False}


def test_one_preferred_profile_per_account(alice_client, two_zooms):
    alice_client.patch(profile_url("pro_home"), {"preferred": True}, format="json")
    alice_client.patch(profile_url("pro_work"), {"preferred": True}, format="json")
    assert preferred_of(two_zooms) == "pro_work"
    assert alice_client.get(profile_url("pro_home")).json()["preferred"] is False


def test_patch_preferred_false_stops_preferring_only_that_profile(alice_client, two_zooms):
    alice_client.patch(profile_url("pro_home"), {"preferred": True}, format="json")
    # Not the preferred one: nothing changes.
    response = alice_client.patch(profile_url("pro_work"), {"preferred": False}, format="json")
    assert response.status_code == 200 and response.json()["preferred"] is False
    assert preferred_of(two_zooms) == "pro_home"
    response = alice_client.patch(profile_url("pro_home"), {"preferred": False}, format="json")
    assert response.json()["preferred"] is False
    assert preferred_of(two_zooms) == ""


def test_a_disconnected_profile_can_be_preferred(alice_client, two_zooms):
    """The user's pick stands; conferencing_for(account, "preferred") then says to relink."""
    response = alice_client.patch(profile_url("pro_teams"), {"preferred": True}, format="json")
    assert response.status_code == 200
    assert preferred_of(two_zooms) == "pro_teams"


def test_another_users_profile_is_a_404_and_unchanged(bob_client, two_zooms):
    response = bob_client.patch(profile_url("pro_home"), {"preferred": True}, format="json")
    assert response.status_code == 404
    assert "home@zoom.example" not in response.content.decode()
    assert preferred_of(two_zooms) == ""


def test_anonymous_is_refused(anon_client, two_zooms):
    response = anon_client.patch(profile_url("pro_home"), {"preferred": True}, format="json")
    assert response.status_code in (401, 403)
    assert preferred_of(two_zooms) == ""


@pytest.mark.parametrize("body", [{}, {"preferred": "perhaps"}, {"preferred": None}, []])
def test_a_bad_body_is_a_400_and_changes_nothing(alice_client, two_zooms, body):
    response = alice_client.patch(profile_url("pro_home"), body, format="json")
    assert response.status_code == 400
    assert "preferred" in response.json() or "non_field_errors" in response.json()
    assert preferred_of(two_zooms) == ""


def test_a_removed_profile_cannot_be_preferred(alice_client, make_account, user):
    from django.utils import timezone

    account = make_account(
        user, profiles=[{"profile_id": "pro_gone", "removed_at": timezone.now()}]
    )
    response = alice_client.patch(profile_url("pro_gone"), {"preferred": True}, format="json")
    assert response.status_code == 404
    assert preferred_of(account) == ""


def test_other_fields_are_read_only(alice_client, two_zooms):
    response = alice_client.patch(
        profile_url("pro_home"),
        {"preferred": True, "profile_name": "renamed", "profile_connected": False},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["profile_name"] == "home@zoom.example"
    assert response.json()["profile_connected"] is True


def test_put_and_calendar_profiles_have_no_write(alice_client, two_zooms):
    assert (
        alice_client.put(profile_url("pro_home"), {"preferred": True}, format="json").status_code
        == 405
    )
    calendar = reverse(f"{NS}:calendar-profile-detail", args=["pro_home"])
    assert alice_client.patch(calendar, {"preferred": True}, format="json").status_code == 405


def test_the_list_costs_no_query_per_profile(
    alice_client, make_account, user, django_assert_max_num_queries
):
    make_account(user, profiles=[{"profile_id": f"pro_{i}"} for i in range(3)])
    url = reverse(f"{NS}:conferencing-profile-list")
    with django_assert_max_num_queries(3) as few:
        alice_client.get(url)
    make_account(user, profiles=[{"profile_id": f"pro_x{i}"} for i in range(20)])
    with django_assert_max_num_queries(len(few.captured_queries)):
        alice_client.get(url)


# -- the API fixes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "words"),
    [
        ("account-sync", "Sync this Cronofy account"),
        ("account-conferencing-authorization", "Start connecting a conferencing provider"),
        ("account-conferencing-choices", "What conferencing this account can put on an event"),
    ],
)
def test_each_action_describes_itself(alice_client, two_zooms, route, words):
    """The browsable API (and OPTIONS) show the action's own description, not the account
    list's ("The requesting user's linked Cronofy accounts.")."""
    url = reverse(f"{NS}:{route}", args=[two_zooms.pk])
    described = alice_client.options(url).json()["description"]
    assert described.startswith(words)
    page = alice_client.get(url, HTTP_ACCEPT="text/html").content.decode()
    assert words in page
    assert "The requesting user&#x27;s linked Cronofy accounts" not in page
    assert "The requesting user's linked Cronofy accounts" not in page


def test_the_503_body_has_a_code_like_the_409(alice_client, synced, sim, settings_with):
    account, _ = synced
    sim.fail("userinfo", status=503, times=None)
    with settings_with(MAX_RETRIES=0):
        response = alice_client.post(reverse(f"{NS}:account-sync", args=[account.pk]))
    assert response.status_code == 503
    assert response.json() == {
        "detail": "Cronofy is unavailable right now. Try again later.",
        "code": "cronofy_unavailable",
    }


def test_the_choices_list_the_preferred_profile_first(alice_client, two_zooms):
    alice_client.patch(profile_url("pro_home"), {"preferred": True}, format="json")
    url = reverse(f"{NS}:account-conferencing-choices", args=[two_zooms.pk])
    available = alice_client.get(url).json()["available"]
    assert [(c["value"], c["preferred"]) for c in available] == [
        ("pro_home", True),
        ("pro_work", False),
        ("default", False),
    ]

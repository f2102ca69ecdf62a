"""The DRF API: scoping, filters, actions, error mapping, throttling, pagination, queries.

Every response goes through a scanning client (``tests.secret_scan``) that fails
the test if a token or the client secret appears in it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.test import APIRequestFactory, force_authenticate

from django_cronofy_conferencing.api.serializers import (
    ConferencingProfileSerializer,
    LinkedAccountSerializer,
)
from django_cronofy_conferencing.api.views import ConferencingProfileViewSet, LinkedAccountViewSet
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET
from tests.secret_scan import ScanningAPIClient, SecretLeak

pytestmark = pytest.mark.django_db

NS = "cronofy_conferencing_api"


class TwoPerPage(PageNumberPagination):
    # DRF reads PAGE_SIZE into PageNumberPagination when its module is first
    # imported, so a test cannot change the stock class's size with settings.
    page_size = 2


class HundredPerPage(PageNumberPagination):
    page_size = 100


PAGINATED = {"DEFAULT_PAGINATION_CLASS": "tests.api.test_views.TwoPerPage"}
PAGINATED_100 = {"DEFAULT_PAGINATION_CLASS": "tests.api.test_views.HundredPerPage"}


def url(name: str, *args) -> str:
    return reverse(f"{NS}:{name}", args=args)


def profiles_url() -> str:
    return url("conferencing-profile-list")


def profile_url(profile_id: str) -> str:
    return url("conferencing-profile-detail", profile_id)


def accounts_url() -> str:
    return url("account-list")


def account_url(pk: int) -> str:
    return url("account-detail", pk)


def sync_url(pk: int) -> str:
    return url("account-sync", pk)


def authorization_url(pk: int) -> str:
    return url("account-conferencing-authorization", pk)


def celery_settings(**extra):
    from django.conf import settings

    return override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "TASK_QUEUE": "celery", **extra}
    )


def app_settings_with(**extra):
    from django.conf import settings

    return override_settings(CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, **extra})


# -- routes and names ------------------------------------------------------


def test_url_names_and_paths():
    assert profiles_url() == "/api/cronofy/conferencing-profiles/"
    assert profile_url("pro_x.y") == "/api/cronofy/conferencing-profiles/pro_x.y/"
    assert accounts_url() == "/api/cronofy/accounts/"
    assert account_url(7) == "/api/cronofy/accounts/7/"
    assert sync_url(7) == "/api/cronofy/accounts/7/sync/"
    assert authorization_url(7) == "/api/cronofy/accounts/7/conferencing-authorization/"


# -- anonymous and other users ---------------------------------------------


def _all_routes(account_pk: int, profile_id: str):
    return [
        ("get", profiles_url()),
        ("get", profile_url(profile_id)),
        ("get", accounts_url()),
        ("get", account_url(account_pk)),
        ("delete", account_url(account_pk)),
        ("post", sync_url(account_pk)),
        ("post", authorization_url(account_pk)),
    ]


def test_anonymous_is_refused_everywhere(anon_client, make_account, user, sim):
    account = make_account(user, profiles=[{"profile_id": "pro_alice"}])
    for method, path in _all_routes(account.pk, "pro_alice"):
        response = getattr(anon_client, method)(path)
        assert response.status_code in (401, 403), (method, path)
        assert "pro_alice" not in response.content.decode()
    assert LinkedAccount.objects.filter(pk=account.pk).exists()
    assert sim.requests == []


def test_anonymous_gets_nothing_even_when_the_host_allows_any(anon_client, make_account, user):
    make_account(user, profiles=[{"profile_id": "pro_alice"}])
    with app_settings_with(API_PERMISSION_CLASSES=["rest_framework.permissions.AllowAny"]):
        assert anon_client.get(profiles_url()).json() == []
        assert anon_client.get(accounts_url()).json() == []
        assert anon_client.get(profile_url("pro_alice")).status_code == 404


@pytest.mark.parametrize(
    "method,route",
    [
        ("get", "profile"),
        ("get", "account"),
        ("delete", "account"),
        ("post", "sync"),
        ("post", "authorization"),
    ],
)
def test_another_users_ids_are_404(bob_client, synced, sim, method, route):
    account, _sim_account = synced
    profile_id = account.conferencing_profiles.first().profile_id
    before = len(sim.requests)
    path = {
        "profile": profile_url(profile_id),
        "account": account_url(account.pk),
        "sync": sync_url(account.pk),
        "authorization": authorization_url(account.pk),
    }[route]
    response = getattr(bob_client, method)(path, {}, format="json")
    assert response.status_code == 404
    assert account.email not in response.content.decode()
    # Nothing happened at Cronofy or here.
    assert len(sim.requests) == before
    assert LinkedAccount.objects.filter(pk=account.pk).exists()
    assert account.conferencing_profiles.count() == 2


def test_lists_show_only_the_users_own_rows(
    alice_client, bob_client, make_account, user, other_user
):
    alice = make_account(user, profiles=[{"profile_id": "pro_a1"}, {"profile_id": "pro_a2"}])
    bob = make_account(other_user, profiles=[{"profile_id": "pro_b1"}])
    make_account(None, profiles=[{"profile_id": "pro_nobody"}])

    assert [a["id"] for a in alice_client.get(accounts_url()).json()] == [alice.pk]
    assert [a["id"] for a in bob_client.get(accounts_url()).json()] == [bob.pk]
    assert {p["profile_id"] for p in alice_client.get(profiles_url()).json()} == {
        "pro_a1",
        "pro_a2",
    }
    assert [p["profile_id"] for p in bob_client.get(profiles_url()).json()] == ["pro_b1"]
    # Filtering on someone else's account finds nothing rather than leaking.
    assert bob_client.get(profiles_url(), {"account": alice.pk}).json() == []
    assert alice_client.get(profile_url("pro_b1")).status_code == 404
    assert bob_client.get(profile_url("pro_a1")).status_code == 404


def test_write_methods_that_do_not_exist_are_405(alice_client, make_account, user):
    account = make_account(user, profiles=[{"profile_id": "pro_a"}])
    for method, path in [
        ("post", accounts_url()),
        ("put", account_url(account.pk)),
        ("patch", account_url(account.pk)),
        ("post", profiles_url()),
        ("delete", profile_url("pro_a")),
        ("get", sync_url(account.pk)),
        ("get", authorization_url(account.pk)),
    ]:
        assert getattr(alice_client, method)(path, {}, format="json").status_code == 405


# -- permission and scoping hooks ------------------------------------------


def test_permission_classes_come_from_settings(alice_client, make_account, user):
    make_account(user)
    with app_settings_with(API_PERMISSION_CLASSES=["rest_framework.permissions.IsAdminUser"]):
        assert alice_client.get(accounts_url()).status_code == 403
        user.is_staff = True
        user.save()
        assert alice_client.get(accounts_url()).status_code == 200


class NoDisconnectedProfiles(BasePermission):
    """A host's object-level rule: disconnected profiles are not shown one by one."""

    def has_object_permission(self, request, view, obj):
        return getattr(obj, "profile_connected", True)


def test_a_hosts_object_permission_class_is_checked_on_profile_detail(
    alice_client, make_account, user
):
    make_account(
        user,
        profiles=[
            {"profile_id": "pro_ok", "profile_connected": True},
            {"profile_id": "pro_broken", "profile_connected": False},
        ],
    )
    classes = [
        "rest_framework.permissions.IsAuthenticated",
        f"{__name__}.NoDisconnectedProfiles",
    ]
    with app_settings_with(API_PERMISSION_CLASSES=classes):
        assert alice_client.get(profile_url("pro_ok")).status_code == 200
        assert alice_client.get(profile_url("pro_broken")).status_code == 403


def test_a_bad_permission_class_names_the_setting(alice_client):
    with (
        app_settings_with(API_PERMISSION_CLASSES=["nowhere.Permission"]),
        pytest.raises(ImproperlyConfigured, match=r"API_PERMISSION_CLASSES'\]\[0\]"),
    ):
        alice_client.get(accounts_url())


def test_a_subclass_can_replace_the_scoping(make_account, user, other_user):
    class StaffSeeEverything(LinkedAccountViewSet):
        def scope_queryset(self, request, queryset):
            if request.user.is_staff:
                return queryset
            return super().scope_queryset(request, queryset)

    alice = make_account(user)
    bob = make_account(other_user)
    view = StaffSeeEverything.as_view({"get": "list"})
    request = APIRequestFactory().get("/")
    force_authenticate(request, user=user)
    assert [a["id"] for a in view(request).data] == [alice.pk]
    user.is_staff = True
    user.save()
    request = APIRequestFactory().get("/")
    force_authenticate(request, user=user)
    assert [a["id"] for a in view(request).data] == [alice.pk, bob.pk]


def test_a_subclass_can_set_its_permission_classes(make_account, user):
    from rest_framework.permissions import IsAdminUser

    class AdminsOnly(ConferencingProfileViewSet):
        permission_classes = [IsAdminUser]

    request = APIRequestFactory().get("/")
    force_authenticate(request, user=user)
    assert AdminsOnly.as_view({"get": "list"})(request).status_code == 403


# -- conferencing profiles -------------------------------------------------


def test_profile_list_fields(alice_client, synced):
    account, _ = synced
    data = alice_client.get(profiles_url()).json()
    assert [p["provider_name"] for p in data] == ["ms_teams", "zoom"]
    teams, zoom = data
    # The field list itself is pinned in test_serializers.py.
    assert set(zoom) == set(ConferencingProfileSerializer.Meta.fields)
    assert zoom["account"] == account.pk
    assert zoom["profile_connected"] is True
    assert zoom["profile_relink_url"] == ""
    assert teams["profile_connected"] is False
    assert teams["profile_relink_url"].startswith("https://app.cronofy.com/v2/relink/ms_teams")
    expected = account.last_synced_at.isoformat().replace("+00:00", "Z")
    assert zoom["last_seen_at"] == teams["last_seen_at"] == expected


def test_removed_profiles_are_not_listed(alice_client, make_account, user):
    make_account(
        user,
        profiles=[
            {"profile_id": "pro_here"},
            {"profile_id": "pro_gone", "removed_at": timezone.now()},
        ],
    )
    assert [p["profile_id"] for p in alice_client.get(profiles_url()).json()] == ["pro_here"]
    assert alice_client.get(profile_url("pro_gone")).status_code == 404


def test_profile_detail_by_profile_id(alice_client, make_account, user):
    account = make_account(
        user,
        profiles=[{"profile_id": "pro_dotted.id-1", "profile_name": "x@example.com"}],
        last_synced_at=None,
    )
    response = alice_client.get(profile_url("pro_dotted.id-1"))
    assert response.status_code == 200
    body = response.json()
    assert body["profile_id"] == "pro_dotted.id-1"
    assert body["account"] == account.pk
    assert body["last_seen_at"] is None  # never synced
    assert alice_client.get(profile_url("pro_unknown")).status_code == 404


def test_the_same_profile_id_on_two_of_the_users_accounts(alice_client, make_account, user):
    first = make_account(user, profiles=[{"profile_id": "pro_shared"}])
    second = make_account(user, profiles=[{"profile_id": "pro_shared"}])
    assert alice_client.get(profile_url("pro_shared")).json()["account"] == first.pk
    response = alice_client.get(profile_url("pro_shared"), {"account": second.pk})
    assert response.json()["account"] == second.pk


@pytest.fixture
def filter_data(make_account, user):
    one = make_account(
        user,
        profiles=[
            {"profile_id": "pro_zoom", "provider_name": "zoom"},
            {"profile_id": "pro_teams", "provider_name": "ms_teams", "profile_connected": False},
        ],
    )
    two = make_account(
        user,
        profiles=[
            {"profile_id": "pro_goto", "provider_name": "go_to"},
            {"profile_id": "pro_zoom2", "provider_name": "zoom", "profile_connected": False},
        ],
    )
    return one, two


@pytest.mark.parametrize(
    "params,expected",
    [
        ({}, {"pro_zoom", "pro_teams", "pro_goto", "pro_zoom2"}),
        ({"provider_name": "zoom"}, {"pro_zoom", "pro_zoom2"}),
        ({"provider_name": "a_future_provider"}, set()),
        ({"profile_connected": "true"}, {"pro_zoom", "pro_goto"}),
        ({"profile_connected": "false"}, {"pro_teams", "pro_zoom2"}),
        ({"profile_connected": ""}, {"pro_zoom", "pro_teams", "pro_goto", "pro_zoom2"}),
        ({"provider_name": "zoom", "profile_connected": "false"}, {"pro_zoom2"}),
        ({"account": "ONE"}, {"pro_zoom", "pro_teams"}),
        ({"account": "TWO", "provider_name": "zoom"}, {"pro_zoom2"}),
    ],
)
def test_profile_filters(alice_client, filter_data, params, expected):
    one, two = filter_data
    params = {k: {"ONE": str(one.pk), "TWO": str(two.pk)}.get(v, v) for k, v in params.items()}
    response = alice_client.get(profiles_url(), params)
    assert response.status_code == 200
    assert {p["profile_id"] for p in response.json()} == expected


@pytest.mark.parametrize(
    "params,errors",
    [
        ({"profile_connected": "maybe"}, {"profile_connected": ["Must be a valid boolean."]}),
        ({"account": "abc"}, {"account": ["A valid integer is required."]}),
        (
            {"account": "0"},
            {"account": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            {"provider_name": "x" * 101},
            {"provider_name": ["Ensure this field has no more than 100 characters."]},
        ),
    ],
)
def test_bad_filter_values_are_400(alice_client, filter_data, params, errors):
    response = alice_client.get(profiles_url(), params)
    assert response.status_code == 400
    assert response.json() == errors


# -- accounts ----------------------------------------------------------------


def test_account_list_and_detail_fields(alice_client, synced):
    account, sim_account = synced
    data = alice_client.get(accounts_url()).json()
    assert len(data) == 1
    body = data[0]
    # The field list itself is pinned in test_serializers.py.
    assert set(body) == set(LinkedAccountSerializer.Meta.fields)
    assert body["id"] == account.pk
    assert body["sub"] == sim_account.sub
    assert body["email"] == sim_account.email
    assert body["status"] == "active"
    assert body["conferencing_profiles_total"] == 2
    assert body["conferencing_profiles_connected"] == 1
    assert alice_client.get(account_url(account.pk)).json() == body


def test_profile_counts_ignore_removed_profiles(alice_client, make_account, user):
    account = make_account(
        user,
        profiles=[
            {"profile_id": "a"},
            {"profile_id": "b", "profile_connected": False},
            {"profile_id": "c", "removed_at": timezone.now()},
        ],
    )
    body = alice_client.get(account_url(account.pk)).json()
    assert (body["conferencing_profiles_total"], body["conferencing_profiles_connected"]) == (2, 1)


def test_delete_unlinks(alice_client, synced, sim):
    account, sim_account = synced
    response = alice_client.delete(account_url(account.pk))
    assert response.status_code == 204
    assert sim.count("revoke") == 1
    assert not LinkedAccount.objects.filter(pk=account.pk).exists()
    assert not ConferencingProfile.objects.filter(account_id=account.pk).exists()
    assert sim_account.refresh_token not in sim.refresh_tokens  # the grant is gone
    assert alice_client.get(account_url(account.pk)).status_code == 404


@pytest.mark.parametrize(
    "fault,status",
    [
        ({"status": 503}, 503),
        ({"exception": requests.ConnectionError}, 503),
        ({"status": 429, "headers": {"Retry-After": "7"}}, 429),
    ],
)
def test_delete_when_cronofy_is_unreachable_keeps_everything(
    alice_client, synced, sim, fault, status
):
    account, _ = synced
    sim.fail("revoke", times=None, **fault)
    response = alice_client.delete(account_url(account.pk))
    assert response.status_code == status
    assert LinkedAccount.objects.filter(pk=account.pk).exists()
    assert account.conferencing_profiles.count() == 2
    if status == 429:
        assert response["Retry-After"] == "7"


def test_delete_of_a_grant_cronofy_no_longer_knows_still_deletes(alice_client, synced, sim):
    account, _ = synced
    sim.fail("revoke", status=400, body='{"error": "invalid_grant"}')
    assert alice_client.delete(account_url(account.pk)).status_code == 204
    assert not LinkedAccount.objects.filter(pk=account.pk).exists()


def test_delete_refused_by_cronofy_keeps_everything(alice_client, synced, sim):
    account, _ = synced
    sim.fail("revoke", status=400, body='{"error": "invalid_client"}')
    response = alice_client.delete(account_url(account.pk))
    assert response.status_code == 502
    assert LinkedAccount.objects.filter(pk=account.pk).exists()
    assert account.conferencing_profiles.count() == 2


# -- sync ----------------------------------------------------------------------


def test_sync_returns_the_result(alice_client, link_account, sim, user):
    account, sim_account = link_account(
        user=user,
        conferencing_profiles=[sim.profile("zoom"), sim.profile("go_to")],
        calendar_profiles=[sim.calendar_profile("google")],
    )
    no_calendar_change = {
        "calendar_created": 0,
        "calendar_updated": 0,
        "calendar_removed": 0,
        "calendar_unchanged": 1,
    }
    response = alice_client.post(sync_url(account.pk))
    assert response.status_code == 200
    assert response.json() == {
        "created": 2,
        "updated": 0,
        "removed": 0,
        "unchanged": 0,
        **no_calendar_change,
        "calendar_created": 1,
        "calendar_unchanged": 0,
        "changed": True,
    }
    assert len(alice_client.get(profiles_url()).json()) == 2

    sim.set_connected(sim_account.sub, sim_account.conferencing_profiles[0]["profile_id"], False)
    response = alice_client.post(sync_url(account.pk))
    assert response.json() == {
        "created": 0,
        "updated": 1,
        "removed": 0,
        "unchanged": 1,
        **no_calendar_change,
        "changed": True,
    }
    disconnected = alice_client.get(profiles_url(), {"profile_connected": "false"}).json()
    assert [p["profile_relink_url"].startswith("https://") for p in disconnected] == [True]


@pytest.mark.django_db(transaction=True)  # enqueued on commit: no test transaction around it
def test_sync_with_celery_queues_and_answers_202(alice_client, make_account, user, monkeypatch):
    from django_cronofy_conferencing import tasks

    queued = []
    monkeypatch.setattr(
        tasks.sync_account_task, "delay", lambda pk, lane: queued.append((pk, lane))
    )
    account = make_account(user)
    with celery_settings():
        response = alice_client.post(sync_url(account.pk))
    assert response.status_code == 202
    assert response.json() == {"account": account.pk, "queued": True}
    assert queued == [(account.pk, "user")]  # the queued sync keeps the user's lane


def test_sync_with_celery_refuses_an_account_that_must_reconnect(
    alice_client, make_account, user, monkeypatch, sim
):
    from django_cronofy_conferencing import tasks

    queued = []
    monkeypatch.setattr(tasks.sync_account_task, "delay", queued.append)
    account = make_account(user, status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED)
    with celery_settings():
        response = alice_client.post(sync_url(account.pk))
    assert response.status_code == 409
    assert queued == []


# -- error mapping -------------------------------------------------------------


def _leaky_body(sim_account) -> str:
    """A Cronofy error body echoing the credentials, to prove they never reach the client."""
    return (
        f'{{"access_token": "{sim_account.access_token}", '
        f'"refresh_token": "{sim_account.refresh_token}", '
        f'"client_secret": "{DEFAULT_CLIENT_SECRET}"}}'
    )


@pytest.mark.parametrize(
    "fault,status,code",
    [
        ({"status": 503}, 503, "cronofy_unavailable"),
        ({"status": 500}, 503, "cronofy_unavailable"),
        ({"exception": requests.ConnectTimeout}, 503, "cronofy_unavailable"),
        ({"status": 403}, 502, "cronofy_error"),
        ({"status": 422}, 502, "cronofy_error"),
        ({"status": 200, "body": "<html>not json</html>"}, 502, "cronofy_invalid_response"),
        ({"status": 200, "body": '{"sub": "acc_someone_else"}'}, 502, "cronofy_invalid_response"),
    ],
)
def test_sync_errors_are_mapped(alice_client, synced, sim, fault, status, code):
    account, sim_account = synced
    fault.setdefault("body", _leaky_body(sim_account))
    sim.fail("userinfo", times=None, **fault)
    response = alice_client.post(sync_url(account.pk))
    assert response.status_code == status
    # Every Cronofy error answers its code beside the detail, like the 409 does.
    assert set(response.json()) == {"detail", "code"}
    assert response.json()["code"] == code
    assert response.json()["detail"]
    # The failure is recorded on the account, the profiles are untouched.
    account.refresh_from_db()
    assert account.consecutive_failures == 1
    assert account.conferencing_profiles.count() == 2


def test_rate_limited_is_429_with_cronofys_retry_after(alice_client, synced, sim):
    account, sim_account = synced
    sim.fail(
        "userinfo",
        status=429,
        headers={"Retry-After": "12"},
        body=_leaky_body(sim_account),
        times=None,
    )
    response = alice_client.post(sync_url(account.pk))
    assert response.status_code == 429
    assert response["Retry-After"] == "12"
    assert "detail" in response.json()
    assert response.json()["code"] == "cronofy_rate_limited"


def test_rate_limited_without_retry_after_still_sends_one(alice_client, synced, sim):
    account, _ = synced
    sim.fail("userinfo", status=429, times=None)
    response = alice_client.post(sync_url(account.pk))
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_reauthorization_required_is_409_with_the_reconnect_url(alice_client, synced, sim):
    account, sim_account = synced
    sim.revoke_grant(sim_account.sub)  # the user disconnected the app at Cronofy
    response = alice_client.post(sync_url(account.pk))
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "reauthorization_required"
    assert body["reconnect_url"] == "http://testserver/cronofy/connect/?data_center=us"
    assert alice_client.get(account_url(account.pk)).json()["status"] == (
        "reauthorization_required"
    )
    # Already known: answered without calling Cronofy again.
    before = len(sim.requests)
    assert alice_client.post(sync_url(account.pk)).status_code == 409
    assert len(sim.requests) == before


def test_reconnect_url_keeps_the_accounts_data_center(alice_client, make_account, user):
    account = make_account(
        user, data_center="de", status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    response = alice_client.post(sync_url(account.pk))
    assert response.status_code == 409
    assert response.json()["reconnect_url"].endswith("/cronofy/connect/?data_center=de")


def test_a_host_exception_handler_still_gets_retry_after(alice_client, synced, sim):
    account, _ = synced
    sim.fail("userinfo", status=429, headers={"Retry-After": "3"}, times=None)
    with override_settings(
        REST_FRAMEWORK={"EXCEPTION_HANDLER": "tests.api.test_views.bare_exception_handler"}
    ):
        response = alice_client.post(sync_url(account.pk))
    assert response.status_code == 429
    assert response.json() == {"error": "429"}
    assert response["Retry-After"] == "3"


def bare_exception_handler(exc, context):
    from rest_framework.exceptions import APIException
    from rest_framework.response import Response

    if isinstance(exc, APIException):
        return Response({"error": str(exc.status_code)}, status=exc.status_code)
    return None


# -- throttling ----------------------------------------------------------------


def test_sync_is_throttled_with_the_apps_default_rate(
    alice_client, bob_client, synced, make_account, other_user
):
    account, _ = synced
    bob_account = make_account(other_user, status=LinkedAccount.Status.REVOKED)
    with app_settings_with(API_SYNC_THROTTLE_RATE="2/min"):
        assert alice_client.post(sync_url(account.pk)).status_code == 200
        assert alice_client.post(sync_url(account.pk)).status_code == 200
        throttled = alice_client.post(sync_url(account.pk))
        assert throttled.status_code == 429
        assert int(throttled["Retry-After"]) > 0
        assert throttled.json()["code"] == "throttled"
        assert throttled.json()["detail"].startswith("Request was throttled.")
        # Per user: Bob is not affected; other routes are not throttled.
        assert bob_client.post(sync_url(bob_account.pk)).status_code == 409
        assert alice_client.get(accounts_url()).status_code == 200


def test_the_hosts_throttle_rate_wins(alice_client, synced):
    account, _ = synced
    with (
        app_settings_with(API_SYNC_THROTTLE_RATE="100/min"),
        override_settings(REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {"cronofy_sync": "1/min"}}),
    ):
        assert alice_client.post(sync_url(account.pk)).status_code == 200
        assert alice_client.post(sync_url(account.pk)).status_code == 429


def test_the_host_can_disable_the_throttle(alice_client, synced):
    account, _ = synced
    with (
        app_settings_with(API_SYNC_THROTTLE_RATE="1/min"),
        override_settings(REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {"cronofy_sync": None}}),
    ):
        for _ in range(3):
            assert alice_client.post(sync_url(account.pk)).status_code == 200


def test_a_hosts_own_scoped_throttle_is_not_broken(synced, user):
    """A host using ScopedRateThrottle everywhere needs no rate for our scope."""
    from rest_framework.throttling import ScopedRateThrottle

    account, _ = synced
    # Default throttle classes are bound when DRF is imported: pass them as the
    # host's settings would have.
    sync_view = LinkedAccountViewSet.as_view(
        {"post": "sync"}, throttle_classes=[ScopedRateThrottle]
    )
    list_view = LinkedAccountViewSet.as_view({"get": "list"}, throttle_classes=[ScopedRateThrottle])
    factory = APIRequestFactory()
    with override_settings(REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {}}):
        for _ in range(2):
            request = factory.post("/")
            force_authenticate(request, user=user)
            assert sync_view(request, pk=account.pk).status_code == 200
        request = factory.get("/")
        force_authenticate(request, user=user)
        assert list_view(request).status_code == 200
    with (
        app_settings_with(API_SYNC_THROTTLE_RATE="1/min"),
        override_settings(REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {}}),
    ):
        request = factory.post("/")
        force_authenticate(request, user=user)
        # Ours still applies on top of the host's (two syncs above count).
        assert sync_view(request, pk=account.pk).status_code == 429


# -- conferencing authorization --------------------------------------------------


def test_conferencing_authorization_defaults_to_the_browser_return_page(
    alice_client, synced, sim, user
):
    account, _ = synced
    response = alice_client.post(authorization_url(account.pk), {}, format="json")
    assert response.status_code == 200
    url = response.json()["url"]
    assert url.startswith("https://app.cronofy.com/conferencing_services/")
    sent = [r for r in sim.requests if r.endpoint == "conferencing_service_authorizations"][-1]
    prefix = f"http://testserver/cronofy/accounts/{account.pk}/conferencing/return/"
    assert list(sent.json) == ["redirect_uri"]
    assert sent.json["redirect_uri"].startswith(prefix)
    # The browser that comes back syncs once with it, and only once.
    back = sim.complete_conferencing_authorization(url)
    browser = Client()
    browser.force_login(user)
    before = sim.count("userinfo")
    assert browser.get(back).status_code == 302
    assert browser.get(back).status_code == 302
    assert sim.count("userinfo") == before + 1


def test_conferencing_authorization_with_provider_and_redirect(alice_client, synced, sim):
    account, _ = synced
    response = alice_client.post(
        authorization_url(account.pk),
        {"provider_name": "zoom", "redirect_uri": "https://frontend.example/done?x=1"},
        format="json",
    )
    assert response.status_code == 200
    assert set(response.json()) == {"url"}
    sent = [r for r in sim.requests if r.endpoint == "conferencing_service_authorizations"][-1]
    assert sent.json == {
        "redirect_uri": "https://frontend.example/done?x=1",
        "provider_name": "zoom",
    }
    # The simulated user completes it and the next sync shows the new profile.
    sim.complete_conferencing_authorization(response.json()["url"])
    assert alice_client.post(sync_url(account.pk)).json()["created"] == 1


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"redirect_uri": "/relative/path"}, "redirect_uri"),
        ({"redirect_uri": "ftp://files.example/x"}, "redirect_uri"),
        ({"redirect_uri": "javascript:alert(1)"}, "redirect_uri"),
        ({"redirect_uri": "https://" + "a" * 2050 + ".example"}, "redirect_uri"),
        ({"provider_name": "zoom&evil=1"}, "provider_name"),
        ({"provider_name": "x" * 101}, "provider_name"),
    ],
)
def test_conferencing_authorization_validation(alice_client, synced, sim, payload, field):
    account, _ = synced
    before = len(sim.requests)
    response = alice_client.post(authorization_url(account.pk), payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert isinstance(body[field], list) and body[field]
    assert len(sim.requests) == before


@pytest.mark.parametrize(
    "fault,status",
    [
        ({"status": 503}, 503),
        ({"status": 429, "headers": {"Retry-After": "5"}}, 429),
        ({"status": 403}, 502),
        ({"status": 200, "body": '{"authorization_request": {}}'}, 502),
    ],
)
def test_conferencing_authorization_errors(alice_client, synced, sim, fault, status):
    account, sim_account = synced
    fault.setdefault("body", _leaky_body(sim_account))
    sim.fail("conferencing_service_authorizations", times=None, **fault)
    response = alice_client.post(authorization_url(account.pk), {}, format="json")
    assert response.status_code == status


def test_conferencing_authorization_for_an_account_that_must_reconnect(
    alice_client, make_account, user, sim
):
    account = make_account(user, status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED)
    response = alice_client.post(authorization_url(account.pk), {}, format="json")
    assert response.status_code == 409
    assert response.json()["reconnect_url"] == ("http://testserver/cronofy/connect/?data_center=us")
    assert sim.requests == []


# -- pagination ------------------------------------------------------------------


def test_lists_are_unpaginated_by_default(alice_client, make_account, user):
    make_account(user, profiles=[{"profile_id": f"p{i}"} for i in range(5)])
    assert isinstance(alice_client.get(profiles_url()).json(), list)


def test_pagination_follows_the_host_setting(alice_client, make_account, user):
    make_account(user, profiles=[{"profile_id": f"p{i}"} for i in range(5)])
    make_account(user)
    make_account(user)
    with override_settings(REST_FRAMEWORK=PAGINATED):
        first = alice_client.get(profiles_url()).json()
        assert first["count"] == 5
        assert [p["profile_id"] for p in first["results"]] == ["p0", "p1"]
        assert first["next"].endswith("/api/cronofy/conferencing-profiles/?page=2")
        third = alice_client.get(profiles_url(), {"page": 3}).json()
        assert [p["profile_id"] for p in third["results"]] == ["p4"]
        assert third["next"] is None
        filtered = alice_client.get(profiles_url(), {"profile_connected": "true"}).json()
        assert filtered["count"] == 5
        accounts = alice_client.get(accounts_url()).json()
        assert accounts["count"] == 3
        assert len(accounts["results"]) == 2
        assert alice_client.get(profiles_url(), {"page": 9}).status_code == 404


# -- query counts ----------------------------------------------------------------


def _profiles_for(make_account, user, count: int, per_account: int = 50) -> None:
    made = 0
    while made < count:
        n = min(per_account, count - made)
        make_account(
            user,
            profiles=[
                {"profile_id": f"pro_{made + i}", "profile_connected": bool(i % 2)}
                for i in range(n)
            ],
        )
        made += n


@pytest.mark.parametrize("count", [1, 200])
def test_profile_list_queries_are_constant(
    alice_client, make_account, user, django_assert_num_queries, count
):
    _profiles_for(make_account, user, count)
    with django_assert_num_queries(1):
        response = alice_client.get(profiles_url())
    assert len(response.json()) == count


@pytest.mark.parametrize("count", [1, 200])
def test_profile_list_queries_are_constant_when_paginated(
    alice_client, make_account, user, django_assert_num_queries, count
):
    _profiles_for(make_account, user, count)
    with (
        override_settings(REST_FRAMEWORK=PAGINATED_100),
        django_assert_num_queries(2),  # count + page
    ):
        response = alice_client.get(profiles_url(), {"provider_name": "zoom"})
    assert response.json()["count"] == count


@pytest.mark.parametrize("count", [1, 200])
def test_account_list_queries_are_constant(
    alice_client, make_account, user, django_assert_num_queries, count
):
    # ``count`` accounts with two profiles each, and ``count`` profiles on one account.
    for i in range(count):
        make_account(
            user,
            profiles=[
                {"profile_id": f"pro_{i}_a"},
                {"profile_id": f"pro_{i}_b", "profile_connected": False},
            ],
        )
    with django_assert_num_queries(1):
        response = alice_client.get(accounts_url())
    data = response.json()
    assert len(data) == count
    assert {
        (a["conferencing_profiles_total"], a["conferencing_profiles_connected"]) for a in data
    } == {(2, 1)}
    with override_settings(REST_FRAMEWORK=PAGINATED), django_assert_num_queries(2):
        alice_client.get(accounts_url())


def test_detail_queries(alice_client, make_account, user, django_assert_num_queries):
    account = make_account(user, profiles=[{"profile_id": f"p{i}"} for i in range(30)])
    with django_assert_num_queries(1):
        assert alice_client.get(account_url(account.pk)).status_code == 200
    with django_assert_num_queries(1):
        assert alice_client.get(profile_url("p7")).status_code == 200


# -- secrets ---------------------------------------------------------------------


def test_the_scanner_catches_a_leak(scanner, synced):
    from django.http import HttpResponse

    _account, sim_account = synced
    scanner.check(HttpResponse("nothing secret"))
    for secret in (sim_account.access_token, sim_account.refresh_token, DEFAULT_CLIENT_SECRET):
        with pytest.raises(SecretLeak):
            scanner.check(HttpResponse(f"... {secret} ..."))
    leaky = HttpResponse("ok")
    leaky["X-Debug"] = sim_account.refresh_token
    with pytest.raises(SecretLeak):
        scanner.check(leaky)


def test_every_route_is_scanned(alice_client, scanner, synced, sim):
    """One pass over every route and method, success and failure, all scanned."""
    account, sim_account = synced
    profile_id = account.conferencing_profiles.first().profile_id
    start = scanner.checked
    assert alice_client.get(profiles_url()).status_code == 200
    assert alice_client.get(profile_url(profile_id)).status_code == 200
    assert alice_client.get(accounts_url()).status_code == 200
    assert alice_client.get(account_url(account.pk)).status_code == 200
    assert alice_client.post(sync_url(account.pk)).status_code == 200
    assert alice_client.post(authorization_url(account.pk), {}, format="json").status_code == 200
    assert alice_client.get(reverse(f"{NS}:api-root")).status_code == 200
    sim.fail("userinfo", status=500, body=_leaky_body(sim_account), times=None)
    assert alice_client.post(sync_url(account.pk)).status_code == 503
    sim.fail("revoke", status=502, body=_leaky_body(sim_account), times=None)
    assert alice_client.delete(account_url(account.pk)).status_code == 503
    sim.clear_faults()
    assert alice_client.delete(account_url(account.pk)).status_code == 204
    assert scanner.checked - start == 10


def test_scanning_client_works_with_force_login(scanner, synced, user):
    client = ScanningAPIClient(scanner)
    client.force_login(user)
    assert client.get(accounts_url()).status_code == 200


def test_token_expiry_is_not_exposed(alice_client, make_account, user):
    make_account(user, token_expires_at=timezone.now() + timedelta(hours=1))
    body = alice_client.get(accounts_url()).json()[0]
    assert not [key for key in body if "token" in key]


# -- every action that calls Cronofy spends the user's budget (issue #10 item 1) --------


def test_200_conferencing_authorizations_make_12_cronofy_calls(alice_client, synced, sim):
    """Before: 200 requests made 200 Cronofy calls. After: the budget's 12."""
    account, _ = synced
    with app_settings_with(API_SYNC_THROTTLE_RATE="12/min"):
        statuses = [
            alice_client.post(authorization_url(account.pk), {}, format="json").status_code
            for _ in range(200)
        ]
    assert sim.count("conferencing_service_authorizations") == 12
    assert statuses.count(200) == 12 and statuses.count(429) == 188


def test_one_budget_across_sync_authorization_and_unlink(alice_client, synced, sim):
    account, _ = synced
    with app_settings_with(API_SYNC_THROTTLE_RATE="2/min"):
        assert alice_client.post(sync_url(account.pk)).status_code == 200
        assert (
            alice_client.post(authorization_url(account.pk), {}, format="json").status_code == 200
        )
        refused = alice_client.delete(account_url(account.pk))
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) > 0
    assert sim.count("revoke") == 0
    assert LinkedAccount.objects.filter(pk=account.pk).exists()


# -- odd input at the boundary (issue #10 item 5): 400 or 404, never 500 ---------------


@pytest.mark.parametrize(
    "value", [str(2**63), str(2**63 - 1 + 10**6), "9" * 40, str(-(2**63) - 1), "1e3"]
)
def test_out_of_range_account_filter_is_a_400(alice_client, make_account, user, value):
    make_account(user, profiles=[{}])
    response = alice_client.get(profiles_url(), {"account": value})
    assert response.status_code == 400
    assert "account" in response.json()


def test_the_largest_account_id_is_a_valid_filter(alice_client, make_account, user):
    make_account(user, profiles=[{}])
    response = alice_client.get(profiles_url(), {"account": str(2**63 - 1)})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "segment",
    ["pro_%00x", "%00", "pro_%ED%A0%80", "pro_%FF", "pro_" + "x" * 300, "%20pro_a", "pro%20a"],
)
def test_odd_profile_ids_in_the_detail_url_are_a_404(alice_client, make_account, user, segment):
    """Before: NUL reached PostgreSQL (DataError, a 500). After: 404, no query for it."""
    make_account(user, profiles=[{"profile_id": "pro_a"}])
    response = alice_client.get(profile_url("x").replace("/x/", f"/{segment}/"))
    assert response.status_code == 404


@pytest.mark.parametrize("pk", [str(2**63), "9" * 40, "0", "-1", "1.5", "\x00"])
def test_odd_account_ids_in_the_url_are_a_404(alice_client, make_account, user, pk):
    make_account(user)
    from urllib.parse import quote

    url = account_url(1).replace("/1/", f"/{quote(pk, safe='')}/")
    assert alice_client.get(url).status_code == 404
    assert alice_client.post(url + "sync/").status_code == 404


@pytest.mark.parametrize("value", ["zo\x00om", "x" * 101])
def test_odd_provider_name_filter_is_a_400(alice_client, make_account, user, value):
    make_account(user, profiles=[{}])
    assert alice_client.get(profiles_url(), {"provider_name": value}).status_code == 400


def test_the_browsable_api_offers_the_conferencing_authorization_form(
    alice_client, make_account, user, sim
):
    """DRF's browsable API renders the action's request form from its serializer."""
    account = make_account(user)
    response = alice_client.get(authorization_url(account.pk), HTTP_ACCEPT="text/html")
    assert response.status_code == 405  # POST only; the page still shows the form
    html = response.content.decode()
    assert 'name="provider_name"' in html and 'name="redirect_uri"' in html
    assert sim.count() == 0


def test_a_cronofy_error_answered_by_the_api_is_logged(alice_client, synced, sim, caplog):
    account, _ = synced
    sim.fail("userinfo", status=503, times=None)
    response = alice_client.post(url("account-sync", account.pk))
    assert response.status_code == 503
    assert "Cronofy API error answered with HTTP 503" in caplog.text

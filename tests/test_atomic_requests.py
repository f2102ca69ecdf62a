"""ATOMIC_REQUESTS never puts a transaction (and its locks) around a call to Cronofy.

A host with ``DATABASES[...]["ATOMIC_REQUESTS"] = True`` gets every view wrapped
in a transaction, which would hold locks (on SQLite the whole database) for as
long as Cronofy takes to answer. Every view that calls Cronofy opts out, and
the simulator checks, while it handles each call, that no transaction is open.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import SimulatedCronofy

pytestmark = pytest.mark.django_db(transaction=True)  # no test transaction around the request

CALLBACK_URL = "https://example.com/cronofy/notifications/"


@pytest.fixture
def calls(sim, monkeypatch):
    """ATOMIC_REQUESTS on; every simulated Cronofy call recorded with whether a
    transaction was open on the default database while Cronofy handled it."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    recorded: list[tuple[str, bool]] = []
    real_handle = SimulatedCronofy.handle

    def handle(self, request, data_center=None):
        recorded.append((request.path, connection.in_atomic_block))
        return real_handle(self, request, data_center)

    monkeypatch.setattr(SimulatedCronofy, "handle", handle)
    return recorded


def assert_outside_transactions(calls: list[tuple[str, bool]]) -> None:
    assert calls, "the view made no Cronofy call"
    assert [path for path, in_atomic in calls if in_atomic] == []


@pytest.fixture
def account(sim, link_account, user):
    account, sim_account = link_account(user=user, conferencing_profiles=[sim.profile("zoom")])
    sync_account(account)
    return account, sim_account


@pytest.fixture
def browser(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def staff_browser(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("admin", "a@example.com", None))
    return client


def test_the_setting_does_wrap_other_views(calls, browser, monkeypatch):
    """The control: ``connect`` (no Cronofy call) does run in the request transaction."""
    seen: list[bool] = []
    real = linking.authorization_url

    def authorization_url(*args, **kwargs):
        seen.append(connection.in_atomic_block)
        return real(*args, **kwargs)

    monkeypatch.setattr(linking, "authorization_url", authorization_url)
    assert browser.post(reverse("cronofy_conferencing:connect")).status_code == 302
    assert seen == [True]


# -- the browser flow and push notifications ------------------------------------------------


def test_callback(calls, browser, sim):
    sim_account = sim.add_account(conferencing_profiles=[sim.profile("zoom")])
    url = browser.post(reverse("cronofy_conferencing:connect"))["Location"]
    back = sim.authorize(url, account=sim_account)
    calls.clear()
    response = browser.get(back)
    assert response.status_code == 302
    assert LinkedAccount.objects.get().conferencing_profiles.count() == 1
    assert_outside_transactions(calls)


def test_conferencing_connect(calls, browser, account):
    url = reverse("cronofy_conferencing:conferencing_connect", args=[account[0].pk])
    response = browser.post(url, {"provider_name": "zoom"})
    assert response.status_code == 302
    assert_outside_transactions(calls)


def test_conferencing_return(calls, browser, account, user):
    from django_cronofy_conferencing.accounts.state import issue_return

    flow = issue_return(user, account[0].pk)
    url = reverse("cronofy_conferencing:conferencing_return", args=[account[0].pk, flow])
    calls.clear()
    response = browser.get(url, {"last_linked_profile_id": "pro_new"})
    assert response.status_code == 302
    assert_outside_transactions(calls)  # it did sync, outside any transaction


def test_push_notification(calls, sim, account, settings):
    settings.CRONOFY_CONFERENCING = {
        **settings.CRONOFY_CONFERENCING,
        "PUSH_NOTIFICATIONS_CALLBACK_URL": CALLBACK_URL,
    }
    linking.ensure_push_channel(account[0])
    body, headers = sim.notification(account[1].sub, "profile_disconnected")
    calls.clear()
    response = Client().post(
        reverse("cronofy_conferencing:notifications"),
        data=body,
        content_type="application/json",
        HTTP_CRONOFY_HMAC_SHA256=headers["Cronofy-HMAC-SHA256"],
    )
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert calls and calls[-1][0].rstrip("/") == "/v1/userinfo"
    assert_outside_transactions(calls)


# -- the API -------------------------------------------------------------------------------


def api_url(name: str, pk: int) -> str:
    return reverse(f"cronofy_conferencing_api:{name}", args=[pk])


def test_the_api_reads_stay_in_the_request_transaction(calls, api, account, monkeypatch):
    """The control for the API: only the routes of actions that call Cronofy opt out; a
    read (the accounts list) runs in the host's request transaction as usual."""
    from django_cronofy_conferencing.api.views import LinkedAccountViewSet

    seen: list[bool] = []
    real = LinkedAccountViewSet.get_queryset

    def get_queryset(self):
        seen.append(connection.in_atomic_block)
        return real(self)

    monkeypatch.setattr(LinkedAccountViewSet, "get_queryset", get_queryset)
    assert api.get(reverse("cronofy_conferencing_api:account-list")).status_code == 200
    assert seen == [True]


def test_api_sync(calls, api, account):
    response = api.post(api_url("account-sync", account[0].pk))
    assert response.status_code == 200
    assert_outside_transactions(calls)


def test_api_conferencing_authorization(calls, api, account):
    url = api_url("account-conferencing-authorization", account[0].pk)
    response = api.post(url, {"provider_name": "zoom"}, format="json")
    assert response.status_code == 200
    assert response.json()["url"].startswith("https://")
    assert_outside_transactions(calls)


def test_api_unlink(calls, api, account):
    response = api.delete(api_url("account-detail", account[0].pk))
    assert response.status_code == 204
    assert not LinkedAccount.objects.exists()
    assert_outside_transactions(calls)


# -- the admin -----------------------------------------------------------------------------

ACCOUNTS = "admin:cronofy_conferencing_linkedaccount_changelist"


@pytest.mark.parametrize("action", ["sync_now", "unlink"])
def test_admin_actions(calls, staff_browser, account, action):
    data = {"action": action, "_selected_action": [str(account[0].pk)], "index": 0, "post": "yes"}
    response = staff_browser.post(reverse(ACCOUNTS), data)
    assert response.status_code == 302
    assert LinkedAccount.objects.exists() == (action == "sync_now")
    assert_outside_transactions(calls)


def test_admin_delete_view(calls, staff_browser, account):
    url = reverse("admin:cronofy_conferencing_linkedaccount_delete", args=[account[0].pk])
    response = staff_browser.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not LinkedAccount.objects.exists()
    assert_outside_transactions(calls)

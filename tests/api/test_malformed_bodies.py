"""Bodies DRF's parsers choke on (issue 20 §2.6): a JSON body nested past Python's
recursion limit answers 400 on every route of the API, never a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def account(make_account, user):
    return make_account(user, profiles=[{"profile_id": "pro_zoom"}])


def routes(account) -> list[tuple[str, str]]:
    """Every (method, URL) of the API that takes a body, and a few that do not."""
    ns = "cronofy_conferencing_api"
    detail = {"args": [account.pk]}
    return [
        ("post", reverse(f"{ns}:account-conferencing-authorization", **detail)),
        ("post", reverse(f"{ns}:account-sync", **detail)),
        ("delete", reverse(f"{ns}:account-detail", **detail)),
        ("put", reverse(f"{ns}:account-detail", **detail)),
        ("patch", reverse(f"{ns}:account-detail", **detail)),
        ("post", reverse(f"{ns}:account-list")),
        ("post", reverse(f"{ns}:conferencing-profile-list")),
        ("put", reverse(f"{ns}:conferencing-profile-detail", args=["pro_zoom"])),
        ("post", reverse(f"{ns}:calendar-profile-list")),
    ]


def test_a_deeply_nested_json_body_is_a_400(alice_client, account, sim):
    url = reverse("cronofy_conferencing_api:account-conferencing-authorization", args=[account.pk])
    response = alice_client.post(url, DEEP, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Malformed request body: nested too deeply."}
    assert sim.count() == 0  # refused before anything was called


def test_no_route_answers_a_deeply_nested_body_with_a_500(alice_client, account, sim):
    for method, url in routes(account):
        response = getattr(alice_client, method)(url, DEEP, content_type="application/json")
        assert response.status_code < 500, (method, url, response.status_code)


def test_an_ordinary_malformed_body_is_still_drfs_400(alice_client, account):
    url = reverse("cronofy_conferencing_api:account-conferencing-authorization", args=[account.pk])
    response = alice_client.post(url, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]

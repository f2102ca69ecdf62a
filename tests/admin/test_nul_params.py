"""The admin changelists with a NUL in the query string (issue 20 §2.6): PostgreSQL
stores no NUL in text, so ``?status=%00`` was a ``DataError`` (a 500). Every filter,
the search and any field lookup the admin allows now count as incorrect lookup
parameters: Django's redirect to ``?e=1``."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

CHANGELISTS = {
    "linkedaccount": [
        "status",
        "data_center",
        "account_type",
        "q",
        "email",
        "sub",
        "channel_id",
        "name",
        "scope",
        "status__exact",
        "o",
    ],
    "conferencingprofile": [
        "provider_name",
        "profile_connected__exact",
        "presence",
        "q",
        "profile_id",
        "profile_name",
    ],
    "calendarprofile": ["provider_name", "provider_service", "q", "profile_id"],
}
CASES = [(model, param) for model, params in CHANGELISTS.items() for param in params]


@pytest.mark.parametrize(("model", "param"), CASES, ids=[f"{m}-{p}" for m, p in CASES])
def test_a_nul_in_a_parameter_is_an_incorrect_lookup(staff_client, accounts, model, param):
    url = reverse(f"admin:cronofy_conferencing_{model}_changelist")
    response = staff_client.get(url, {param: "a\x00b"})
    assert response.status_code == 302
    assert response["Location"] == f"{url}?e=1"
    assert staff_client.get(response["Location"]).status_code == 200


@pytest.mark.parametrize("model", sorted(CHANGELISTS))
def test_a_nul_in_a_parameter_name_too(staff_client, accounts, model):
    url = reverse(f"admin:cronofy_conferencing_{model}_changelist")
    assert staff_client.get(url, {"status\x00": "active"}).status_code == 302


def test_ordinary_filters_still_work(staff_client, accounts):
    url = reverse("admin:cronofy_conferencing_linkedaccount_changelist")
    response = staff_client.get(url, {"status": "active", "q": "alice"})
    assert response.status_code == 200
    assert [a.email for a in response.context["cl"].result_list] == ["alice@cronofy.example"]

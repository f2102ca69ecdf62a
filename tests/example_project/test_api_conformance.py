"""API conformance: schemathesis against the example project's OpenAPI schema.

The demo (``manage.py demo``) serves the site on a simulated Cronofy. Every
operation of ``/api/schema/`` is called, authenticated as the demo user, first
with the demo's real objects, then with data generated from the schema
(a bounded number of examples per operation); every response must be free of
server errors and match the schema (body, content type, headers).

schemathesis's pytest plugin (``from_fixture``) does not run on pytest 9, so
each operation is driven through its Python API: ``operation.as_strategy()``.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
)

MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
# DELETE (unlink) last: generated ids may hit the demo account.
OPERATIONS = [
    ("GET", "/api/cronofy/accounts/"),
    ("GET", "/api/cronofy/accounts/{id}/"),
    ("POST", "/api/cronofy/accounts/{id}/sync/"),
    ("POST", "/api/cronofy/accounts/{id}/conferencing-authorization/"),
    ("GET", "/api/cronofy/accounts/{id}/conferencing-choices/"),
    ("GET", "/api/cronofy/conferencing-profiles/"),
    ("GET", "/api/cronofy/conferencing-profiles/{profile_id}/"),
    ("PATCH", "/api/cronofy/conferencing-profiles/{profile_id}/"),
    ("GET", "/api/cronofy/calendar-profiles/"),
    ("GET", "/api/cronofy/calendar-profiles/{profile_id}/"),
    ("DELETE", "/api/cronofy/accounts/{id}/"),
]


@pytest.fixture(scope="module")
def api_schema(demo):
    return schemathesis.openapi.from_url(f"{demo.url}/api/schema/")


@pytest.fixture(scope="module")
def api(demo, demo_auth):
    session = requests.Session()
    session.headers.update(demo_auth)
    yield session
    session.close()


@pytest.fixture(scope="module")
def demo_objects(demo, api):
    """The demo account's id and one profile id of each kind, read before any fuzzing."""
    account = api.get(f"{demo.url}/api/cronofy/accounts/", timeout=10).json()["results"][0]
    profile = api.get(f"{demo.url}/api/cronofy/conferencing-profiles/", timeout=10).json()[
        "results"
    ][0]
    calendar = api.get(f"{demo.url}/api/cronofy/calendar-profiles/", timeout=10).json()["results"][
        0
    ]
    return {
        "id": account["id"],
        "profile_id": profile["profile_id"],
        "calendar_profile_id": calendar["profile_id"],
    }


def test_demo_users_data_through_the_api(demo, api):
    """The API page's example (docs/api.md): the demo account's profiles, one disconnected
    (before any fuzzing)."""
    profiles = api.get(f"{demo.url}/api/cronofy/conferencing-profiles/", timeout=10).json()
    assert {p["provider_name"] for p in profiles["results"]} >= {"zoom", "go_to", "ms_teams"}
    disconnected = api.get(
        f"{demo.url}/api/cronofy/conferencing-profiles/?profile_connected=false", timeout=10
    ).json()["results"]
    assert "go_to" in [p["provider_name"] for p in disconnected]
    assert all(p["profile_relink_url"].startswith("https://") for p in disconnected)
    anonymous = requests.get(f"{demo.url}/api/cronofy/accounts/", timeout=10)
    assert anonymous.status_code in (401, 403)


def test_schema_lists_exactly_the_tested_operations(api_schema):
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert labels == {f"{method} {path}" for method, path in OPERATIONS}


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_schema(api_schema, demo, demo_auth, demo_objects, method, path):
    operation = api_schema[path][method]

    def check(case) -> None:
        case.call_and_validate(base_url=demo.url, headers=demo_auth, checks=CHECKS)

    # The demo's own objects first: the generated ids below rarely exist.
    parameters = {name: demo_objects[name] for name in ("id", "profile_id") if "{" + name in path}
    if path.startswith("/api/cronofy/calendar-profiles/{"):
        parameters["profile_id"] = demo_objects["calendar_profile_id"]
    if parameters and method != "DELETE":
        kwargs = {"path_parameters": parameters}
        if path.endswith("conferencing-authorization/"):
            kwargs.update(body={"provider_name": "zoom"}, media_type="application/json")
        if method == "PATCH":
            kwargs.update(body={"preferred": True}, media_type="application/json")
        check(operation.Case(**kwargs))

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def generated(case) -> None:
        check(case)

    generated()

"""The API documents itself as a valid OpenAPI 3 schema, and runs without drf-spectacular."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.test import override_settings
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/api/cronofy/"


def generate(capsys) -> dict:
    GENERATOR_STATS.reset()
    capsys.readouterr()
    schema = SchemaGenerator(patterns=None).get_schema(request=None, public=True)
    validate_schema(schema)
    captured = capsys.readouterr()
    assert not GENERATOR_STATS._warn_cache, dict(GENERATOR_STATS._warn_cache)
    assert not GENERATOR_STATS._error_cache, dict(GENERATOR_STATS._error_cache)
    assert "Warning" not in captured.err and "Error" not in captured.err, captured.err
    return schema


def ours(schema: dict) -> dict:
    return {path: ops for path, ops in schema["paths"].items() if path.startswith(PREFIX)}


def test_schema_is_valid_and_warning_free(capsys):
    schema = generate(capsys)
    assert schema["openapi"].startswith("3.")
    paths = ours(schema)
    assert {path: sorted(ops) for path, ops in paths.items()} == {
        "/api/cronofy/accounts/": ["get"],
        "/api/cronofy/accounts/{id}/": ["delete", "get"],
        "/api/cronofy/accounts/{id}/conferencing-authorization/": ["post"],
        "/api/cronofy/accounts/{id}/conferencing-choices/": ["get"],
        "/api/cronofy/accounts/{id}/sync/": ["post"],
        "/api/cronofy/calendar-profiles/": ["get"],
        "/api/cronofy/calendar-profiles/{profile_id}/": ["get"],
        "/api/cronofy/conferencing-profiles/": ["get"],
        "/api/cronofy/conferencing-profiles/{profile_id}/": ["get", "patch"],
    }


def test_schema_documents_the_custom_actions(capsys):
    schema = generate(capsys)
    paths = ours(schema)
    sync = paths["/api/cronofy/accounts/{id}/sync/"]["post"]
    assert "requestBody" not in sync
    assert set(sync["responses"]) == {"200", "202", "409", "429", "502", "503"}
    assert sync["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SyncResult"
    }
    auth = paths["/api/cronofy/accounts/{id}/conferencing-authorization/"]["post"]
    assert auth["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConferencingAuthorizationRequest"
    }
    assert auth["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConferencingAuthorization"
    }
    reconnect = schema["components"]["schemas"]["CronofyReauthorizationError"]
    assert "reconnect_url" in reconnect["properties"]
    delete = paths["/api/cronofy/accounts/{id}/"]["delete"]
    assert set(delete["responses"]) == {"204", "429", "502", "503"}


@pytest.mark.parametrize("kind", ["conferencing-profiles", "calendar-profiles"])
def test_schema_documents_the_filters(capsys, kind):
    schema = generate(capsys)
    listing = ours(schema)[f"/api/cronofy/{kind}/"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["provider_name"]["schema"] == {"type": "string"}
    assert params["profile_connected"]["schema"] == {"type": "boolean"}
    assert params["account"]["schema"] == {"type": "integer"}
    detail = ours(schema)[f"/api/cronofy/{kind}/{{profile_id}}/"]["get"]
    assert [p["name"] for p in detail["parameters"] if p["in"] == "path"] == ["profile_id"]


def test_schema_documents_the_choices_and_calendars(capsys):
    schema = generate(capsys)
    choices = ours(schema)["/api/cronofy/accounts/{id}/conferencing-choices/"]["get"]
    assert choices["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConferencingChoices"
    }
    components = schema["components"]["schemas"]
    assert {"available", "unavailable", "stale", "resync_queued"} <= set(
        components["ConferencingChoices"]["properties"]
    )
    assert "calendars" in components["CalendarProfile"]["properties"]
    assert "calendar_created" in components["SyncResult"]["properties"]


@pytest.mark.parametrize("split", [False, True])
def test_request_components_are_named_once(capsys, split):
    """COMPONENT_SPLIT_REQUEST (the example project's setting) appends "Request" to request
    components: never "ConferencingAuthorizationRequestRequest"."""
    from drf_spectacular.settings import patched_settings

    with patched_settings({"COMPONENT_SPLIT_REQUEST": split}):
        schema = generate(capsys)
    components = schema["components"]["schemas"]
    assert not [name for name in components if "RequestRequest" in name]
    auth = ours(schema)["/api/cronofy/accounts/{id}/conferencing-authorization/"]["post"]
    assert auth["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConferencingAuthorizationRequest"
    }
    assert "redirect_uri" in components["ConferencingAuthorizationRequest"]["properties"]


def test_schema_documents_the_preference_and_the_error_codes(capsys):
    schema = generate(capsys)
    patch = ours(schema)["/api/cronofy/conferencing-profiles/{profile_id}/"]["patch"]
    body = patch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = body.rsplit("/", 1)[1]
    assert "preferred" in schema["components"]["schemas"][name]["properties"]
    components = schema["components"]["schemas"]
    assert "preferred" in components["ConferencingProfile"]["properties"]
    assert "code" in components["CronofyError"]["properties"]


def test_no_token_in_any_documented_schema(capsys):
    schema = generate(capsys)
    text = json.dumps(schema["components"]["schemas"])
    assert "access_token" not in text
    assert "refresh_token" not in text
    assert "token_expires_at" not in text


def test_paginated_schema_is_valid(capsys):
    with override_settings(
        REST_FRAMEWORK={
            "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
            "DEFAULT_PAGINATION_CLASS": "tests.api.test_views.TwoPerPage",
        }
    ):
        schema = generate(capsys)
    listing = ours(schema)["/api/cronofy/accounts/"]["get"]
    ref = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/PaginatedLinkedAccountList"
    assert "page" in {p["name"] for p in listing["parameters"]}


def test_the_api_works_without_drf_spectacular(tmp_path):
    """A host without drf-spectacular installed can import and serve the API."""
    script = textwrap.dedent(
        """
        import sys

        class NoSpectacular:
            def find_spec(self, name, path=None, target=None):
                if name == "drf_spectacular" or name.startswith("drf_spectacular."):
                    raise ImportError("drf_spectacular is not installed")
                return None

        sys.meta_path.insert(0, NoSpectacular())

        import django
        from django.conf import settings

        settings.configure(
            SECRET_KEY="x",
            ROOT_URLCONF="django_cronofy_conferencing.api.urls",
            INSTALLED_APPS=[
                "django.contrib.auth",
                "django.contrib.contenttypes",
                "rest_framework",
                "django_cronofy_conferencing",
            ],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
            ALLOWED_HOSTS=["*"],
            CRONOFY_CONFERENCING={
                "API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]
            },
        )
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.test import Client

        from django_cronofy_conferencing.api import schema

        assert schema.HAS_SPECTACULAR is False
        assert "drf_spectacular" not in sys.modules
        response = Client().get("/conferencing-profiles/", HTTP_ACCEPT="application/json")
        assert response.status_code == 200, response.status_code
        assert response.json() == []
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


pytestmark = pytest.mark.django_db

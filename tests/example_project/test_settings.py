"""The example project's settings are safe to copy (issue #10 item 9)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SETTINGS = Path(__file__).resolve().parents[2] / "example_project" / "demo_site" / "settings.py"


def load_settings(monkeypatch, **env):
    for name in ("DATABASE_URL", "DATABASE_CONN_MAX_AGE", "DJANGO_DEBUG", "DJANGO_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("demo_settings_probe", SETTINGS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_postgres_connections_are_not_kept_per_thread(monkeypatch):
    """Before: CONN_MAX_AGE=60 under runserver's thread per request: a burst of 2,000
    requests left a connection per thread and PostgreSQL refused the rest (200+ 500s)."""
    settings = load_settings(monkeypatch, DATABASE_URL="postgres://u:p@db.example:5432/demo")
    database = settings.DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["CONN_MAX_AGE"] == 0
    assert database["CONN_HEALTH_CHECKS"] is True


def test_persistent_connections_are_an_explicit_choice(monkeypatch):
    settings = load_settings(
        monkeypatch, DATABASE_URL="postgres://u@db/demo", DATABASE_CONN_MAX_AGE="30"
    )
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 30


@pytest.mark.parametrize("debug", ["0", "1"])
def test_the_api_authenticates_by_session_only(monkeypatch, debug):
    """Before: HTTP Basic too, which DRF serves without CSRF checks."""
    settings = load_settings(monkeypatch, DJANGO_DEBUG=debug, DJANGO_SECRET_KEY="probe-" * 8)
    assert settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] == [
        "rest_framework.authentication.SessionAuthentication"
    ]

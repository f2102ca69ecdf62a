"""What a newcomer's project gets wrong, caught by ``manage.py check`` (issue 20 §4)
instead of failing later as a traceback or a 500; each message names the exact key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core import checks
from django.test import override_settings
from django.urls import include, path

ROOT = Path(__file__).resolve().parents[1]
BROWSER_FLOW = path("cronofy/", include("django_cronofy_conferencing.urls"))
API = path("api/cronofy/", include("django_cronofy_conferencing.api.urls"))


class ApiOnly:
    """A URLconf (ROOT_URLCONF may be any object with ``urlpatterns``) without the browser flow."""

    urlpatterns = [API]


class BrowserFlowOnly:
    """A URLconf without the API."""

    urlpatterns = [BROWSER_FLOW]


def ours(**overrides) -> list:
    """Every message of the app's checks (deployment ones too) with ``overrides``."""
    # The app's settings named even when unchanged: their cache is reloaded.
    overrides.setdefault("CRONOFY_CONFERENCING", settings.CRONOFY_CONFERENCING)
    with override_settings(**overrides):
        found = checks.run_checks(include_deployment_checks=True)
    return [m for m in found if m.id.startswith("cronofy_conferencing.")]


def with_app(**values) -> dict:
    return {"CRONOFY_CONFERENCING": {**settings.CRONOFY_CONFERENCING, **values}}


def ids(messages) -> list[str]:
    return sorted(m.id.removeprefix("cronofy_conferencing.") for m in messages)


def test_the_test_settings_pass():
    assert ours() == []


# -- CRONOFY_CONFERENCING that is not a dict -------------------------------------------


@pytest.mark.parametrize("value", ["CLIENT_ID=abc", 5, ["CLIENT_ID"], ("a", "b")])
def test_settings_that_are_not_a_dict_are_one_error_naming_them(value):
    messages = ours(CRONOFY_CONFERENCING=value)
    assert ids(messages) == ["E017"]
    assert messages[0].msg == (
        f"CRONOFY_CONFERENCING must be a dict of settings, got {type(value).__name__}."
    )


def test_manage_py_check_reports_it_without_a_traceback(tmp_path):
    (tmp_path / "notdict_settings.py").write_text(
        "from tests.settings import *  # noqa\nCRONOFY_CONFERENCING = 'CLIENT_ID=abc'\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "DJANGO_SETTINGS_MODULE": "notdict_settings",
    }
    env.pop("DATABASE_URL", None)
    checked = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 1
    assert "cronofy_conferencing.E017" in checked.stderr
    assert "CRONOFY_CONFERENCING must be a dict of settings, got str." in checked.stderr
    assert "Traceback" not in checked.stderr


# -- CLIENT_ID: 12345 -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["CLIENT_ID", "CLIENT_SECRET"])
def test_a_credential_that_is_no_string_says_so_not_that_it_is_missing(key):
    messages = ours(**with_app(**{key: 12345}))
    assert ids(messages) == ["E012"]
    assert messages[0].msg == f"CRONOFY_CONFERENCING['{key}'] must be a string, got int."


def test_missing_credentials_still_warn_and_fail_check_deploy():
    messages = ours(**with_app(CLIENT_ID="", CLIENT_SECRET=None))
    assert ids(messages) == ["E001", "E002", "W005", "W006"]


@pytest.mark.parametrize("value", ["old-secret", [1], {"a": "b"}])
def test_previous_client_secrets_must_be_a_list_of_strings(value):
    messages = ours(**with_app(PREVIOUS_CLIENT_SECRETS=value))
    assert ids(messages) == ["E012"]
    assert "CRONOFY_CONFERENCING['PREVIOUS_CLIENT_SECRETS'] must be a list of strings" in (
        messages[0].msg
    )


# -- the per-user throttle rate ----------------------------------------------------------


@pytest.mark.parametrize("rate", ["twelve/m", "12 per minute", "0/m", 12, "12/fortnight"])
def test_a_malformed_throttle_rate_is_e006(rate):
    messages = ours(**with_app(API_SYNC_THROTTLE_RATE=rate))
    assert ids(messages) == ["E006"]
    assert messages[0].msg.startswith(
        f"CRONOFY_CONFERENCING['API_SYNC_THROTTLE_RATE'] is {rate!r}, which is no rate"
    )


@pytest.mark.parametrize("rate", ["12/m", "1/s", "100/h", "10/5m", None])
def test_throttle_rates_the_grammar_takes(rate):
    assert ours(**with_app(API_SYNC_THROTTLE_RATE=rate)) == []


def test_the_hosts_drf_rate_for_the_scope_is_checked_too():
    rest = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"cronofy_sync": "lots"}}
    messages = ours(REST_FRAMEWORK=rest)
    assert ids(messages) == ["E006"]
    assert "REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['cronofy_sync'] is 'lots'" in (messages[0].msg)


# -- LINK_REDIRECT_URL ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["profiles", "myapp:home", "cronofy_conferencing:nope"])
def test_a_link_redirect_url_that_does_not_resolve_is_e018(value):
    messages = ours(**with_app(LINK_REDIRECT_URL=value))
    assert ids(messages) == ["E018"]
    assert messages[0].msg.startswith(f"CRONOFY_CONFERENCING['LINK_REDIRECT_URL'] is {value!r}")


@pytest.mark.parametrize("value", [123, None, ""])
def test_a_link_redirect_url_of_the_wrong_type_is_e018(value):
    assert ids(ours(**with_app(LINK_REDIRECT_URL=value))) == ["E018"]


@pytest.mark.parametrize(
    "value",
    ["cronofy_conferencing:profiles", "admin:index", "/account/", "https://example.com/x", "./"],
)
def test_link_redirect_urls_that_resolve(value):
    assert ours(**with_app(LINK_REDIRECT_URL=value)) == []


def test_without_the_browser_flow_the_redirect_is_never_used():
    assert ours(ROOT_URLCONF=ApiOnly, **with_app(LINK_REDIRECT_URL="nowhere")) == []


# -- PUSH_NOTIFICATIONS_CALLBACK_URL --------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["/cronofy/notifications/", "cronofy/notifications/", "//example.com/x", "ftp://x", 5]
)
def test_a_callback_url_that_is_not_absolute_is_e018(value):
    messages = ours(**with_app(PUSH_NOTIFICATIONS_CALLBACK_URL=value))
    assert ids(messages) == ["E018"]
    assert "CRONOFY_CONFERENCING['PUSH_NOTIFICATIONS_CALLBACK_URL'] must be an absolute URL" in (
        messages[0].msg
    )


@pytest.mark.parametrize(
    "value", ["", None, "https://example.com/cronofy/notifications/", "http://127.0.0.1:8000/n/"]
)
def test_callback_urls_that_work(value):
    assert ours(**with_app(PUSH_NOTIFICATIONS_CALLBACK_URL=value)) == []


# -- rest_framework in INSTALLED_APPS ------------------------------------------------------

WITHOUT_DRF = [
    app for app in settings.INSTALLED_APPS if app not in ("rest_framework", "drf_spectacular")
]


def test_the_api_without_rest_framework_installed_is_e019():
    messages = ours(INSTALLED_APPS=WITHOUT_DRF)
    assert ids(messages) == ["E019"]
    assert messages[0].msg.startswith("'rest_framework' is not in INSTALLED_APPS")
    assert "BrowsableAPIRenderer" in messages[0].msg


def test_without_rest_framework_json_only_or_no_api_is_fine():
    json_only = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    }
    assert ours(INSTALLED_APPS=WITHOUT_DRF, REST_FRAMEWORK=json_only) == []
    assert ours(INSTALLED_APPS=WITHOUT_DRF, ROOT_URLCONF=BrowserFlowOnly) == []


# -- siblings: values the other checks tripped over ------------------------------------------


@pytest.mark.parametrize("value", [["us"], {"us": 1}])
def test_an_unhashable_default_data_center_is_e003_not_a_typeerror(value):
    assert ids(ours(**with_app(DEFAULT_DATA_CENTER=value))) == ["E003"]


@pytest.mark.parametrize("key", ["REQUEST_DEADLINE", "MAX_RESPONSE_BYTES"])
def test_every_number_setting_is_checked(key):
    messages = ours(**with_app(**{key: "30"}))
    assert ids(messages) == ["E007"]
    assert f"CRONOFY_CONFERENCING['{key}']" in messages[0].msg

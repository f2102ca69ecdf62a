"""Settings: one CRONOFY_CONFERENCING dict with defaults, reloaded on setting_changed."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_cronofy_conferencing.conf import DEFAULTS, AppSettings, app_settings, on_reload
from django_cronofy_conferencing.cronofy.datacenters import get_data_centers


def test_defaults_fill_what_the_host_does_not_set(settings):
    assert "MAX_RETRIES" not in settings.CRONOFY_CONFERENCING
    assert app_settings.MAX_RETRIES == DEFAULTS["MAX_RETRIES"] == 3
    assert app_settings.SCOPE == "read_account"
    assert app_settings.DEFAULT_DATA_CENTER == "us"
    assert app_settings.RATE_LIMITS == []  # tests/settings.py overrides the default
    assert DEFAULTS["RATE_LIMITS"] == ["50/s", "500/m"]
    assert DEFAULTS["REQUEST_TIMEOUT"] == 10 and DEFAULTS["SYNC_STALE_AFTER"] == 3600
    assert DEFAULTS["API_SYNC_THROTTLE_RATE"] == "12/m"


def test_override_settings_reloads(settings):
    assert app_settings.MAX_RETRIES == 3
    with override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "MAX_RETRIES": 9}
    ):
        assert app_settings.MAX_RETRIES == 9
    assert app_settings.MAX_RETRIES == 3


def test_pytest_settings_fixture_reloads(settings):
    settings.CRONOFY_CONFERENCING = {**settings.CRONOFY_CONFERENCING, "SCOPE": "read_write"}
    assert app_settings.SCOPE == "read_write"


def test_other_settings_do_not_clear_the_cache():
    assert app_settings.SCOPE == "read_account"
    app_settings._cached["SCOPE"] = "sentinel"
    try:
        with override_settings(TIME_ZONE="Europe/Paris"):
            assert app_settings.SCOPE == "sentinel"
    finally:
        app_settings.reload()


def test_reload_callbacks_run_on_change(settings):
    calls = []
    callback = on_reload(lambda: calls.append(1))
    try:
        with override_settings(CRONOFY_CONFERENCING={"CLIENT_ID": "x"}):
            pass
    finally:
        from django_cronofy_conferencing import conf

        conf._reload_callbacks.remove(callback)
    assert len(calls) == 2  # entering and leaving


def test_data_centers_follow_the_settings(settings):
    extra = {"local": {"api_url": "http://127.0.0.1:9000", "app_url": "http://127.0.0.1:9001"}}
    assert "local" not in get_data_centers()
    with override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "DATA_CENTERS": extra}
    ):
        assert "local" in get_data_centers()
    assert "local" not in get_data_centers()


def test_unknown_attribute_is_an_error():
    with pytest.raises(AttributeError, match="Invalid CRONOFY_CONFERENCING setting: 'MAX_RETRYS'"):
        app_settings.MAX_RETRYS  # noqa: B018


def test_unknown_keys_are_listed(settings):
    with override_settings(CRONOFY_CONFERENCING={"MAX_RETRYS": 1, "CLIENT_ID": "x"}):
        assert app_settings.unknown_keys() == ["MAX_RETRYS"]


@override_settings(CRONOFY_CONFERENCING=["CLIENT_ID"])
def test_settings_must_be_a_dict():
    with pytest.raises(ImproperlyConfigured, match="CRONOFY_CONFERENCING must be a dict"):
        app_settings.CLIENT_ID  # noqa: B018


@override_settings()
def test_missing_setting_means_all_defaults(settings):
    del settings.CRONOFY_CONFERENCING
    assert AppSettings().CLIENT_ID == ""
    assert app_settings.CLIENT_ID == ""
    assert app_settings.ENCRYPTION_KEYS is None

"""The data center registry: six built-ins, host-added entries, nothing else."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import override_settings

from django_cronofy_conferencing.cronofy.datacenters import (
    BUILTIN_DATA_CENTERS,
    UnknownDataCenter,
    get_data_center,
    get_data_centers,
    validate_data_center,
)
from django_cronofy_conferencing.models import LinkedAccount

DOCUMENTED = {
    "us": ("https://api.cronofy.com", "https://app.cronofy.com"),
    "uk": ("https://api-uk.cronofy.com", "https://app-uk.cronofy.com"),
    "de": ("https://api-de.cronofy.com", "https://app-de.cronofy.com"),
    "au": ("https://api-au.cronofy.com", "https://app-au.cronofy.com"),
    "ca": ("https://api-ca.cronofy.com", "https://app-ca.cronofy.com"),
    "sg": ("https://api-sg.cronofy.com", "https://app-sg.cronofy.com"),
}


def with_data_centers(settings, extra):
    return override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "DATA_CENTERS": extra}
    )


def test_the_six_documented_data_centers():
    assert {k: (v.api_url, v.app_url) for k, v in BUILTIN_DATA_CENTERS.items()} == DOCUMENTED
    assert {k: (v.api_url, v.app_url) for k, v in get_data_centers().items()} == DOCUMENTED


def test_urls_are_built_from_the_registry():
    uk = get_data_center("uk")
    assert uk.api("/v1/userinfo") == "https://api-uk.cronofy.com/v1/userinfo"
    assert uk.app("/oauth/authorize") == "https://app-uk.cronofy.com/oauth/authorize"


def test_the_registry_lists_every_data_center_with_its_label():
    assert list(get_data_centers()) == list(DOCUMENTED)
    assert get_data_center("de").label == "Germany"


def test_host_added_entries_may_use_http(settings):
    extra = {
        "local": {"api_url": "http://127.0.0.1:8765/", "app_url": "http://localhost:8766"},
        "staging": {
            "api_url": "https://cronofy-sim.example/api",
            "app_url": "https://cronofy-sim.example/app",
            "label": "Staging simulator",
        },
    }
    with with_data_centers(settings, extra):
        local = get_data_center("local")
        assert local.api_url == "http://127.0.0.1:8765"  # trailing slash dropped
        assert local.api("/v1/userinfo") == "http://127.0.0.1:8765/v1/userinfo"
        assert local.label == "local"
        assert get_data_center("staging").label == "Staging simulator"
        assert len(get_data_centers()) == 8
        validate_data_center("local")
    with pytest.raises(UnknownDataCenter):
        get_data_center("local")


def test_a_host_may_override_a_builtin(settings):
    with with_data_centers(
        settings, {"us": {"api_url": "http://127.0.0.1:1", "app_url": "http://127.0.0.1:2"}}
    ):
        assert get_data_center("us").api_url == "http://127.0.0.1:1"
    assert get_data_center("us").api_url == "https://api.cronofy.com"


@pytest.mark.parametrize(
    "extra, named",
    [
        ("not-a-dict", "['DATA_CENTERS'] must be a dict"),
        ({"": {}}, "['DATA_CENTERS'] keys must be ids"),
        ({"x" * 33: {}}, "['DATA_CENTERS'] keys must be ids"),
        ({"local": "http://127.0.0.1"}, "['DATA_CENTERS']['local'] must be a dict"),
        ({"local": {"app_url": "http://a"}}, "['DATA_CENTERS']['local']['api_url'] must be a URL"),
        (
            {"local": {"api_url": "ftp://a", "app_url": "http://a"}},
            "['DATA_CENTERS']['local']['api_url'] must be an absolute http(s) URL",
        ),
        (
            {"local": {"api_url": "127.0.0.1:8000", "app_url": "http://a"}},
            "['DATA_CENTERS']['local']['api_url'] must be an absolute http(s) URL",
        ),
        (
            {"local": {"api_url": "http://a", "app_url": "http://a?x=1"}},
            "['DATA_CENTERS']['local']['app_url'] must not have a query",
        ),
        (
            {"local": {"api_url": "http://a", "app_url": 5}},
            "['DATA_CENTERS']['local']['app_url'] must be a URL",
        ),
    ],
)
def test_malformed_entries_name_the_key(settings, extra, named):
    with with_data_centers(settings, extra), pytest.raises(ImproperlyConfigured) as excinfo:
        get_data_centers()
    assert "CRONOFY_CONFERENCING" + named in str(excinfo.value)


@pytest.mark.parametrize("value", ["xx", "US", "", "https://api.cronofy.com", None, ["us"]])
def test_unknown_ids_are_rejected(value):
    with pytest.raises(UnknownDataCenter):
        get_data_center(value)


@pytest.mark.parametrize("value", ["xx", "US", "https://api.cronofy.com", "local"])
def test_validate_data_center_rejects_unknown(value):
    with pytest.raises(ValidationError) as excinfo:
        validate_data_center(value)
    assert excinfo.value.code == "unknown_data_center"


@pytest.mark.django_db
def test_model_full_clean_rejects_an_unknown_data_center():
    account = LinkedAccount(data_center="evil", sub="acc_1")
    with pytest.raises(ValidationError) as excinfo:
        account.full_clean()
    assert "data_center" in excinfo.value.message_dict
    account.data_center = "de"
    account.full_clean()
    assert account.data_center_info.api_url == "https://api-de.cronofy.com"

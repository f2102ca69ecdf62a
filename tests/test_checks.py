"""System checks: each id fires for its bad setting, and only then."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from django_cronofy_conferencing.checks import NUMBER_SETTINGS, check_settings


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


@pytest.fixture
def config(settings):
    """Run the checks against the test settings with some keys replaced."""

    def run(**values):
        with override_settings(CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, **values}):
            return check_settings()

    return run


def test_the_test_settings_pass_cleanly(config):
    assert config() == []


def test_registered_with_django():
    found = checks.run_checks(tags=[checks.Tags.security])
    assert not [m for m in found if m.id.startswith("cronofy_conferencing.")]
    with override_settings(CRONOFY_CONFERENCING={}):
        found = checks.run_checks(tags=[checks.Tags.security])
    assert {"cronofy_conferencing.E001", "cronofy_conferencing.E002"} <= {m.id for m in found}


CASES = [
    ("E001", {"CLIENT_ID": ""}, "CRONOFY_CONFERENCING['CLIENT_ID']"),
    ("E001", {"CLIENT_ID": None}, "CRONOFY_CONFERENCING['CLIENT_ID']"),
    ("E001", {"CLIENT_ID": 123}, "CRONOFY_CONFERENCING['CLIENT_ID']"),
    ("E002", {"CLIENT_SECRET": ""}, "CRONOFY_CONFERENCING['CLIENT_SECRET']"),
    ("E003", {"DEFAULT_DATA_CENTER": "xx"}, "CRONOFY_CONFERENCING['DEFAULT_DATA_CENTER']"),
    ("E003", {"DEFAULT_DATA_CENTER": "US"}, "CRONOFY_CONFERENCING['DEFAULT_DATA_CENTER']"),
    ("E004", {"ENCRYPTION_KEYS": ["not-a-key"]}, "CRONOFY_CONFERENCING['ENCRYPTION_KEYS'][0]"),
    ("E004", {"ENCRYPTION_KEYS": "a-string"}, "CRONOFY_CONFERENCING['ENCRYPTION_KEYS']"),
    ("E004", {"ENCRYPTION_KEYS": []}, "CRONOFY_CONFERENCING['ENCRYPTION_KEYS']"),
    ("E005", {"DATA_CENTERS": {"x": {"api_url": "nope"}}}, "CRONOFY_CONFERENCING['DATA_CENTERS']"),
    ("E005", {"DATA_CENTERS": []}, "CRONOFY_CONFERENCING['DATA_CENTERS']"),
    ("E006", {"RATE_LIMITS": ["fast"]}, "CRONOFY_CONFERENCING['RATE_LIMITS']"),
    ("E006", {"RATE_LIMITS": "50/s"}, "CRONOFY_CONFERENCING['RATE_LIMITS']"),
    ("E007", {"MAX_RETRIES": -1}, "CRONOFY_CONFERENCING['MAX_RETRIES']"),
    ("E007", {"REQUEST_TIMEOUT": "10"}, "CRONOFY_CONFERENCING['REQUEST_TIMEOUT']"),
    ("E007", {"RETRY_MAX_WAIT": None}, "CRONOFY_CONFERENCING['RETRY_MAX_WAIT']"),
    ("E007", {"SYNC_CONCURRENCY": True}, "CRONOFY_CONFERENCING['SYNC_CONCURRENCY']"),
    ("W001", {"ENCRYPTION_KEYS": None}, "CRONOFY_CONFERENCING['ENCRYPTION_KEYS']"),
    ("W002", {"MAX_RETRYS": 5}, "CRONOFY_CONFERENCING['MAX_RETRYS']"),
]


@pytest.mark.parametrize(
    "check_id, values, key",
    CASES,
    ids=[f"{c[0]}-{next(iter(c[1]))}-{c[1][next(iter(c[1]))]!r}" for c in CASES],
)
def test_each_check_fires_for_its_setting(config, check_id, values, key):
    messages = config(**values)
    assert ids(messages) == [f"cronofy_conferencing.{check_id}"]
    assert key in messages[0].msg
    expected_level = checks.WARNING if check_id.startswith("W") else checks.ERROR
    assert messages[0].level == expected_level


def test_a_data_center_the_host_added_is_a_valid_default(config):
    extra = {"local": {"api_url": "http://127.0.0.1:1", "app_url": "http://127.0.0.1:2"}}
    assert config(DATA_CENTERS=extra, DEFAULT_DATA_CENTER="local") == []


def test_every_number_setting_is_checked(config):
    for name in NUMBER_SETTINGS:
        assert ids(config(**{name: -5})) == ["cronofy_conferencing.E007"], name
        assert config(**{name: 0}) == [], name
    assert config(RETRY_BACKOFF=0.25) == []


def test_several_problems_are_reported_together(config):
    messages = config(CLIENT_ID="", CLIENT_SECRET="", ENCRYPTION_KEYS=None, TYPO=1)
    assert ids(messages) == [
        "cronofy_conferencing.E001",
        "cronofy_conferencing.E002",
        "cronofy_conferencing.W001",
        "cronofy_conferencing.W002",
    ]


def test_messages_never_echo_the_secret(config):
    messages = config(CLIENT_ID="", ENCRYPTION_KEYS=["not-a-key-but-secret-looking"])
    text = " ".join(f"{m.msg} {m.hint}" for m in messages)
    assert "not-a-key-but-secret-looking" not in text

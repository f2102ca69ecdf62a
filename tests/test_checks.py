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
        deploy = checks.run_checks(tags=[checks.Tags.security], include_deployment_checks=True)
    ours = {m.id: m.level for m in found if m.id.startswith("cronofy_conferencing.")}
    assert ours["cronofy_conferencing.W005"] == ours["cronofy_conferencing.W006"] == checks.WARNING
    assert not [level for level in ours.values() if level >= checks.ERROR]  # the project starts
    deploy_ids = {m.id: m.level for m in deploy}
    assert deploy_ids["cronofy_conferencing.E001"] == checks.ERROR
    assert deploy_ids["cronofy_conferencing.E002"] == checks.ERROR


def test_a_project_without_credentials_migrates_and_fails_check_deploy(tmp_path):
    """As a newcomer's project: ``check`` and ``migrate`` pass (with warnings); ``check
    --deploy`` fails naming the keys."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "nocreds_settings.py").write_text(
        "from tests.settings import *  # noqa\n"
        "CRONOFY_CONFERENCING = {'ENCRYPTION_KEYS': CRONOFY_CONFERENCING['ENCRYPTION_KEYS']}\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}",
        "DJANGO_SETTINGS_MODULE": "nocreds_settings",
    }
    env.pop("DATABASE_URL", None)

    def manage(*args):
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    checked = manage("check")
    assert checked.returncode == 0, checked.stderr
    assert "cronofy_conferencing.W005" in checked.stderr + checked.stdout
    migrated = manage("migrate", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    deploy = manage("check", "--deploy", "--fail-level", "ERROR")
    assert deploy.returncode != 0
    assert "cronofy_conferencing.E001" in deploy.stderr
    assert "CRONOFY_CONFERENCING['CLIENT_SECRET']" in deploy.stderr


CASES = [
    ("W005", {"CLIENT_ID": ""}, "CRONOFY_CONFERENCING['CLIENT_ID']"),
    ("W005", {"CLIENT_ID": None}, "CRONOFY_CONFERENCING['CLIENT_ID']"),
    ("E012", {"CLIENT_ID": 123}, "CRONOFY_CONFERENCING['CLIENT_ID'] must be a string"),
    ("W006", {"CLIENT_SECRET": ""}, "CRONOFY_CONFERENCING['CLIENT_SECRET']"),
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
        "cronofy_conferencing.W001",
        "cronofy_conferencing.W002",
        "cronofy_conferencing.W005",
        "cronofy_conferencing.W006",
    ]


def test_messages_never_echo_the_secret(config):
    messages = config(CLIENT_ID="", ENCRYPTION_KEYS=["not-a-key-but-secret-looking"])
    text = " ".join(f"{m.msg} {m.hint}" for m in messages)
    assert "not-a-key-but-secret-looking" not in text


# -- E008, E009, E014: settings that would otherwise fail as 500s ------------------------


def run_all_checks() -> list:
    return [
        m
        for m in checks.run_checks(include_deployment_checks=False)
        if m.id.startswith("cronofy_conferencing.")
    ]


def with_settings(**values):
    from django.conf import settings as django_settings

    return override_settings(
        CRONOFY_CONFERENCING={**django_settings.CRONOFY_CONFERENCING, **values}
    )


def test_the_run_time_checks_pass_on_the_test_settings():
    assert run_all_checks() == []


def test_e008_rate_limit_cache_names_no_cache():
    with with_settings(RATE_LIMIT_CACHE="redis"):
        found = run_all_checks()
    assert ids(found) == ["cronofy_conferencing.E008"]
    assert "CRONOFY_CONFERENCING['RATE_LIMIT_CACHE'] is 'redis'" in found[0].msg
    assert "default" in found[0].hint


def test_e008_accepts_any_configured_cache():
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    with override_settings(CACHES=caches), with_settings(RATE_LIMIT_CACHE="shared"):
        assert run_all_checks() == []


@pytest.mark.parametrize(
    "value",
    [
        ["rest_framework.permissions.IsAuthenticatd"],
        ["no_such_module.Permission"],
        ["IsAuthenticated"],
        [42],
    ],
)
def test_e009_permission_class_that_does_not_import(value):
    with with_settings(API_PERMISSION_CLASSES=value):
        found = run_all_checks()
    assert ids(found) == ["cronofy_conferencing.E009"]
    assert "CRONOFY_CONFERENCING['API_PERMISSION_CLASSES']" in found[0].msg
    assert repr(value[0]) in found[0].msg


def test_e009_not_a_list():
    with with_settings(API_PERMISSION_CLASSES="rest_framework.permissions.IsAuthenticated"):
        assert ids(run_all_checks()) == ["cronofy_conferencing.E009"]


def test_e009_reports_each_bad_entry():
    good = "rest_framework.permissions.IsAuthenticated"
    with with_settings(API_PERMISSION_CLASSES=[good, "a.B", "c.D"]):
        assert ids(run_all_checks()) == ["cronofy_conferencing.E009"] * 2


def test_e014_queue_on_without_its_package(monkeypatch):
    from django_cronofy_conferencing import checks as app_checks

    real_find_spec = __import__("importlib.util").util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name: None if name == "celery" else real_find_spec(name)
    )
    with with_settings(TASK_QUEUE="celery"):
        found = run_all_checks()
    assert ids(found) == ["cronofy_conferencing.E014"]
    assert f"CRONOFY_CONFERENCING['{app_checks.QUEUE_SETTING}']" in found[0].msg
    assert "celery" in found[0].msg and "pip install" in found[0].hint
    with with_settings(TASK_QUEUE=None):
        assert run_all_checks() == []


def test_e014_is_quiet_when_the_package_is_there():
    pytest.importorskip("celery")
    with with_settings(TASK_QUEUE="celery"):
        assert run_all_checks() == []


# -- E015: TASK_QUEUE ----------------------------------------------------------------


def _task_queue_errors(**extra):
    from django.conf import settings as django_settings
    from django.test import override_settings

    from django_cronofy_conferencing.checks import check_task_queue

    conf = {**django_settings.CRONOFY_CONFERENCING, **extra.pop("conf", {})}
    with override_settings(CRONOFY_CONFERENCING=conf, **extra):
        return [m for m in check_task_queue() if m.id == "cronofy_conferencing.E015"]


def test_e015_no_queue_or_a_working_one_is_fine():
    assert _task_queue_errors() == []
    assert _task_queue_errors(conf={"TASK_QUEUE": "celery"}) == []


def test_e015_an_unknown_queue_names_the_key():
    [error] = _task_queue_errors(conf={"TASK_QUEUE": "rq"})
    assert "CRONOFY_CONFERENCING['TASK_QUEUE']" in error.msg and "'rq'" in error.msg


def test_e015_a_leftover_use_celery_names_both_keys():
    [error] = _task_queue_errors(conf={"USE_CELERY": True})
    assert "CRONOFY_CONFERENCING['USE_CELERY']" in error.msg
    assert "CRONOFY_CONFERENCING['TASK_QUEUE']" in error.msg


def test_e015_django_tasks_not_installed(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    missing = ("django.tasks", "django_tasks")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a)
    )
    [error] = _task_queue_errors(conf={"TASK_QUEUE": "django"})
    assert "tasks framework is not installed" in error.msg
    assert "'tasks' extra" in error.hint


def test_e015_a_backend_that_never_runs_tasks():
    pytest.importorskip("django_tasks_db")
    from tests.conftest import tasks_backend

    [error] = _task_queue_errors(
        conf={"TASK_QUEUE": "django"}, TASKS=tasks_backend("dummy.DummyBackend")
    )
    assert "DummyBackend" in error.msg and "TASK_QUEUE" in error.msg
    assert (
        _task_queue_errors(
            conf={"TASK_QUEUE": "django"}, TASKS=tasks_backend("immediate.ImmediateBackend")
        )
        == []
    )


def test_e015_a_backend_that_cannot_be_loaded():
    pytest.importorskip("django_tasks_db")
    [error] = _task_queue_errors(
        conf={"TASK_QUEUE": "django"}, TASKS={"default": {"BACKEND": "no.such.Backend"}}
    )
    assert "cannot be loaded" in error.msg


# -- the push notification log (E026, W014) ------------------------------------------------


@pytest.mark.parametrize("days", ["30", -1, 1.5, True, None, [30]])
def test_push_log_days_must_be_a_whole_number_of_days(settings, days):
    from django_cronofy_conferencing.checks import check_push_log_days

    with override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "PUSH_LOG_DAYS": days}
    ):
        [error] = check_push_log_days()
    assert error.id == "cronofy_conferencing.E026"
    assert "CRONOFY_CONFERENCING['PUSH_LOG_DAYS']" in error.msg


@pytest.mark.parametrize("days", [0, 1, 30, 3650])
def test_push_log_days_accepts_zero_and_more(settings, days):
    from django_cronofy_conferencing.checks import check_push_log_days

    with override_settings(
        CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, "PUSH_LOG_DAYS": days}
    ):
        assert check_push_log_days() == []


@pytest.mark.django_db
def test_a_push_log_nothing_prunes_is_reported(settings):
    from datetime import timedelta

    from django.utils import timezone

    from django_cronofy_conferencing.checks import check_push_log_pruned
    from django_cronofy_conferencing.models import PushNotification

    def old(days: int) -> PushNotification:
        return PushNotification.objects.create(
            outcome="resynced", received_at=timezone.now() - timedelta(days=days)
        )

    assert check_push_log_pruned(databases=["default"]) == []
    old(45)  # older than PUSH_LOG_DAYS (30), not yet twice as old: a prune may be due soon
    assert check_push_log_pruned(databases=["default"]) == []
    old(61)
    [warning] = check_push_log_pruned(databases=["default"])
    assert warning.id == "cronofy_conferencing.W014"
    assert "CRONOFY_CONFERENCING['PUSH_LOG_DAYS']" in warning.msg
    assert "prune_push_notifications_task" in warning.hint
    assert check_push_log_pruned(databases=None) == []  # only with --database / migrate
    PushNotification.objects.prune()
    assert check_push_log_pruned(databases=["default"]) == []


# -- the relink loop: E023-E025, W012-W013 -------------------------------------------

REMINDERS_KEY = "CRONOFY_CONFERENCING['RELINK_REMINDERS']"
FROM = {"DEFAULT_FROM_EMAIL": "meetings@host.example"}


def test_relink_reminders_off_or_complete_is_quiet():
    with override_settings(**FROM), with_settings(RELINK_REMINDERS=None):
        assert run_all_checks() == []
    complete = {"DAYS": [0, 1, 3, 7], "PAGE_URL": "https://host.example/cronofy/"}
    with override_settings(**FROM), with_settings(RELINK_REMINDERS=complete):
        assert run_all_checks() == []
    with with_settings(RELINK_REMINDERS={"DAYS": [0], "EMAIL": False}, PRODUCT_NAME="Cronofy"):
        assert run_all_checks() == []


@pytest.mark.parametrize(
    ("value", "check_id", "words"),
    [
        ([0, 1, 3], "E023", f"{REMINDERS_KEY} must be None"),
        ({"DAYS": [0], "DAY": [1]}, "E023", f"{REMINDERS_KEY}['DAY'] is not a reminder setting"),
        ({"DAYS": [0], "EMAIL": "yes"}, "E023", f"{REMINDERS_KEY}['EMAIL'] must be True or False"),
        ({}, "E024", f"{REMINDERS_KEY}['DAYS'] must be a non-empty list"),
        ({"DAYS": [0, 0]}, "E024", f"{REMINDERS_KEY}['DAYS']"),
        ({"DAYS": [1.5]}, "E024", f"{REMINDERS_KEY}['DAYS']"),
        ({"DAYS": "0,1"}, "E024", f"{REMINDERS_KEY}['DAYS']"),
        ({"DAYS": [0], "PAGE_URL": "cronofy/"}, "E025", f"{REMINDERS_KEY}['PAGE_URL'] must be"),
        ({"DAYS": [0], "FROM_EMAIL": ""}, "E025", f"{REMINDERS_KEY}['FROM_EMAIL'] must be"),
    ],
)
def test_bad_relink_reminders_name_the_key(value, check_id, words):
    if isinstance(value, dict) and "PAGE_URL" not in value:
        value = {**value, "PAGE_URL": "https://host.example/cronofy/"}  # no W013 beside it
    with override_settings(**FROM), with_settings(RELINK_REMINDERS=value):
        found = run_all_checks()
    assert ids(found) == [f"cronofy_conferencing.{check_id}"], found
    assert words in found[0].msg


def test_e025_product_name_must_be_a_string():
    with with_settings(PRODUCT_NAME=["Cronofy"]):
        found = run_all_checks()
    assert ids(found) == ["cronofy_conferencing.E025"]
    assert "CRONOFY_CONFERENCING['PRODUCT_NAME']" in found[0].msg


def test_w012_reminders_from_djangos_placeholder_address():
    value = {"DAYS": [0], "PAGE_URL": "https://host.example/cronofy/"}
    with override_settings(DEFAULT_FROM_EMAIL="webmaster@localhost"):
        with with_settings(RELINK_REMINDERS=value):
            found = run_all_checks()
        assert ids(found) == ["cronofy_conferencing.W012"]
        assert "DEFAULT_FROM_EMAIL" in found[0].msg and REMINDERS_KEY in found[0].msg
        with with_settings(RELINK_REMINDERS={**value, "FROM_EMAIL": "a@host.example"}):
            assert run_all_checks() == []
        with with_settings(RELINK_REMINDERS={**value, "EMAIL": False}):
            assert run_all_checks() == []


def test_w013_reminders_without_a_link_to_the_page():
    with override_settings(**FROM):
        with with_settings(RELINK_REMINDERS={"DAYS": [0]}, PUSH_NOTIFICATIONS_CALLBACK_URL=""):
            found = run_all_checks()
        assert ids(found) == ["cronofy_conferencing.W013"]
        assert f"{REMINDERS_KEY}['PAGE_URL']" in found[0].msg
        # The push callback gives the site's address: the page's URL is built from it.
        with with_settings(
            RELINK_REMINDERS={"DAYS": [0]},
            PUSH_NOTIFICATIONS_CALLBACK_URL="https://host.example/cronofy/notifications/",
        ):
            assert run_all_checks() == []


# -- issue 21: E020, E021, W010 (W011: tests/sync/test_fleet_budget.py) ---------------


@pytest.mark.parametrize(
    "values, check_id, key",
    [
        ({"FLEET_BUDGET_SHARE": 0}, "E020", "FLEET_BUDGET_SHARE"),
        ({"FLEET_BUDGET_SHARE": 1.5}, "E020", "FLEET_BUDGET_SHARE"),
        ({"FLEET_BUDGET_SHARE": "0.8"}, "E020", "FLEET_BUDGET_SHARE"),
        ({"FLEET_BUDGET_SHARE": True}, "E020", "FLEET_BUDGET_SHARE"),
        ({"SYNC_CONFIRM_AFTER": -1}, "E021", "SYNC_CONFIRM_AFTER"),
        ({"SYNC_CONFIRM_AFTER": "day"}, "E021", "SYNC_CONFIRM_AFTER"),
        ({"SYNC_CONFIRM_AFTER": 60, "SYNC_STALE_AFTER": 3600}, "W010", "SYNC_CONFIRM_AFTER"),
    ],
)
def test_freshness_settings_are_checked(settings, values, check_id, key):
    from django_cronofy_conferencing.checks import check_freshness_settings

    config = settings.CRONOFY_CONFERENCING
    with override_settings(CRONOFY_CONFERENCING={**config, **values}):
        messages = check_freshness_settings()
    assert [m.id for m in messages] == [f"cronofy_conferencing.{check_id}"]
    assert f"CRONOFY_CONFERENCING['{key}']" in messages[0].msg


def test_freshness_defaults_pass(settings):
    from django_cronofy_conferencing.checks import check_freshness_settings

    config = settings.CRONOFY_CONFERENCING
    with override_settings(CRONOFY_CONFERENCING={**config, "FLEET_BUDGET_SHARE": 1}):
        assert check_freshness_settings() == []
    assert check_freshness_settings() == []

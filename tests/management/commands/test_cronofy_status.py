"""``manage.py cronofy_status``: every figure against a known fleet, its JSON keys, a fixed
number of queries whatever the fleet's size, and ``--fail-when`` for monitoring."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cronofy_conferencing import health
from django_cronofy_conferencing.models import (
    CalendarProfile,
    ConferencingProfile,
    LinkedAccount,
    PushNotification,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
Status = LinkedAccount.Status
UNAVAILABLE = "Cronofy failed with HTTP 503 on GET /v1/userinfo (us)."
RATE_LIMITED = "Cronofy rate limit reached on GET /v1/userinfo (us)."
DEAD_GRANT = "Cronofy refused the grant on POST /oauth/token (us): invalid_grant."


def make_account(n: int, **fields) -> LinkedAccount:
    defaults = {
        "data_center": "us",
        "sub": f"acc_status{n}",
        "email": f"person{n}@example.com",
        "access_token": f"status-access-{n}",
        "refresh_token": f"status-refresh-{n}",
        "last_synced_at": timezone.now(),
        "channel_id": f"chn_status{n}",
    }
    return LinkedAccount.objects.create(**{**defaults, **fields})


def profile(account, provider, connected, *, removed=False, model=ConferencingProfile, n=0):
    return model.objects.create(
        account=account,
        profile_id=f"pro_{account.pk}_{provider}_{n}",
        provider_name=provider,
        profile_name="someone",
        profile_connected=connected,
        removed_at=timezone.now() if removed else None,
    )


@pytest.fixture
def fleet():
    """Six active accounts (one never synced, one stale, two failing, two without a
    channel), two needing reauthorization (one with failures), one revoked; profiles
    disconnected in every way that counts and in every way that does not."""
    now = timezone.now()
    never = make_account(1, last_synced_at=None)
    stale = make_account(2, last_synced_at=now - timedelta(hours=2))
    unavailable = make_account(3, consecutive_failures=2, last_sync_error=UNAVAILABLE)
    limited = make_account(4, consecutive_failures=1, last_sync_error=RATE_LIMITED)
    no_channel = make_account(5, channel_id="")
    also_no_channel = make_account(6, channel_id="")
    reauth = make_account(
        7,
        status=Status.REAUTHORIZATION_REQUIRED,
        consecutive_failures=3,
        last_sync_error=DEAD_GRANT,
        channel_id="",
    )
    make_account(8, status=Status.REAUTHORIZATION_REQUIRED, last_synced_at=None)
    make_account(9, status=Status.REVOKED, channel_id="")
    profile(never, "zoom", False)
    profile(stale, "zoom", False)
    profile(unavailable, "ms_teams", False)
    profile(limited, "zoom", True)
    profile(no_channel, "zoom", False, removed=True)  # removed: not counted
    profile(reauth, "zoom", False)  # an inactive account's: not counted
    profile(also_no_channel, "webex", True)
    profile(never, "google", False, model=CalendarProfile)
    profile(stale, "apple", True, model=CalendarProfile)
    PushNotification.objects.create(
        notification_type="change",
        signature_valid=True,
        outcome="resynced",
        received_at=now - timedelta(minutes=5),
    )
    PushNotification.objects.create(  # a forgery, later: not Cronofy's last word
        notification_type="change", signature_valid=False, outcome="refused", received_at=now
    )
    return now


def status_json(*args: str) -> dict:
    out = StringIO()
    call_command("cronofy_status", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_every_figure_of_a_known_fleet(fleet):
    data = status_json()
    assert data["accounts"] == {"active": 6, "reauthorization_required": 2, "revoked": 1}
    assert data["due"] == {"total": 2, "by_reason": {"never_synced": 1, "stale": 1}}
    assert data["failing"] == {
        "total": 2,
        "by_reason": {"rate_limited": 1, "unavailable": 1},
    }
    assert data["profiles_disconnected"] == {"ms_teams": 1, "zoom": 2}
    assert data["calendar_profiles_disconnected"] == {"google": 1}
    assert data["without_push_channel"] == 2
    assert data["last_notification_at"] == (fleet - timedelta(minutes=5)).isoformat()
    assert data["last_sweep"] is None
    assert data["rate_limits"] == {}  # RATE_LIMITS is [] in the test settings


def test_the_json_keys_are_designs(fleet):
    data = status_json()
    for key in (
        "accounts",
        "due",
        "failing",
        "profiles_disconnected",
        "without_push_channel",
        "last_notification_at",
    ):
        assert key in data
    assert set(data["accounts"]) == {"active", "reauthorization_required", "revoked"}


def test_an_empty_fleet():
    data = status_json()
    assert data["accounts"] == {"active": 0, "reauthorization_required": 0, "revoked": 0}
    assert data["due"] == {"total": 0, "by_reason": {"never_synced": 0, "stale": 0}}
    assert data["failing"] == {"total": 0, "by_reason": {}}
    assert data["last_notification_at"] is None
    text = StringIO()
    call_command("cronofy_status", stdout=text)
    assert "Accounts: 0 linked" in text.getvalue()


def test_human_text(fleet, settings_with):
    out = StringIO()
    with settings_with(PUSH_NOTIFICATIONS_CALLBACK_URL=""):
        call_command("cronofy_status", stdout=out)
    text = out.getvalue()
    assert "Accounts: 9 linked: 6 active, 2 reauthorization required, 1 revoked" in text
    assert "Due for a sync: 2 (never synced 1, not synced within SYNC_STALE_AFTER 1)" in text
    assert "Failing: 2 of 6 active (33.3%)" in text
    assert "Cronofy could not be reached 1" in text and "rate limit was reached 1" in text
    assert "Disconnected conferencing profiles: 3 of 5 (Microsoft Teams 1, Zoom 2)" in text
    assert "Disconnected calendar profiles: 1 of 2 (Google 1)" in text
    assert "Without a push channel: 2 of 6 active (push notifications are not configured" in text
    assert "Last push notification: " in text and "5\xa0minutes ago" in text
    assert "Last sweep: none recorded" in text
    assert "{" not in text  # not JSON


def test_due_by_reason_adds_up_to_due(fleet):
    """due_by_reason is the one place that explains due(): the two never drift apart."""
    reasons = health.due_by_reason()
    assert sum(reasons.values()) == LinkedAccount.objects.due().count() == 2
    due = set(LinkedAccount.objects.due().values_list("pk", flat=True))
    matched = set()
    for condition in health.due_reasons().values():
        these = set(LinkedAccount.objects.active().filter(condition).values_list("pk", flat=True))
        assert not these & matched  # disjoint
        matched |= these
    assert matched == due


def test_the_last_sweep(sim, link_account):
    account, _ = link_account()
    call_command("cronofy_sync", stdout=StringIO())
    sweep = status_json()["last_sweep"]
    assert sweep["kind"] == "inline" and sweep["synced"] >= 1
    # An explicit selection is no sweep: it leaves the record alone.
    health.record_sweep("inline", synced=99)
    call_command("cronofy_sync", "--account", str(account.pk), stdout=StringIO())
    assert status_json()["last_sweep"]["synced"] == 99


def test_rate_limits_per_application(fleet, settings_with):
    with settings_with(RATE_LIMITS=["50/s", "500/m"]):
        data = status_json()
    assert set(data["rate_limits"]) == {"us", "uk", "de", "au", "ca", "sg"}
    assert [r["rate"] for r in data["rate_limits"]["us"]] == ["500/60s", "50/1s"]
    assert all(r["in_use"] == 0 and r["queued"] == 0 for r in data["rate_limits"]["us"])


# -- a fixed number of queries -------------------------------------------------------------

STATUS_QUERIES = 6


def bulk_fleet(count: int, start: int = 0) -> None:
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"fleet{start + i}", password="!") for i in range(count)]
    )
    now = timezone.now()
    statuses = list(Status)
    accounts = LinkedAccount.objects.bulk_create(
        [
            LinkedAccount(
                user=u,
                data_center="us",
                sub=f"acc_fleet{start + i}",
                email=f"fleet{start + i}@example.com",
                status=statuses[i % 3],
                access_token="x",
                refresh_token="y",
                last_synced_at=None if i % 5 == 0 else now - timedelta(hours=i % 3),
                consecutive_failures=i % 4,
                last_sync_error=(UNAVAILABLE, RATE_LIMITED, DEAD_GRANT, "boom")[i % 4]
                if i % 4
                else "",
                channel_id="" if i % 7 == 0 else f"chn_fleet{start + i}",
            )
            for i, u in enumerate(users)
        ]
    )
    ConferencingProfile.objects.bulk_create(
        [
            ConferencingProfile(
                account=a,
                profile_id=f"pro_fleet{start + i}",
                provider_name=("zoom", "ms_teams", f"prov{i % 9}")[i % 3],
                profile_name="x",
                profile_connected=bool(i % 2),
            )
            for i, a in enumerate(accounts)
        ]
    )
    CalendarProfile.objects.bulk_create(
        [
            CalendarProfile(
                account=a,
                profile_id=f"pro_cal{start + i}",
                provider_name="google",
                profile_name="x",
                profile_connected=bool(i % 3),
            )
            for i, a in enumerate(accounts)
        ]
    )


def count_queries(*args: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        call_command("cronofy_status", *args, stdout=StringIO())
    return len(ctx.captured_queries)


def test_queries_are_constant_whatever_the_fleet_size():
    bulk_fleet(10)
    small = (count_queries("--json"), count_queries())
    bulk_fleet(990, start=10)
    assert LinkedAccount.objects.count() == 1000
    large = (count_queries("--json"), count_queries())
    assert small == large == (STATUS_QUERIES, STATUS_QUERIES)
    data = status_json()
    assert sum(data["accounts"].values()) == 1000
    assert data["due"]["total"] == LinkedAccount.objects.due().count()


# -- --fail-when ---------------------------------------------------------------------------


def test_fail_when_a_condition_holds(fleet):
    with pytest.raises(CommandError) as caught:
        status_json("--fail-when", "failing>5%")
    assert caught.value.returncode == 1
    assert "failing>5% holds: 33.3% (2 of 6 active accounts)" in str(caught.value)


def test_fail_when_nothing_holds(fleet):
    data = status_json(
        "--fail-when",
        "failing>50%",
        "--fail-when",
        "accounts.revoked>=2",
        "--fail-when",
        "last_notification_age>1h",
    )
    assert [c["held"] for c in data["fail_when"]] == [False, False, False]


@pytest.mark.parametrize(
    "condition",
    [
        "failing>=2",
        "failing.unavailable=1",
        "due.never_synced>0",
        "accounts.reauthorization_required>1",
        "profiles_disconnected.zoom>=2",
        "profiles_disconnected>50%",  # 3 of 5
        "calendar_profiles_disconnected.google!=0",
        "without_push_channel>=2",
        "last_sweep_age>2h",  # never: held
        "last_notification_age>=60s",
        "last_notification_age<1d",
    ],
)
def test_each_figure_can_fail(fleet, condition):
    with pytest.raises(CommandError) as caught:
        status_json("--fail-when", condition)
    assert caught.value.returncode == 1
    assert condition in str(caught.value)


def test_several_conditions_report_each_that_held(fleet):
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(
            "cronofy_status",
            "--fail-when",
            "due>100",
            "--fail-when",
            "failing.rate_limited>0",
            "--fail-when",
            "accounts.revoked>0",
            stdout=out,
        )
    message = str(caught.value)
    assert "due>100" not in message
    assert "failing.rate_limited>0 holds" in message and "accounts.revoked>0 holds" in message
    assert "--fail-when due>100: does not hold (2)" in out.getvalue()


@pytest.mark.parametrize(
    "condition,said",
    [
        ("failing>>5", "is not NAME OP VALUE"),
        ("failing", "is not NAME OP VALUE"),
        ("sadness>1", "unknown figure 'sadness'"),
        ("failing.bad_luck>1", "has no 'bad_luck'"),
        ("accounts>1", "name a status"),
        ("last_sweep_age>5%", "is an age"),
        ("due>3h", "is a count"),
        ("", "is not NAME OP VALUE"),
    ],
)
def test_a_condition_that_cannot_be_read_is_a_command_error(fleet, condition, said):
    with pytest.raises(CommandError) as caught:
        status_json("--fail-when", condition)
    assert caught.value.returncode == 2
    assert str(caught.value).startswith("--fail-when: ")
    assert said in str(caught.value)


def test_the_exit_status_in_a_real_process(tmp_path):
    """What a monitoring probe sees: 0, 1 when a condition holds, 2 when it cannot be read."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'status.sqlite3'}"
    env.pop("TEST_DB_SUFFIX", None)

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert run("migrate", "-v", "0").returncode == 0
    assert run("cronofy_status", "--fail-when", "failing>5%").returncode == 0
    held = run("cronofy_status", "--fail-when", "last_sweep_age>1h")
    assert held.returncode == 1 and "last_sweep_age>1h holds: never" in held.stderr
    bad = run("cronofy_status", "--fail-when", "failing>>1")
    assert bad.returncode == 2 and "--fail-when" in bad.stderr


def test_a_queued_sweep_is_recorded_too(link_account):
    from django_cronofy_conferencing.queueing.jobs import fan_out_due

    link_account()
    fan_out_due(None, lambda pk, stamp: None)
    sweep = status_json()["last_sweep"]
    assert (sweep["kind"], sweep["queued"]) == ("queued", 1)
    out = StringIO()
    call_command("cronofy_status", stdout=out)
    assert "Last sweep: " in out.getvalue() and ": 1 queued" in out.getvalue()


def test_an_unreachable_cache_reads_as_no_sweep(fleet, monkeypatch):
    from django.core.cache import caches

    cache = caches["default"]

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "set", down)
    health.record_sweep("inline", synced=1)  # never raises
    assert status_json()["last_sweep"] is None

"""Celery tasks, run eagerly in this process (tests/integration runs a real worker)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.utils import timezone

pytest.importorskip("celery")

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.queueing import celery as tasks
from django_cronofy_conferencing.queueing import jobs
from django_cronofy_conferencing.tasks import (
    SYNC_TASK_MAX_RETRIES,
    retry_delay,
    sync_account_task,
    sync_due_accounts_task,
)

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ATTEMPTS = 4  # the client's own try and MAX_RETRIES retries, inside one task run


@pytest.fixture
def eager():
    conf = sync_account_task.app.conf
    saved = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager, conf.task_eager_propagates = True, True
    yield
    conf.task_always_eager, conf.task_eager_propagates = saved


@pytest.fixture
def delays():
    """The countdowns the task asked for (eager retries run at once)."""
    recorded: list[float] = []

    def record(retries, retry_after=None, rng=random):
        value = retry_delay(retries, retry_after, rng)
        recorded.append(value)
        return value

    with mock.patch.object(tasks, "retry_delay", side_effect=record):
        yield recorded


def test_task_names():
    assert sync_account_task.name == "django_cronofy_conferencing.tasks.sync_account_task"
    assert sync_due_accounts_task.name == "django_cronofy_conferencing.tasks.sync_due_accounts_task"
    assert sync_account_task.max_retries == SYNC_TASK_MAX_RETRIES


@pytest.mark.django_db
def test_sync_account_task_syncs(sim, link_account):
    account, _ = link_account(conferencing_profiles=[sim.profile("zoom")])
    result = sync_account_task.apply((account.pk,)).get()
    assert result == {
        "account": account.pk,
        "status": "synced",
        "created": 1,
        "updated": 0,
        "removed": 0,
        "unchanged": 0,
    }
    assert ConferencingProfile.objects.count() == 1


@pytest.mark.django_db
def test_missing_and_inactive_accounts_call_nothing(sim, link_account):
    account, _ = link_account()
    assert sync_account_task.apply((account.pk + 100,)).get()["status"] == "missing"
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    result = sync_account_task.apply((account.pk,)).get()
    assert result["status"] == "reauthorization_required"
    assert sim.requests == []


@pytest.mark.django_db
def test_account_synced_since_it_was_found_due_is_skipped(sim, link_account):
    account, _ = link_account()
    found_due_at = timezone.now()
    LinkedAccount.objects.filter(pk=account.pk).update(
        last_synced_at=found_due_at + timedelta(seconds=5)
    )
    result = sync_account_task.apply((account.pk, found_due_at.isoformat())).get()
    assert result["status"] == "fresh"
    assert sim.requests == []
    LinkedAccount.objects.filter(pk=account.pk).update(
        last_synced_at=found_due_at - timedelta(hours=2)
    )
    result = sync_account_task.apply((account.pk, found_due_at.isoformat())).get()
    assert result["status"] == "synced"


@pytest.mark.django_db
def test_transient_errors_are_retried_a_bounded_number_of_times(sim, link_account, delays):
    account, _ = link_account()
    sim.fail("userinfo", status=503, times=None)
    result = sync_account_task.apply((account.pk,)).get()
    assert result == {"account": account.pk, "status": "failed", "error": "CronofyUnavailable"}
    assert sim.count("userinfo") == (SYNC_TASK_MAX_RETRIES + 1) * CLIENT_ATTEMPTS
    assert len(delays) == SYNC_TASK_MAX_RETRIES
    # Exponential with jitter: each between half and all of 30 s * 2**n.
    for n, delay in enumerate(delays):
        assert 15 * 2**n <= delay <= 30 * 2**n
    account.refresh_from_db()
    assert account.consecutive_failures == SYNC_TASK_MAX_RETRIES + 1


@pytest.mark.django_db
def test_transient_error_then_success(sim, link_account, delays):
    account, _ = link_account(conferencing_profiles=[sim.profile("zoom")])
    sim.fail("userinfo", status=502, times=CLIENT_ATTEMPTS)  # the whole first run
    result = sync_account_task.apply((account.pk,)).get()
    assert result["status"] == "synced"
    assert len(delays) == 1
    account.refresh_from_db()
    assert account.consecutive_failures == 0
    assert account.last_sync_error == ""


@pytest.mark.django_db
def test_rate_limited_honours_retry_after(sim, link_account, delays):
    account, _ = link_account()
    # Longer than the client's own RETRY_MAX_WAIT: the client gives up at once.
    sim.fail("userinfo", status=429, headers={"Retry-After": "120"}, times=1)
    result = sync_account_task.apply((account.pk,)).get()
    assert result["status"] == "synced"
    assert len(delays) == 1
    assert 120 <= delays[0] <= 121


@pytest.mark.django_db
@pytest.mark.parametrize("fault", ["dead_grant", "invalid_body", "forbidden"])
def test_permanent_errors_are_never_retried(sim, link_account, delays, fault):
    account, sim_account = link_account()
    if fault == "dead_grant":
        sim.revoke_grant(sim_account.sub)
        expected = "InvalidGrant"
    elif fault == "invalid_body":
        sim.fail("userinfo", body='{"sub": 5}', times=None)
        expected = "InvalidResponse"
    else:
        sim.fail("userinfo", status=403, times=None)
        expected = "CronofyAPIError"
    result = sync_account_task.apply((account.pk,)).get()
    assert result == {"account": account.pk, "status": "failed", "error": expected}
    assert delays == []
    account.refresh_from_db()
    assert account.consecutive_failures == 1 or account.status != LinkedAccount.Status.ACTIVE


def test_retry_delay():
    rng = random.Random(5)
    for retries in range(8):
        value = retry_delay(retries, rng=rng)
        ceiling = min(30 * 2**retries, tasks.RETRY_BACKOFF_MAX)
        assert ceiling / 2 <= value <= ceiling
    assert 7 <= retry_delay(0, 7.0, rng=rng) <= 8
    assert retry_delay(3, 10**6, rng=rng) <= tasks.RETRY_BACKOFF_MAX + 1
    # Jittered: retries of many tasks spread out.
    assert len({round(retry_delay(2, rng=rng), 3) for _ in range(20)}) > 10


@pytest.mark.django_db(transaction=True)  # enqueued on commit: no test transaction around it
def test_sync_due_accounts_task_fans_out_one_task_per_due_account(
    sim, link_account, eager, monkeypatch
):
    monkeypatch.setattr(jobs, "FAN_OUT_CHUNK_SIZE", 3)
    due = [link_account(conferencing_profiles=[sim.profile("zoom")])[0] for _ in range(7)]
    fresh, _ = link_account()
    LinkedAccount.objects.filter(pk=fresh.pk).update(last_synced_at=timezone.now())
    broken, _ = link_account()
    LinkedAccount.objects.filter(pk=broken.pk).update(status=LinkedAccount.Status.REVOKED)

    queued = sync_due_accounts_task.delay().get()
    assert queued == 7
    assert sorted(r.sub for r in sim.requests if r.endpoint == "userinfo") == sorted(
        a.sub for a in due
    )
    assert ConferencingProfile.objects.count() == 7
    # Nothing is due any more.
    assert sync_due_accounts_task.delay().get() == 0


@pytest.mark.django_db
def test_sync_due_accounts_task_stale_after(sim, link_account, eager):
    account, _ = link_account()
    LinkedAccount.objects.filter(pk=account.pk).update(
        last_synced_at=timezone.now() - timedelta(minutes=10)
    )
    assert sync_due_accounts_task.delay().get() == 0  # SYNC_STALE_AFTER: an hour
    assert sync_due_accounts_task.delay(stale_after=300).get() == 1


@pytest.mark.django_db(transaction=True)  # enqueued on commit: no test transaction around it
def test_fan_out_chunks_queue_the_tasks(sim, link_account, monkeypatch):
    monkeypatch.setattr(jobs, "FAN_OUT_CHUNK_SIZE", 2)
    accounts = [link_account()[0] for _ in range(5)]
    with mock.patch.object(sync_account_task, "apply_async") as apply_async:
        assert sync_due_accounts_task.apply().get() == 5
    sent = [c.args[0] for c in apply_async.call_args_list]
    assert [account_id for account_id, _ in sent] == [a.pk for a in accounts]
    stamps = {stamp for _, stamp in sent}
    assert len(stamps) == 1
    assert sim.requests == []


def test_the_app_works_without_celery(tmp_path):
    """Every module but tasks imports, and the checks pass, with Celery unimportable."""
    script = textwrap.dedent(
        """
        import importlib, os, pkgutil, sys
        sys.modules["celery"] = None  # import celery -> ImportError
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        import django
        django.setup()
        import django_cronofy_conferencing as app
        for info in pkgutil.walk_packages(app.__path__, app.__name__ + "."):
            if info.name.endswith((".tasks", ".queueing.celery")):
                continue
            importlib.import_module(info.name)
        from django.core.management import call_command
        call_command("check")
        call_command("migrate", verbosity=0)
        call_command("cronofy_sync", "--dry-run")
        try:
            import django_cronofy_conferencing.tasks
        except ImportError:
            print("tasks needs celery: ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "tasks needs celery: ok" in completed.stdout

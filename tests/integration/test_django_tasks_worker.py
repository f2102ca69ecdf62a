"""Four real ``db_worker`` processes (Django's tasks, django-tasks-db) sync one fleet on
PostgreSQL through the rate limit they share in Redis, against a simulator enforcing it.

The test enqueues the due accounts (``queueing.queue_due_accounts``, as
``cronofy_sync --queue`` does); the workers take them from the database
(``SELECT ... FOR UPDATE SKIP LOCKED``). A scaled-down run: a per-second limit
instead of Cronofy's 500 a minute (benchmarks/fleet_workers.py measures that).
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter

import pytest

pytest.importorskip("django_tasks_db")

from django.conf import settings
from django.test import override_settings

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.queueing import queue_due_accounts
from django_cronofy_conferencing.testing import SimulatedCronofy, serve_simulator

from .conftest import PYTHON, ROOT, make_fleet, process_env
from .test_celery_worker import wait_until

ACCOUNTS = 160
WORKERS = 4
RATE = 40  # per second, what the simulator allows
# What the workers claim: a tenth below, so that four processes on a loaded 2-core
# machine, a thread woken late, cannot bunch two requests into one server window
# (the app would retry a 429; this test wants none).
CLIENT_RATE = 36

pytestmark = pytest.mark.django_db(transaction=True)


def stop_all(workers) -> str:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()  # the worker finishes its task, then exits
    errors = ""
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        errors += worker.stderr.read() if worker.stderr else ""
    return errors


def test_four_db_workers_sync_every_account_once_under_the_shared_limit(
    postgres_only, redis_url, key_prefix
):
    sim = SimulatedCronofy()
    with serve_simulator(sim, latency=0.02, rate_limits=[f"{RATE}/s"]) as server:
        sim_accounts = make_fleet(sim, ACCOUNTS)
        env = process_env(
            server,
            cache_prefix=key_prefix,
            rate_limits=f"{CLIENT_RATE}/s",
            CRONOFY_TASKS_BACKEND="db",
            CRONOFY_TASK_QUEUE="django",
        )
        conf = {**settings.CRONOFY_CONFERENCING, "TASK_QUEUE": "django"}
        with override_settings(
            CRONOFY_CONFERENCING=conf,
            TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
        ):
            assert queue_due_accounts() == ACCOUNTS
        command = [PYTHON, "-m", "django", "db_worker", "--no-startup-delay", "--no-reload"]
        workers = [
            subprocess.Popen(
                [*command, "--interval=0.1", f"--worker-id={key_prefix[-12:]}-{i}"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(WORKERS)
        ]
        try:
            for worker in workers:
                wait_until(
                    lambda: not LinkedAccount.objects.filter(last_synced_at__isnull=True).exists(),
                    timeout=90,
                    what="waiting for every account to be synced",
                    worker=worker,
                )
            time.sleep(0.5)  # anything queued twice would run now
        finally:
            errors = stop_all(workers)

        per_account = Counter(r.sub for r in sim.requests if r.endpoint == "userinfo")
        assert per_account == Counter({a.sub: 1 for a in sim_accounts}), "not exactly once"
        assert server.rate_limited == 0
        assert server.max_in_window(1.0) <= RATE

    assert "Traceback" not in errors, errors[-3000:]
    expected = sum(len(a.conferencing_profiles) for a in sim_accounts)
    assert ConferencingProfile.objects.count() == expected
    assert (
        ConferencingProfile.objects.values("account", "profile_id").distinct().count() == expected
    )
    assert LinkedAccount.objects.filter(consecutive_failures__gt=0).count() == 0

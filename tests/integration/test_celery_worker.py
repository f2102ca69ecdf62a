"""A real Celery worker (Redis broker, 8 threads) syncs 200 accounts on PostgreSQL.

The test queues ``sync_due_accounts_task`` only; the worker fans it out into
one ``sync_account_task`` per due account, on a queue of this test's own, and
syncs them against the HTTP simulator under a rate limit shared through Redis.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter

import pytest

pytest.importorskip("celery")

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.testing import SimulatedCronofy, serve_simulator

from .conftest import PYTHON, ROOT, make_fleet, process_env, redis_client

ACCOUNTS = 200
RATE = 150  # per second, the simulator's and the app's

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(predicate, timeout: float, what: str, worker) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if worker.poll() is not None:
            _out, err = worker.communicate()
            pytest.fail(f"the worker exited ({worker.returncode}) while {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s while {what}")
        time.sleep(0.2)


def stop(worker) -> str:
    if worker.poll() is None:
        worker.terminate()  # warm shutdown: finish the running tasks
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
    return worker.stderr.read() if worker.stderr else ""


def test_celery_worker_syncs_every_account_exactly_once(postgres_only, redis_url, key_prefix):
    from celery import Celery

    queue = f"{key_prefix}-queue"
    sim = SimulatedCronofy()
    with serve_simulator(sim, latency=0.02, rate_limits=[f"{RATE}/s"]) as server:
        sim_accounts = make_fleet(sim, ACCOUNTS)
        env = process_env(
            server,
            cache_prefix=key_prefix,
            rate_limits=f"{RATE}/s",
            CELERY_TEST_BROKER_URL=redis_url,
            CELERY_TEST_QUEUE=queue,
        )
        worker = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "tests.integration.celery_app",
                "worker",
                "--pool=threads",
                "--concurrency=8",
                f"--queues={queue}",
                f"--hostname={queue}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # A sender of our own: the test process never becomes a Celery app.
        sender = Celery(f"sender-{uuid.uuid4().hex[:6]}", set_as_current=False)
        sender.conf.broker_url = redis_url
        try:
            sender.send_task(
                "django_cronofy_conferencing.tasks.sync_due_accounts_task", queue=queue
            )
            wait_until(
                lambda: not LinkedAccount.objects.filter(last_synced_at__isnull=True).exists(),
                timeout=60,
                what="waiting for every account to be synced",
                worker=worker,
            )
            time.sleep(0.5)  # anything queued twice would run now
        finally:
            errors = stop(worker)
            sender.close()
            redis_client().delete(queue)

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
    assert LinkedAccount.objects.exclude(last_sync_error="").count() == 0
    assert LinkedAccount.objects.filter(consecutive_failures__gt=0).count() == 0

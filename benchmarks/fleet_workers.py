"""Four worker processes sync one fleet through the shared 500/minute limit.

    python benchmarks/fleet_sync.py --phases workers      # both kinds, ~75 s each
    python benchmarks/fleet_workers.py [celery|django]    # one kind

Kinds: Celery on Redis (``--pool=threads``, 4 threads a worker) and Django's
tasks framework on django-tasks-db (``db_worker``, one task at a time). The
simulator enforces 500/m and 50/s (``SlidingWindowLimit``, 429 beyond); the
fleet is larger than a minute's budget, so the run is rate-bound. Reported:
requests in the busiest 60 s window against 500, 429 answers, accounts synced
more than once, duplicate profile rows. The processes use ``tests.settings``
(database, cache, simulator and limit from the environment), so this needs the
test extra, PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMITS = ["50/s", "500/m"]
WORKERS = 4


def _settings_env(database_url: str, redis_url: str, server, prefix: str, kind: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "CRONOFY_SIM_API_URL": server.api_url,
        "CRONOFY_SIM_APP_URL": server.app_url,
        "CRONOFY_CACHE_URL": redis_url,
        "CRONOFY_CACHE_PREFIX": prefix,
        "CRONOFY_RATE_LIMITS": ",".join(LIMITS),
        "CRONOFY_TASK_QUEUE": kind,
        "CRONOFY_TASKS_BACKEND": "db",
        "CELERY_TEST_BROKER_URL": redis_url,
        "CELERY_TEST_QUEUE": f"{prefix}-queue",
    }


def _worker(kind: str, i: int, prefix: str, env: dict) -> subprocess.Popen:
    if kind == "celery":
        command = [
            *("-m", "celery", "-A", "tests.integration.celery_app", "worker", "--pool=threads"),
            *("--concurrency=4", f"--queues={prefix}-queue", f"--hostname={prefix}-{i}@%h"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"),
        ]
    else:
        command = ["-m", "django", "db_worker", "--no-startup-delay", "--no-reload"]
        command += ["--interval=0.2", f"--worker-id={prefix[-10:]}-{i}"]
    return subprocess.Popen(  # noqa: S603 (trusted arguments)
        [sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )


def run_kind(kind: str, *, database_url: str, redis_url: str, seconds: float) -> dict:
    """Seed, enqueue the due accounts, run four workers for ``seconds``; the figures."""
    prefix = f"cronofy-workers-{uuid.uuid4().hex[:8]}"
    from django_cronofy_conferencing.testing import SimulatedCronofy, max_in_window, serve_simulator

    sim = SimulatedCronofy()
    accounts = int(seconds / 60 * 500 * 1.3)  # more than the run can sync
    with serve_simulator(sim, latency=0.1, rate_limits=LIMITS, register=False) as server:
        env = _settings_env(database_url, redis_url, server, prefix, kind)
        os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
        from django_cronofy_conferencing.queueing import queue_due_accounts
        from tests.integration.conftest import make_fleet

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            tables = [ConferencingProfile._meta.db_table, LinkedAccount._meta.db_table]
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.all().delete()
        make_fleet(sim, accounts)
        load_start = float(Path("/proc/loadavg").read_text().split()[0])
        if kind == "celery":
            from celery import Celery

            sender = Celery(f"sender-{prefix}", set_as_current=False)
            sender.conf.broker_url = redis_url
            sender.send_task(
                "django_cronofy_conferencing.tasks.sync_due_accounts_task",
                queue=f"{prefix}-queue",
            )
        else:
            queue_due_accounts()
        workers = [_worker(kind, i, prefix, env) for i in range(WORKERS)]
        try:
            time.sleep(seconds)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
        load_end = float(Path("/proc/loadavg").read_text().split()[0])
        arrivals = sorted(server.arrivals)
        per_account = Counter(r.sub for r in sim.requests if r.endpoint == "userinfo")
        rows = ConferencingProfile.objects.count()
        distinct = ConferencingProfile.objects.values("account", "profile_id").distinct().count()
        busiest = max_in_window(arrivals, 60.0)
        figures = {
            "workers": WORKERS,
            "requests": len(arrivals),
            "busiest_60s": busiest,
            "share_of_limit": round(busiest / 500, 3),
            "busiest_1s": max_in_window(arrivals, 1.0),
            "http_429": server.rate_limited,
            "synced_twice": sum(1 for n in per_account.values() if n > 1),
            "duplicate_rows": rows - distinct,
            "load_start": load_start,
            "load_end": load_end,
        }
    print(f"\n== workers: {WORKERS} x {kind}, {accounts} accounts, {seconds:.0f} s ==")
    for key, value in figures.items():
        print(f"  {key:20s} {value}")
    return figures


def run_all(*, database_url: str, redis_url: str, seconds: float, env: dict) -> dict:
    """Each kind in a process of its own (one Django setup per kind)."""
    import json

    results = {}
    for kind in ("celery", "django"):
        done = subprocess.run(  # noqa: S603 (this script)
            [sys.executable, __file__, kind, database_url, redis_url, str(seconds)],
            env={**env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
        )
        print(done.stdout, end="")
        if done.returncode != 0:
            raise SystemExit(f"the {kind} workers run failed:\n{done.stderr[-3000:]}")
        results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


if __name__ == "__main__":
    import json

    sys.path.insert(0, str(ROOT))
    kind = sys.argv[1] if len(sys.argv) > 1 else "django"
    database = (
        sys.argv[2] if len(sys.argv) > 2 else "postgres://postgres@127.0.0.1:5432/cronofy_bench"
    )
    redis = sys.argv[3] if len(sys.argv) > 3 else "redis://127.0.0.1:6379/14"
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 75
    print(json.dumps(run_kind(kind, database_url=database, redis_url=redis, seconds=seconds)))

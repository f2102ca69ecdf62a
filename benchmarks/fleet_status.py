#!/usr/bin/env python
"""Fleet status benchmark: ``cronofy_status`` (``health.fleet_health``) on a large fleet,
and the push log's INSERT on a small and a large log.

    python benchmarks/fleet_status.py                       # 100,000 accounts, PostgreSQL
    python benchmarks/fleet_status.py --database-url sqlite:////tmp/status.sqlite3

Seeds (once; kept between runs of the same size) N accounts (a third failing, a fifth
without a push channel, every status), two conferencing profiles and one calendar
profile each, and N push notifications; then prints, with the load average
(``/proc/loadavg``): the queries and the time (best and median of ``--runs``) of
``fleet_health()`` and of ``cronofy_status --json``; and the median time of one push log
INSERT (``push_log.store``, what the receiver adds) on the same table with N rows and
with none.

Needs PostgreSQL (default postgres://postgres@127.0.0.1:5432/cronofy_status_bench,
created if missing) or a SQLite file, and Redis (``--redis-url``, default db 9) for the
rate limit's cache. Not a test: ``tests/management/commands/test_cronofy_status.py``
asserts the query count at 10 and 1,000 accounts.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fleet_sync import ensure_database  # noqa: E402

BATCH = 5000


def seed(count: int) -> None:
    from django.utils import timezone

    from django_cronofy_conferencing.fields import encrypt
    from django_cronofy_conferencing.models import (
        CalendarProfile,
        ConferencingProfile,
        LinkedAccount,
        PushNotification,
    )

    if LinkedAccount.objects.count() == count and PushNotification.objects.count() == count:
        return
    for model in (PushNotification, CalendarProfile, ConferencingProfile, LinkedAccount):
        model.objects.all().delete()
    now = timezone.now()
    ciphertext = encrypt("a-benchmark-token")  # the same for every row: seeding stays fast
    errors = (
        "Cronofy failed with HTTP 503 on GET /v1/userinfo (us).",
        "Cronofy rate limit reached on GET /v1/userinfo (us).",
        "Invalid UserInfo response: cronofy.data is not an object.",
    )
    statuses = ["active"] * 8 + ["reauthorization_required", "revoked"]
    started = time.monotonic()
    for start in range(0, count, BATCH):
        accounts = LinkedAccount.objects.bulk_create(
            [
                LinkedAccount(
                    data_center="us",
                    sub=f"acc_bench{i}",
                    email=f"person{i}@example.com",
                    status=statuses[i % len(statuses)],
                    access_token=ciphertext,
                    refresh_token=ciphertext,
                    last_synced_at=None
                    if i % 50 == 0
                    else now - timezone.timedelta(minutes=i % 120),
                    consecutive_failures=1 if i % 3 == 0 else 0,
                    last_sync_error=errors[i % 3] if i % 3 == 0 else "",
                    channel_id="" if i % 5 == 0 else f"chn_bench{i}",
                )
                for i in range(start, min(count, start + BATCH))
            ]
        )
        ConferencingProfile.objects.bulk_create(
            [
                ConferencingProfile(
                    account=account,
                    profile_id=f"pro_{kind}{account.pk}",
                    provider_name=kind,
                    profile_name="someone",
                    profile_connected=(account.pk + n) % 7 != 0,
                )
                for account in accounts
                for n, kind in enumerate(("zoom", "ms_teams"))
            ],
            batch_size=1000,
        )
        CalendarProfile.objects.bulk_create(
            [
                CalendarProfile(
                    account=account,
                    profile_id=f"pro_cal{account.pk}",
                    provider_name="google",
                    profile_name="someone",
                    profile_connected=account.pk % 11 != 0,
                )
                for account in accounts
            ],
            batch_size=1000,
        )
    seed_push_notifications()
    print(f"Seeded {count} accounts in {time.monotonic() - started:.1f} s", flush=True)


def seed_push_notifications() -> None:
    """One signed notification per account, a second apart."""
    from django.db import connection
    from django.utils import timezone

    from django_cronofy_conferencing.models import LinkedAccount, PushNotification

    now = timezone.now()
    ids = list(LinkedAccount.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        PushNotification.objects.bulk_create(
            [
                PushNotification(
                    notification_type="change",
                    channel_id=f"chn_bench{pk}",
                    account_id=pk,
                    signature_valid=True,
                    outcome="resynced",
                    received_at=now - timezone.timedelta(seconds=pk),
                )
                for pk in ids[start : start + BATCH]
            ],
            batch_size=1000,
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def timed(function, runs: int) -> tuple[float, float, int]:
    """(best, median) seconds of ``function`` over ``runs``, and its queries (last run)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    queries = 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        queries = len(ctx.captured_queries)
    return min(times), statistics.median(times), queries


def insert_time(rows: int) -> float:
    """Median seconds of one push log INSERT (what the receiver adds) over ``rows`` tries."""
    from django_cronofy_conferencing.models import PushNotification
    from django_cronofy_conferencing.web.push_log import PushRecord, store

    times = []
    for _ in range(rows):
        record = PushRecord(
            body=b'{"notification": {"type": "change"}}',
            body_size=36,
            notification_type="change",
            channel_id="chn_bench_insert",
            signature_valid=True,
            outcome=PushNotification.Outcome.RESYNCED,
        )
        started = time.perf_counter()
        store(record, 200)
        times.append(time.perf_counter() - started)
    PushNotification.objects.filter(channel_id="chn_bench_insert").delete()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/cronofy_status_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    ensure_database(args.database_url)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        BENCH_DATABASE_URL=args.database_url,
        BENCH_REDIS_URL=args.redis_url,
        BENCH_CACHE_PREFIX="cronofy-status-bench",
        BENCH_RATE_LIMITS="50/s,500/m",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from django_cronofy_conferencing.health import fleet_health
    from django_cronofy_conferencing.models import PushNotification

    call_command("migrate", verbosity=0)
    PushNotification.objects.filter(channel_id="chn_bench_insert").delete()
    print(f"Database: {connection.vendor}; load average at start: {load()}", flush=True)
    seed(args.accounts)  # once: a fleet of this size is kept between runs
    best, median, queries = timed(fleet_health, args.runs)
    print(
        f"fleet_health(): {queries} queries, best {best * 1000:.0f} ms, "
        f"median {median * 1000:.0f} ms"
    )

    def command() -> None:
        call_command("cronofy_status", "--json", stdout=io.StringIO())

    best, median, queries = timed(command, args.runs)
    print(
        f"cronofy_status --json: {queries} queries, best {best * 1000:.0f} ms, "
        f"median {median * 1000:.0f} ms"
    )
    # The receiver's one INSERT, on the same table with N rows and with none (the rows
    # are seeded again afterwards).
    large = insert_time(200)
    PushNotification.objects.all().delete()
    small = insert_time(200)
    seed_push_notifications()
    print(f"push log INSERT, {args.accounts} rows: median {large * 1000:.2f} ms")
    print(f"push log INSERT, empty log: median {small * 1000:.2f} ms")
    print(f"load average at end: {load()}")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()

"""The one sync service: UserInfo -> validated payload -> one short transaction.

The HTTP call happens before any lock is taken; the write is a fixed number of
queries whatever the number of profiles, and an unchanged payload writes no
profile rows. Signals go out after the commit, for real changes only.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from django.db import IntegrityError, close_old_connections, connections, router, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import tokens
from .client import CronofyClient, get_client
from .conf import app_settings
from .db import keyset_chunks, write_lock
from .exceptions import AccessTokenRejected, CronofyError
from .models import CalendarProfile, ConferencingProfile, LinkedAccount
from .payloads import UserInfo, parse_userinfo
from .redaction import redact
from .sync_plan import (
    CALENDAR_PROFILE_UPDATE_FIELDS,
    PROFILE_UPDATE_FIELDS,
    Plan,
    SyncResult,
)
from .sync_plan import (
    plan as _plan,
)

__all__ = ["SyncReport", "SyncResult", "apply_userinfo", "sync_account", "sync_accounts"]

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What ``sync_accounts`` did: results by account id, and failures by account id.

    The counts (``synced``, ``changed``, ``unchanged``, ``failed``,
    ``failed_by_reason()``: every sync done, so an account given twice counts
    twice) are always kept; with ``keep_results=False`` the
    per-account ``results`` and ``failures`` are not, so a fleet of any size
    costs a constant amount of memory (``sync_accounts(..., keep_results=False)``).
    """

    results: dict[int, SyncResult] = field(default_factory=dict)
    failures: dict[int, Exception] = field(default_factory=dict)
    keep_results: bool = True
    _synced: int = field(default=0, init=False, repr=False)
    _changed: int = field(default=0, init=False, repr=False)
    _reasons: Counter[str] = field(default_factory=Counter, init=False, repr=False)

    def __post_init__(self) -> None:
        self._synced = len(self.results)
        self._changed = sum(1 for r in self.results.values() if r.changed)
        self._reasons = Counter(type(exc).__name__ for exc in self.failures.values())

    def add(self, account_id: int, result: SyncResult | None, error: Exception | None) -> None:
        """Count one account's outcome (not thread-safe: ``sync_accounts`` locks)."""
        if error is None:
            assert result is not None
            self._synced += 1
            self._changed += bool(result.changed)
            if self.keep_results:
                self.results[account_id] = result
        else:
            self._reasons[type(error).__name__] += 1
            if self.keep_results:
                self.failures[account_id] = error

    @property
    def synced(self) -> int:
        return self._synced

    @property
    def changed(self) -> int:
        return self._changed

    @property
    def unchanged(self) -> int:
        return self._synced - self._changed

    @property
    def failed(self) -> int:
        return sum(self._reasons.values())

    def failed_by_reason(self) -> Counter[str]:
        return Counter(self._reasons)


def sync_account(account: LinkedAccount, *, client: CronofyClient | None = None) -> SyncResult:
    """Fetch the account's UserInfo and store its conferencing profiles.

    On failure the error is recorded on the account (redacted), the profiles are
    left as they were, and the ``CronofyError`` propagates.
    """
    client = client or get_client(account.data_center)
    try:
        info = fetch_userinfo(account, client)
    except CronofyError as exc:
        record_failure(account, exc)
        raise
    try:
        return apply_userinfo(account, info)
    except IntegrityError:
        # A concurrent writer without row locks (SQLite, another process) got
        # there first: re-read and apply again on top of its rows.
        return apply_userinfo(account, info)


@sensitive_variables("token")
def fetch_userinfo(account: LinkedAccount, client: CronofyClient) -> UserInfo:
    token = tokens.ensure_access_token(account, client=client)
    try:
        body = client.userinfo(token)
    except AccessTokenRejected:
        token = tokens.refresh_access_token(account, rejected_token=token, client=client)
        body = client.userinfo(token)
    return parse_userinfo(body, expected_sub=account.sub)


def record_failure(account: LinkedAccount, exc: Exception) -> None:
    message = redact(exc)[:2000]
    using = router.db_for_write(LinkedAccount)
    now = timezone.now()
    with write_lock(using):
        LinkedAccount.objects.using(using).filter(pk=account.pk).update(
            last_sync_error=message,
            consecutive_failures=F("consecutive_failures") + 1,
            updated_at=now,
        )
    account.last_sync_error = message
    account.consecutive_failures = (account.consecutive_failures or 0) + 1
    logger.warning("Cronofy sync of account %s failed: %s", account.pk, message)


# What a sync writes on the account besides its stamps (last_synced_at, ...).
ACCOUNT_DETAIL_FIELDS = ("email", "name", "zoneinfo", "account_type", "scope", "userinfo")


def apply_userinfo(account: LinkedAccount, info: UserInfo) -> SyncResult:
    """Write a validated payload in one transaction with a fixed number of queries."""
    using = router.db_for_write(ConferencingProfile)
    now = timezone.now()
    with write_lock(using), transaction.atomic(using=using):
        # No ORDER BY on either query: nothing depends on the order, and
        # compiling and sorting it is a measurable share of a fleet sync.
        locked = list(
            LinkedAccount.objects.using(using)
            .select_for_update()
            .filter(pk=account.pk)
            .values_list("pk", flat=True)[:1]
        )
        if not locked:
            return SyncResult()  # unlinked while the request was in flight
        existing = {
            p.profile_id: p
            for p in ConferencingProfile.objects.using(using)
            .filter(account_id=account.pk)
            .order_by()
        }
        calendars = {
            p.profile_id: p
            for p in CalendarProfile.objects.using(using).filter(account_id=account.pk).order_by()
        }
        plan = _plan(account, info, existing, now, calendars)
        if plan.to_create:
            ConferencingProfile.objects.using(using).bulk_create(plan.to_create)
        if plan.to_update:
            ConferencingProfile.objects.using(using).bulk_update(
                plan.to_update, PROFILE_UPDATE_FIELDS
            )
        _write_calendar_profiles(using, plan.calendars_to_create, plan.calendars_to_update)
        LinkedAccount.objects.using(using).filter(pk=account.pk).update(**plan.account_fields)
        plan.adopt()
        transaction.on_commit(plan.send, using=using)
    return plan.result


def apply_userinfo_many(items: Sequence[tuple[LinkedAccount, UserInfo]]) -> list[SyncResult]:
    """``apply_userinfo`` for several accounts in one transaction: the same rows, the
    same signals, in a fixed number of queries whatever the number of accounts and
    profiles (what lets ``sync_accounts`` keep up with many threads of HTTP calls).

    The accounts are locked in primary-key order, so concurrent batches never
    deadlock. An account deleted meanwhile gets an empty ``SyncResult``. Each
    account may appear once. Any error rolls back the whole batch.
    """
    if len({account.pk for account, _ in items}) != len(items):
        raise ValueError("apply_userinfo_many: an account appears twice in the batch.")
    using = router.db_for_write(ConferencingProfile)
    now = timezone.now()
    pks = [account.pk for account, _ in items]
    with write_lock(using), transaction.atomic(using=using):
        locked = set(
            LinkedAccount.objects.using(using)
            .select_for_update()
            .filter(pk__in=pks)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        existing: dict[int, dict[str, ConferencingProfile]] = {pk: {} for pk in locked}
        for profile in (
            ConferencingProfile.objects.using(using).filter(account_id__in=locked).order_by()
        ):
            existing[profile.account_id][profile.profile_id] = profile
        calendars: dict[int, dict[str, CalendarProfile]] = {pk: {} for pk in locked}
        for profile in (
            CalendarProfile.objects.using(using).filter(account_id__in=locked).order_by()
        ):
            calendars[profile.account_id][profile.profile_id] = profile
        plans = [
            _plan(account, info, existing[account.pk], now, calendars[account.pk])
            for account, info in items
            if account.pk in locked
        ]
        to_create = [p for plan in plans for p in plan.to_create]
        to_update = [p for plan in plans for p in plan.to_update]
        if to_create:
            ConferencingProfile.objects.using(using).bulk_create(to_create)
        if to_update:
            ConferencingProfile.objects.using(using).bulk_update(to_update, PROFILE_UPDATE_FIELDS)
        _write_calendar_profiles(
            using,
            [p for plan in plans for p in plan.calendars_to_create],
            [p for plan in plans for p in plan.calendars_to_update],
        )
        # Accounts whose details changed (every account on a first sync) share
        # one UPDATE ... FROM (VALUES ...) (``update_accounts``); the others (the
        # usual case) one UPDATE of the sync stamps.
        stamped: list[int] = []
        detailed: list[Plan] = []
        for plan in plans:
            if all(
                getattr(plan.account, name) == plan.account_fields[name]
                for name in ACCOUNT_DETAIL_FIELDS
            ):
                stamped.append(plan.account.pk)
            else:
                detailed.append(plan)
            plan.adopt()
        update_accounts(using, [(plan.account.pk, plan.account_fields) for plan in detailed])
        if stamped:
            LinkedAccount.objects.using(using).filter(pk__in=stamped).update(
                last_synced_at=now, last_sync_error="", consecutive_failures=0, updated_at=now
            )

        def send() -> None:
            for plan in plans:
                plan.send()

        transaction.on_commit(send, using=using)
    results = {plan.account.pk: plan.result for plan in plans}
    return [results.get(account.pk, SyncResult()) for account, _ in items]


def _write_calendar_profiles(
    using: str, to_create: list[CalendarProfile], to_update: list[CalendarProfile]
) -> None:
    """Bulk writes beside the conferencing ones (Django batches them under SQLite's
    999-parameter limit; the batch size bounds the rows, the calendars ride in JSON)."""
    if to_create:
        CalendarProfile.objects.using(using).bulk_create(to_create, batch_size=CALENDAR_BATCH)
    if to_update:
        CalendarProfile.objects.using(using).bulk_update(
            to_update, CALENDAR_PROFILE_UPDATE_FIELDS, batch_size=CALENDAR_BATCH
        )


# Calendar profile rows per bulk statement: 12 columns x 80 rows stays under 999
# parameters, and 80 rows of calendars JSON keep each statement a reasonable size.
CALENDAR_BATCH = 80


def update_accounts(using: str, rows: Sequence[tuple[int, dict[str, object]]]) -> None:
    """Write each account's ``fields`` (the same names in every row) in one statement
    per ``max_query_params`` worth of rows: ``UPDATE ... FROM (VALUES ...)`` on
    PostgreSQL and SQLite (3.33+). Not ``bulk_update``: its CASE WHEN per field
    and row cost more to compile than the rest of a batch's writes together.
    """
    if not rows:
        return
    connection = connections[using]
    opts = LinkedAccount._meta
    names = list(rows[0][1])
    fields = [opts.get_field(name) for name in names]
    qn = connection.ops.quote_name
    postgres = connection.vendor == "postgresql"

    def column(i: int, field) -> str:
        value = f"v.column{i + 2}"
        return f"CAST({value} AS {field.db_type(connection)})" if postgres else value

    assignments = ", ".join(
        f"{qn(field.column)} = {column(i, field)}" for i, field in enumerate(fields)
    )
    table, pk = qn(opts.db_table), qn(opts.pk.column)
    width = len(fields) + 1
    limit = connection.features.max_query_params or 999
    per_statement = max(1, min(len(rows), limit // width))
    placeholder = "(" + ", ".join(["%s"] * width) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[object] = []
            for pk_value, values in chunk:
                params.append(pk_value)
                params.extend(
                    field.get_db_prep_save(values[name], connection)
                    for name, field in zip(names, fields, strict=True)
                )
            values_sql = ", ".join([placeholder] * len(chunk))
            id_column = "CAST(v.column1 AS bigint)" if postgres else "v.column1"
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES {values_sql}) AS v "  # noqa: S608
                f"WHERE {table}.{pk} = {id_column}",
                params,
            )


ProgressCallback = Callable[[LinkedAccount, SyncResult | None, Exception | None], None]

# sync_accounts writes what its threads fetched in batches: this many accounts,
# or fewer when no more arrived for this long.
WRITE_BATCH_SIZE = 50
WRITE_BATCH_WAIT = 0.5


def sync_accounts(
    accounts: Iterable[LinkedAccount],
    *,
    concurrency: int | None = None,
    progress: ProgressCallback | None = None,
    keep_results: bool = True,
) -> SyncReport:
    """Sync many accounts; one failure never stops the others.

    With ``concurrency`` > 1 that many threads make the HTTP calls (and any
    token refresh), fed from a bounded queue so memory stays flat however many
    accounts are streamed in (a queryset is read with ``stream_accounts``; pass
    ``keep_results=False`` to keep only the counts). One more thread writes
    what they fetched, up to ``WRITE_BATCH_SIZE`` accounts per transaction
    (``apply_userinfo_many``): the same rows and signals as ``sync_account``
    for each, in a fraction of the queries, so the database and the
    interpreter keep up with the network. A batch that fails is written again
    account by account. Not ``queryset.iterator()`` on SQLite: its open cursor
    keeps the writers from committing. ``progress`` is called from the worker
    threads after each account.
    """
    concurrency = max(1, int(concurrency or app_settings.SYNC_CONCURRENCY))
    report = SyncReport(keep_results=keep_results)
    if isinstance(accounts, QuerySet) and not accounts.query.is_sliced:
        accounts = stream_accounts(accounts)
    report_lock = threading.Lock()

    def finish(account: LinkedAccount, result: SyncResult | None, error: Exception | None):
        if error is not None and not isinstance(error, CronofyError):
            logger.error("Unexpected error syncing Cronofy account %s", account.pk, exc_info=error)
        with report_lock:
            report.add(account.pk, result, error)
        if progress is not None:
            try:
                progress(account, result, error)
            except Exception:  # a broken callback must not stop (or hang) the sync
                logger.exception("The sync_accounts progress callback failed")

    if concurrency == 1:
        for account in accounts:
            try:
                result = sync_account(account)
            except Exception as exc:
                finish(account, None, exc)
            else:
                finish(account, result, None)
        return report

    work: queue.Queue[LinkedAccount | None] = queue.Queue(maxsize=concurrency * 2)
    fetched: queue.Queue[tuple[LinkedAccount, UserInfo] | None] = queue.Queue(
        maxsize=concurrency * 2 + WRITE_BATCH_SIZE
    )

    def fetcher() -> None:
        try:
            while (account := work.get()) is not None:
                try:
                    try:
                        info = fetch_userinfo(account, get_client(account.data_center))
                    except CronofyError as exc:
                        record_failure(account, exc)
                        raise
                except Exception as exc:
                    finish(account, None, exc)
                else:
                    fetched.put((account, info))
        finally:
            connections.close_all()

    def write(batch: list[tuple[LinkedAccount, UserInfo]]) -> None:
        try:
            results = apply_userinfo_many(batch)
        except Exception:
            logger.info(
                "A batch of %s accounts failed; writing one by one", len(batch), exc_info=True
            )
        else:
            for (account, _), result in zip(batch, results, strict=True):
                finish(account, result, None)
            return
        for account, info in batch:
            try:
                try:
                    result = apply_userinfo(account, info)
                except IntegrityError:
                    result = apply_userinfo(account, info)
            except Exception as exc:
                finish(account, None, exc)
            else:
                finish(account, result, None)

    def writer() -> None:
        try:
            last = False
            while not last and (item := fetched.get()) is not None:
                batch, pks = [item], {item[0].pk}
                deadline = time.monotonic() + WRITE_BATCH_WAIT
                while len(batch) < WRITE_BATCH_SIZE:
                    try:
                        item = fetched.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if item is None:
                        last = True
                        break
                    if item[0].pk in pks:  # the same account twice: in the next batch
                        write(batch)
                        batch, pks = [], set()
                    batch.append(item)
                    pks.add(item[0].pk)
                write(batch)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=fetcher, name=f"cronofy-sync-{i}", daemon=True)
        for i in range(concurrency)
    ]
    writer_thread = threading.Thread(target=writer, name="cronofy-sync-writer", daemon=True)
    for thread in [*threads, writer_thread]:
        thread.start()
    try:
        for account in accounts:
            work.put(account)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
        fetched.put(None)
        writer_thread.join()
        close_old_connections()
    return report


def stream_accounts(
    queryset: QuerySet[LinkedAccount], *, chunk_size: int = 500
) -> Iterator[LinkedAccount]:
    """Yield the queryset's accounts in primary-key order, ``chunk_size`` at a time
    (``db.keyset_chunks``: no query stays open while the accounts are synced)."""
    for chunk in keyset_chunks(queryset, chunk_size):
        yield from chunk

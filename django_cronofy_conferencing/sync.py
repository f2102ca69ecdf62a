"""The one sync service: UserInfo -> validated payload -> one short transaction.

The HTTP call happens before any lock is taken; the write (``sync_writes``) is
a fixed number of queries whatever the number of profiles, and an unchanged
payload writes no profile rows. Signals go out after the commit, for real
changes only. ``sync_accounts`` runs many: threads for the HTTP calls, one
writer for batches.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from django.db import IntegrityError, close_old_connections, connections, router
from django.db.models import F, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import tokens
from .client import CronofyClient, get_client
from .conf import app_settings
from .db import keyset_chunks, write_lock
from .exceptions import AccessTokenRejected, CronofyError
from .fleet import EventLoopFetch, event_loop_unavailable
from .models import LinkedAccount
from .payloads import UserInfo, parse_userinfo
from .redaction import redact
from .sync_batches import WRITE_BATCH_SIZE, WRITE_BATCH_WAIT, BatchWriter
from .sync_plan import SyncResult
from .sync_writes import apply_userinfo, apply_userinfo_many

__all__ = [
    "WRITE_BATCH_SIZE",
    "WRITE_BATCH_WAIT",
    "SyncReport",
    "SyncResult",
    "apply_userinfo",
    "apply_userinfo_many",
    "sync_account",
    "sync_accounts",
]

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


ProgressCallback = Callable[[LinkedAccount, SyncResult | None, Exception | None], None]


def sync_accounts(
    accounts: Iterable[LinkedAccount],
    *,
    concurrency: int | None = None,
    progress: ProgressCallback | None = None,
    keep_results: bool = True,
) -> SyncReport:
    """Sync many accounts; one failure never stops the others.

    With ``concurrency`` > 1 that many UserInfo calls are in flight at once:
    on one event loop with aiohttp where it can (``fleet``: the ``fleet`` extra,
    ``FLEET_HTTP``), else in that many threads on requests; token refreshes
    and recorded failures happen either way on threads. Memory stays flat
    however many accounts are streamed in (a queryset is read with
    ``stream_accounts``; pass ``keep_results=False`` to keep only the counts).
    One more thread writes what was fetched (``sync_batches.BatchWriter``), up
    to ``WRITE_BATCH_SIZE`` accounts per transaction (``apply_userinfo_many``):
    the same rows and signals as ``sync_account`` for each, in a fraction of
    the queries. A batch that fails is written again account by account. Not
    ``queryset.iterator()`` on SQLite: its open cursor keeps the writer from
    committing. ``progress`` is called from those threads after each account.
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

    def failed(account: LinkedAccount, exc: Exception) -> None:
        try:
            if isinstance(exc, CronofyError):
                record_failure(account, exc)
        except Exception as recording_failed:
            exc = recording_failed
        finish(account, None, exc)

    unavailable = event_loop_unavailable()
    logger.info(
        "Syncing Cronofy accounts at concurrency %s %s",
        concurrency,
        "on an event loop (aiohttp)" if unavailable is None else f"in threads ({unavailable})",
    )
    with BatchWriter(finish, max_backlog=concurrency * 2 + WRITE_BATCH_SIZE) as writer:
        if unavailable is None:
            EventLoopFetch(accounts, concurrency=concurrency, writer=writer, fail=failed).run()
        else:
            fetch_in_threads(accounts, concurrency, writer, failed)
    close_old_connections()
    return report


def fetch_in_threads(
    accounts: Iterable[LinkedAccount],
    concurrency: int,
    writer: BatchWriter,
    failed: Callable[[LinkedAccount, Exception], None],
) -> None:
    """The fetch stage in ``concurrency`` threads, fed through a bounded queue."""
    work: queue.Queue[LinkedAccount | None] = queue.Queue(maxsize=concurrency * 2)

    def fetcher() -> None:
        try:
            while (account := work.get()) is not None:
                try:
                    info = fetch_userinfo(account, get_client(account.data_center))
                except Exception as exc:
                    failed(account, exc)
                else:
                    writer.put_when_room([(account, info)])
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=fetcher, name=f"cronofy-sync-{i}", daemon=True)
        for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    try:
        for account in accounts:
            work.put(account)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()


def stream_accounts(
    queryset: QuerySet[LinkedAccount], *, chunk_size: int = 500
) -> Iterator[LinkedAccount]:
    """Yield the queryset's accounts in primary-key order, ``chunk_size`` at a time
    (``db.keyset_chunks``: no query stays open while the accounts are synced)."""
    for chunk in keyset_chunks(queryset, chunk_size):
        yield from chunk

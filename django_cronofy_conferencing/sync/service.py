"""The one sync service: UserInfo -> validated payload -> one short transaction.

The HTTP call happens before any lock is taken; the write (``writes``) is
a fixed number of queries whatever the number of profiles, and an unchanged
payload writes no profile rows. Signals go out after the commit, for real
changes only. ``sync_accounts`` runs many: threads for the HTTP calls, the
reads and writes on the caller's thread (``FleetSync``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    router,
)
from django.db.models import F, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..accounts import tokens
from ..conf import app_settings
from ..cronofy import telemetry
from ..cronofy.client import CronofyClient, get_client
from ..cronofy.ratelimit import Lane
from ..cronofy.redaction import redact
from ..cronofy.userinfo import UserInfo, parse_userinfo
from ..db import write_lock
from ..exceptions import (
    AccessTokenRejected,
    CronofyError,
    DatabaseConnectionLost,
    NothingDue,
    SyncStopped,
)
from ..models import LinkedAccount
from .confirmation import renew_confirmation
from .order import AccountStream, SweepStream
from .plan import SyncResult
from .writes import apply_userinfo, apply_userinfo_many

__all__ = [
    "WRITE_BATCH_SIZE",
    "WRITE_BATCH_WAIT",
    "SyncReport",
    "SyncResult",
    "stream_accounts",
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
    #: Times the database connection dropped and was reopened, the sync carrying on.
    reconnects: int = field(default=0, init=False)
    _synced: int = field(default=0, init=False, repr=False)
    _changed: int = field(default=0, init=False, repr=False)
    #: Accounts skipped because something else synced them after they were selected.
    skipped: int = field(default=0, init=False)
    _reasons: Counter[str] = field(default_factory=Counter, init=False, repr=False)

    def __post_init__(self) -> None:
        self._synced = len(self.results)
        self._changed = sum(1 for r in self.results.values() if r.changed)
        self._reasons = Counter(type(exc).__name__ for exc in self.failures.values())

    def add(self, account_id: int, result: SyncResult | None, error: Exception | None) -> None:
        """Count one account's outcome (not thread-safe: ``sync_accounts`` locks);
        neither ``result`` nor ``error``: skipped (synced meanwhile by something else)."""
        if error is None and result is None:
            self.skipped += 1
        elif error is None:
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


def sync_account(
    account: LinkedAccount,
    *,
    client: CronofyClient | None = None,
    lane: Lane | str = Lane.USER,
) -> SyncResult:
    """Fetch the account's UserInfo and store its conferencing profiles.

    A user's call unless the caller says otherwise: ``lane`` (or the ``client``'s)
    is the part of the application's rate limit it uses (``ratelimit.Lane``).
    On failure the error is recorded on the account (redacted), the profiles are
    left as they were, and the ``CronofyError`` propagates.
    """
    client = client or get_client(account.data_center, lane)
    with telemetry.span(telemetry.SPAN_SYNC_ACCOUNT, _span_attributes(account)) as span:
        try:
            info = fetch_userinfo(account, client, sweep=client.lane is Lane.BACKGROUND)
        except CronofyError as exc:
            record_failure(account, exc)
            _sync_outcome(span, None, exc)
            raise
        try:
            result = apply_userinfo(account, info)
        except IntegrityError:
            # A concurrent writer without row locks (SQLite, another process) got
            # there first: re-read and apply again on top of its rows.
            result = apply_userinfo(account, info)
        _sync_outcome(span, result, None)
        return result


def _span_attributes(account: LinkedAccount) -> dict[str, Any]:
    """An account's span attributes: its id and data center, nothing personal."""
    return {"cronofy.account.id": account.pk, "cronofy.data_center": account.data_center}


def _sync_outcome(span: Any, result: SyncResult | None, error: Exception | None) -> None:
    """Record one account's sync outcome on its span and in the syncs metric."""
    if error is not None:
        outcome = "failed"
        telemetry.mark_error(span, type(error).__name__)
    else:
        outcome = "changed" if result is not None and result.changed else "unchanged"
    span.set_attribute("cronofy.sync.outcome", outcome)
    telemetry.record_sync(outcome, error)


@sensitive_variables("token")
def fetch_userinfo(
    account: LinkedAccount,
    client: CronofyClient,
    run_query: QueryRunner | None = None,
    *,
    sweep: bool = False,
) -> UserInfo:
    """The account's validated UserInfo; a token refresh (queries) goes through
    ``run_query`` (``sync_accounts`` may run it on the calling thread). In a ``sweep``
    (the background lane), ``NothingDue`` instead of a refresh when something synced the
    account meanwhile, and its push-channel confirmation renewed with the same token
    when due (``confirmation``)."""
    run_query = run_query or _call
    token = tokens.stored_access_token(account)
    if token is None:
        token = run_query(
            tokens.refresh_access_token,
            account,
            client=client,
            **({"unless_synced_since": account.last_synced_at} if sweep else {}),
        )
    try:
        body = client.userinfo(token)
    except AccessTokenRejected:
        token = run_query(tokens.refresh_access_token, account, rejected_token=token, client=client)
        body = client.userinfo(token)
    info = parse_userinfo(body, expected_sub=account.sub)
    if sweep:
        renew_confirmation(account, client, token, run_query)
    return info


def record_failure(account: LinkedAccount, exc: Exception) -> None:
    """Write the failure on the account (redacted), once: a refresh may have already."""
    if getattr(exc, "recorded_on_account", False):
        return
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
QueryRunner = Callable[..., Any]

#: Accounts written per transaction by ``sync_accounts``, at most.
WRITE_BATCH_SIZE = 50
#: Seconds a fetched account waits for others to share its write, at most.
WRITE_BATCH_WAIT = 0.5


def sync_accounts(
    accounts: Iterable[LinkedAccount],
    *,
    concurrency: int | None = None,
    progress: ProgressCallback | None = None,
    keep_results: bool = True,
) -> SyncReport:
    """Sync many accounts; one failure never stops the others.

    Fleet work: its calls use the background lane of each application's rate
    limit (``FLEET_BUDGET_SHARE``; users' calls go first), a queryset is read in
    the sweep's order (``order``), an account something else synced since it was
    read is skipped without a token refresh (``SyncReport.skipped``), and a push
    channel's confirmation is renewed with the token just used (``confirmation``).
    ``concurrency`` UserInfo calls are in flight at once, in that many
    threads. Every query runs on the calling thread, on its connection: the
    accounts are read there (a queryset is streamed in primary-key chunks, so
    memory stays flat; pass ``keep_results=False`` to keep only the counts),
    and what was fetched is written there in batches of up to
    ``WRITE_BATCH_SIZE`` accounts (``apply_userinfo_many``: the same rows and
    signals as ``sync_account`` for each; a batch that fails is written again
    account by account). So the sync sees the rows its caller wrote and
    writes inside the caller's transaction, if there is one, for the caller
    to commit or roll back. Token refreshes (a query, an HTTP call, a write)
    run in the fetching threads on connections of their own, and on the
    calling thread when it holds a transaction (``queries_run_on_caller``).
    ``progress`` is called on the calling thread after each account.
    """
    concurrency = max(1, int(concurrency or app_settings.SYNC_CONCURRENCY))
    report = SyncReport(keep_results=keep_results)
    if isinstance(accounts, QuerySet) and not accounts.query.is_sliced:
        accounts = stream_in_sweep_order(accounts)

    def finish(account: LinkedAccount, result: SyncResult | None, error: Exception | None):
        if error is not None and not isinstance(error, CronofyError):
            logger.error("Unexpected error syncing Cronofy account %s", account.pk, exc_info=error)
        report.add(account.pk, result, error)
        if error is not None:
            telemetry.record_sync("failed", error)
        else:
            telemetry.record_sync(
                "changed" if result is not None and result.changed else "unchanged"
            )
        if progress is not None:
            try:
                progress(account, result, error)
            except Exception:  # a broken callback must not stop the sync
                logger.exception("The sync_accounts progress callback failed")

    using = router.db_for_write(LinkedAccount)
    logger.info("Syncing Cronofy accounts in %s threads", concurrency)
    fleet = FleetSync(concurrency, finish, on_caller=queries_run_on_caller(using), using=using)
    with telemetry.span(telemetry.SPAN_SYNC_ACCOUNTS, {"cronofy.concurrency": concurrency}) as span:
        try:
            fleet.run(iter(accounts))
        except DatabaseConnectionLost as exc:
            exc.report = report
            raise
        finally:
            report.reconnects = fleet.reconnects
            span.set_attributes(
                {
                    "cronofy.accounts.synced": report.synced,
                    "cronofy.accounts.changed": report.changed,
                    "cronofy.accounts.failed": report.failed,
                }
            )
    return report


def queries_run_on_caller(using: str) -> bool:
    """Whether the fetching threads must leave every query to the calling thread.

    When the caller holds a transaction, only its connection sees the rows
    it wrote and may take the row locks a refresh needs inside it; a thread
    of its own would wait on those locks, or see nothing. In-memory SQLite
    is one database shared through SQLite's shared cache, whose table locks
    fail at once instead of waiting: one thread queries it.
    """
    connection = connections[using]
    return connection.in_atomic_block or (
        connection.vendor == "sqlite" and connection.is_in_memory_db()
    )


class FleetSync:
    """The fetching threads and the calling thread's loop behind ``sync_accounts``.

    The calling thread hands accounts to the threads (never more than
    ``2 * concurrency + WRITE_BATCH_SIZE`` unwritten at once), then waits on
    one queue of events: an account fetched, an account failed, or a query
    a thread asks it to run (``on_caller``).
    """

    def __init__(
        self,
        concurrency: int,
        finish: ProgressCallback,
        *,
        on_caller: bool,
        using: str | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.trace_context: Any = None  # OpenTelemetry's, set by ``run``
        self.finish = finish
        self.on_caller = on_caller
        self.using = using or router.db_for_write(LinkedAccount)
        self.max_unwritten = 2 * concurrency + WRITE_BATCH_SIZE
        self.work: queue.SimpleQueue[LinkedAccount | None] = queue.SimpleQueue()
        self.events: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        #: Times the calling thread's connection dropped and was reopened.
        self.reconnects = 0

    # -- a dropped connection -------------------------------------------------------

    def dropped(self, exc: BaseException, before: Any) -> bool:
        """Whether ``exc`` is the calling thread's connection dropping (a restarted
        server, a killed backend) under an operation that started on the DB-API
        connection ``before``. Django may have opened a new one already (leaving an
        ``atomic`` block does); telling by the error alone would need each driver's.

        Inside the caller's transaction a new connection cannot carry on what the old
        one held: ``DatabaseConnectionLost``, saying so.
        """
        if not isinstance(exc, OperationalError | InterfaceError):
            return False
        connection = connections[self.using]
        current = connection.connection
        replaced = before is not None and current is not None and current is not before
        if not replaced and connection.is_usable():
            return False  # an error of that statement (a lock timeout...), not the link
        if connection.in_atomic_block:
            raise DatabaseConnectionLost(
                "The database connection of sync_accounts dropped inside the caller's "
                "transaction, which a new connection cannot continue: the sync stopped. "
                f"({type(exc).__name__}: {str(exc).strip()[:200]})"
            ) from exc
        return True

    def close_dead_connection(self) -> None:
        """Close the calling thread's connection if it is dead: the next query opens one."""
        connection = connections[self.using]
        if not connection.is_usable():
            with contextlib.suppress(DatabaseError):  # a dead link may fail to close
                connection.close()

    def reopen_if_dropped(self, exc: BaseException, before: Any) -> bool:
        """``dropped``, and then the next query runs on a new connection: counted, logged."""
        if not self.dropped(exc, before):
            return False
        self.close_dead_connection()
        self.reconnects += 1
        logger.warning(
            "The database connection of sync_accounts dropped (%s); reopened, carrying on.",
            type(exc).__name__,
        )
        return True

    def on_caller_db(self, call: Callable[[], Any]) -> Any:
        """Run a query of the calling thread's loop; if the connection dropped, reopen it
        and run it once more (safe: the failed transaction left nothing). A second drop
        in a row means the database is gone: ``DatabaseConnectionLost``."""
        before = connections[self.using].connection
        try:
            return call()
        except DatabaseConnectionLost:
            raise
        except Exception as exc:
            if not self.reopen_if_dropped(exc, before):
                raise
        before = connections[self.using].connection
        try:
            return call()
        except DatabaseConnectionLost:
            raise
        except Exception as exc:
            if not self.dropped(exc, before):
                raise
            self.close_dead_connection()
            raise DatabaseConnectionLost(
                "The database connection of sync_accounts dropped again right after it was "
                f"reopened: the sync stopped. ({type(exc).__name__}: {str(exc).strip()[:200]})"
            ) from exc

    def run(self, accounts: Iterator[LinkedAccount]) -> None:
        # The fetching threads' spans are children of the caller's (the sweep's).
        self.trace_context = telemetry.current_context()
        threads = [
            threading.Thread(target=self._fetch, name=f"cronofy-sync-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            self._loop(accounts)
        finally:
            for _ in threads:
                self.work.put(None)
            # Threads may be waiting on a query of theirs: answer until all have stopped.
            while any(thread.is_alive() for thread in threads):
                try:
                    event = self.events.get(timeout=0.05)
                except queue.Empty:
                    continue
                if event[0] == "query":
                    event[2].set_exception(SyncStopped("sync_accounts stopped"))

    def _loop(self, accounts: Iterator[LinkedAccount]) -> None:
        unwritten = 0
        exhausted = False
        batch: list[tuple[LinkedAccount, UserInfo]] = []
        batch_deadline = 0.0
        while True:
            while not exhausted and unwritten < self.max_unwritten:
                if isinstance(accounts, AccountStream):  # can read its chunk again
                    account = self.on_caller_db(lambda: next(accounts, None))
                else:
                    account = next(accounts, None)
                if account is None:
                    exhausted = True
                else:
                    self.work.put(account)
                    unwritten += 1
            if exhausted and unwritten == 0:
                return
            if batch and (len(batch) == unwritten or time.monotonic() >= batch_deadline):
                unwritten -= self._write(batch)
                batch = []
                continue
            timeout = max(0.0, batch_deadline - time.monotonic()) if batch else None
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                continue
            kind = event[0]
            if kind == "query":
                _, call, future = event
                before = connections[self.using].connection
                try:
                    future.set_result(call())
                except BaseException as exc:
                    # Not run again (a refresh calls Cronofy): that account fails; the
                    # connection is reopened for the others.
                    future.set_exception(exc)
                    self.reopen_if_dropped(exc, before)
            elif kind == "failed":
                _, account, exc = event
                self._failed(account, exc)
                unwritten -= 1
            elif kind == "skipped":
                self.finish(event[1], None, None)
                unwritten -= 1
            else:
                _, account, info = event
                if any(done.pk == account.pk for done, _ in batch):
                    unwritten -= self._write(batch)  # the same account twice: apart
                    batch = []
                if not batch:
                    batch_deadline = time.monotonic() + WRITE_BATCH_WAIT
                batch.append((account, info))
                if len(batch) >= WRITE_BATCH_SIZE:
                    unwritten -= self._write(batch)
                    batch = []

    def _fetch(self) -> None:
        """One fetching thread: UserInfo calls, and queries on its own connection unless
        they belong to the caller (``on_caller``)."""
        run_query: QueryRunner = self._query_on_caller if self.on_caller else _call
        try:
            while (account := self.work.get()) is not None:
                client = get_client(account.data_center, Lane.BACKGROUND)
                with telemetry.span(
                    telemetry.SPAN_SYNC_ACCOUNT,
                    _span_attributes(account),
                    context=self.trace_context,
                ) as span:
                    try:
                        info = fetch_userinfo(account, client, run_query, sweep=True)
                    except NothingDue:
                        self.events.put(("skipped", account, None))
                    except Exception as exc:
                        telemetry.mark_error(span, type(exc).__name__)
                        if not self.on_caller and isinstance(
                            exc, OperationalError | InterfaceError
                        ):
                            # This thread's own connection (a refresh's queries): a dropped
                            # one is closed, so the next account's refresh opens a new one.
                            connections[self.using].close_if_unusable_or_obsolete()
                        self.events.put(("failed", account, exc))
                    else:
                        self.events.put(("fetched", account, info))
        finally:
            if not self.on_caller:
                connections.close_all()  # this thread's own connections, never the caller's

    @sensitive_variables("args", "kwargs")
    def _query_on_caller(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        future: Future = Future()
        self.events.put(("query", _Query(function, *args, **kwargs), future))
        return future.result()

    def _failed(self, account: LinkedAccount, exc: Exception) -> None:
        try:
            if isinstance(exc, CronofyError):
                self.on_caller_db(lambda: record_failure(account, exc))
        except DatabaseConnectionLost:
            raise
        except Exception as recording_failed:
            exc = recording_failed
        self.finish(account, None, exc)

    def _write(self, batch: list[tuple[LinkedAccount, UserInfo]]) -> int:
        """Write a batch (or, when that fails, each account on its own); returns its size."""
        try:
            results = self.on_caller_db(lambda: apply_userinfo_many(batch))
        except DatabaseConnectionLost:
            raise
        except Exception:
            logger.info(
                "A batch of %s accounts failed; writing one by one", len(batch), exc_info=True
            )
        else:
            for (account, _), result in zip(batch, results, strict=True):
                self.finish(account, result, None)
            return len(batch)
        for account, info in batch:
            try:
                try:
                    result = self.on_caller_db(lambda a=account, i=info: apply_userinfo(a, i))
                except IntegrityError:
                    result = self.on_caller_db(lambda a=account, i=info: apply_userinfo(a, i))
            except DatabaseConnectionLost:
                raise
            except Exception as exc:
                self.finish(account, None, exc)
            else:
                self.finish(account, result, None)
        return len(batch)


@sensitive_variables("args", "kwargs")  # a refresh's rejected_token
def _call(function: Callable, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


class _Query(functools.partial):
    """A query handed to the calling thread. Its arguments (a refresh's
    ``rejected_token``) never show in a repr, so not in an error report's frames."""

    def __repr__(self) -> str:
        return f"<query {getattr(self.func, '__name__', '')}>"


def stream_accounts(
    queryset: QuerySet[LinkedAccount], *, chunk_size: int = 500
) -> Iterator[LinkedAccount]:
    """The queryset's accounts in primary-key order, ``chunk_size`` at a time
    (``order.AccountStream``: no query stays open while the accounts are synced, and
    ``sync_accounts`` reads a chunk again after reopening a dropped connection)."""
    return AccountStream(queryset, chunk_size)


def stream_in_sweep_order(
    queryset: QuerySet[LinkedAccount], *, chunk_size: int = 500
) -> Iterator[LinkedAccount]:
    """The queryset's accounts in the sweep's order (``order.SweepStream``: failing,
    disconnected and never synced first, then the longest unsynced), ``chunk_size``
    at a time, resumable like ``stream_accounts``."""
    return SweepStream(queryset, chunk_size)

"""The fetch stage of ``sync_accounts`` on one event loop (aiohttp: ``fleet_http``).

``sync_accounts`` fetches many accounts' UserInfo at once and writes what came
back in batches. In threads (``sync``), most of the CPU goes to waking them; here
one event loop keeps ``concurrency`` requests in flight instead, with the same
results, rows, signals and errors. Django forbids queries on an event loop, so
everything that may touch the database runs on worker threads (``Workers``):
reading the accounts, token refreshes (which also speak ``requests``) and
recording failures. Used when it can be (``event_loop_unavailable``): aiohttp
installed, ``FLEET_HTTP`` not ``"requests"``, no test double patched into
``requests`` (``transport.requests_patched``), no proxy in the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from functools import partial
from importlib.util import find_spec
from itertools import islice
from typing import TYPE_CHECKING, Any

from django.core.checks import Error, register
from django.db import connections

from . import tokens
from .client import CronofyClient, get_client
from .conf import SETTINGS_NAME, app_settings
from .exceptions import AccessTokenRejected
from .models import LinkedAccount
from .payloads import UserInfo, parse_userinfo
from .transport import requests_patched

if TYPE_CHECKING:
    from . import fleet_http
    from .sync_batches import BatchWriter

logger = logging.getLogger(__name__)

FLEET_HTTP_CHOICES = ("auto", "aiohttp", "requests")


@register("cronofy_conferencing")
def check_fleet_http(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E016: ``FLEET_HTTP`` is a known value, and "aiohttp" has aiohttp installed."""
    choice = app_settings.FLEET_HTTP
    key = f"{SETTINGS_NAME}['FLEET_HTTP']"
    if choice not in FLEET_HTTP_CHOICES:
        return [
            Error(
                f"{key} is {choice!r}, which is not a way the app knows.",
                hint="Use 'auto' (the default), 'aiohttp' or 'requests'.",
                id="cronofy_conferencing.E016",
            )
        ]
    if choice == "aiohttp" and find_spec("aiohttp") is None:
        return [
            Error(
                f"{key} is 'aiohttp', but aiohttp is not installed.",
                hint='pip install "django-cronofy-conferencing[fleet]", or set '
                f"{key} to 'auto' or 'requests'.",
                id="cronofy_conferencing.E016",
            )
        ]
    return []


def event_loop_unavailable() -> str | None:
    """Why ``sync_accounts`` cannot fetch on the event loop now, or None when it can."""
    choice = app_settings.FLEET_HTTP
    if choice == "requests":
        return f"{SETTINGS_NAME}['FLEET_HTTP'] is 'requests'"
    if find_spec("aiohttp") is None:
        return "aiohttp is not installed (the 'fleet' extra)"
    if requests_patched() or _client_patched():
        reason = "a test double is patched into requests or the client"
    elif any(scheme != "no" for scheme in urllib.request.getproxies()):
        reason = "the environment names a proxy (requests handles proxies)"
    else:
        return None
    if choice == "aiohttp":
        logger.warning("FLEET_HTTP is 'aiohttp', but the sync runs in threads: %s.", reason)
    return reason


def _client_patched() -> bool:
    """Whether a test replaced ``CronofyClient.userinfo`` or ``sync.fetch_userinfo``,
    which the event loop would go around."""
    sync = sys.modules.get(f"{__package__}.sync")
    fetch = getattr(sync, "fetch_userinfo", None)
    return getattr(CronofyClient.userinfo, "__module__", None) != f"{__package__}.client" or (
        fetch is not None and getattr(fetch, "__module__", None) != f"{__package__}.sync"
    )


class Workers(Executor):
    """Threads for the blocking part of an event-loop fetch: started as needed, up to
    ``size``; each closes its database connections when it ends (``shutdown``)."""

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job
        self._queued = 0  # jobs no thread has taken yet
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        with self._lock:
            self._queued += 1
            start = self._queued > self._idle and len(self._threads) < self.size
            if start:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
        self._jobs.put((future, fn, args, kwargs))
        if start:
            thread.start()
        return future

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    self._idle += 1
                job = self._jobs.get()
                with self._lock:
                    self._idle -= 1
                    if job is not None:
                        self._queued -= 1
                if job is None:
                    return
                future, fn, args, kwargs = job
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args, **kwargs))
                    except BaseException as exc:
                        future.set_exception(exc)
        finally:
            connections.close_all()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                thread.join()


def _take(iterator: Iterator[LinkedAccount], count: int) -> list[LinkedAccount]:
    """The next accounts, their access tokens decrypted (on a worker, in one go: Fernet
    between two requests cost several times what it costs in a row)."""
    accounts = list(islice(iterator, count))
    for account in accounts:
        if account.status == LinkedAccount.Status.ACTIVE:
            # Kept on the instance; a token that fails is raised again where it is used.
            with contextlib.suppress(Exception):
                account.access_token  # noqa: B018
    return accounts


class EventLoopFetch:
    """Fetch every account's UserInfo on one event loop, for ``writer``.

    What was fetched goes to the writer a few accounts at a time (``deliver``:
    one wake-up of its thread per handful); ``fail(account, exc)`` runs on a
    worker thread (it may write). Past the writer's ``max_backlog`` no more
    requests start, so memory stays flat however many accounts are streamed.
    """

    #: Accounts handed to the writer together, or whatever has come after ``flush_after`` s.
    flush_size = 16
    flush_after = 0.05

    def __init__(
        self,
        accounts: Iterable[LinkedAccount],
        *,
        concurrency: int,
        writer: BatchWriter,
        fail: Callable[[LinkedAccount, Exception], None],
    ) -> None:
        self.accounts = accounts
        self.concurrency = concurrency
        self.writer, self.fail = writer, fail
        # Admitted and not yet delivered or failed: up to two rounds of requests.
        self.window = concurrency * 2
        self.workers = Workers(concurrency, "cronofy-sync-worker")
        # The accounts are read on one thread: the iterator may be bound to it.
        self.reader = Workers(1, "cronofy-sync-reader")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main_task: asyncio.Task | None = None
        self._stopped = False
        self._fetchers: dict[str, fleet_http.AsyncUserInfo] = {}
        self._delivered: list[tuple[LinkedAccount, UserInfo]] = []

    def run(self) -> None:
        """Fetch them all (on a thread of its own, which the loop keeps free of queries).

        Interrupted (Ctrl-C, a task's time limit), it stops the loop before it
        returns: no request is started after, and every thread is ended.
        """
        failure: list[BaseException] = []

        def main() -> None:
            try:
                asyncio.run(self._main())
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=main, name="cronofy-sync-loop", daemon=True)
        try:
            thread.start()
            thread.join()
        except BaseException:
            self._stop()
            thread.join()
            raise
        finally:
            self.reader.shutdown()
            self.workers.shutdown()
        if failure and not isinstance(failure[0], asyncio.CancelledError):
            raise failure[0]

    def _stop(self) -> None:
        self._stopped = True
        loop, task = self._loop, self._main_task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(task.cancel)

    async def _main(self) -> None:
        from . import fleet_http  # aiohttp: only where a fleet sync runs

        self._loop, self._main_task = asyncio.get_running_loop(), asyncio.current_task()
        if self._stopped:
            return
        self._http = fleet_http
        self._tls = fleet_http.TLS()
        self._claims: dict[int, fleet_http.LoopClaims] = {}
        loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._room = asyncio.Event()
        self._active = 0
        self._tasks: set[asyncio.Task] = set()
        self._session = fleet_http.new_session(self.concurrency)
        try:
            try:
                await self._feed(loop)
            except Exception:
                # Reading the accounts failed: the ones in flight are finished first,
                # as the threads finish theirs, then the error goes up.
                await self._wait_for(lambda: self._active == 0)
                raise
            await self._wait_for(lambda: self._active == 0)
        finally:
            self._flush()
            for task in self._tasks:
                task.cancel()
            await self._session.close()

    async def _feed(self, loop: asyncio.AbstractEventLoop) -> None:
        iterator = await loop.run_in_executor(self.reader, iter, self.accounts)
        while True:
            # Refill by a round of requests at a time: one hop to the reader per round.
            await self._wait_for(lambda: self._active <= self.window - self.concurrency)
            while self.writer.backlog() + len(self._delivered) > self.writer.max_backlog:
                self._flush()
                await asyncio.sleep(0.01)
            chunk = await loop.run_in_executor(
                self.reader, _take, iterator, self.window - self._active
            )
            if not chunk:
                return
            for account in chunk:
                self._active += 1
                task = loop.create_task(self._one(account))
                self._tasks.add(task)

    def _deliver(self, account: LinkedAccount, info: UserInfo) -> None:
        self._delivered.append((account, info))
        if len(self._delivered) >= self.flush_size:
            self._flush()
        elif len(self._delivered) == 1:
            asyncio.get_running_loop().call_later(self.flush_after, self._flush)

    def _flush(self) -> None:
        if self._delivered:
            self.writer.put(self._delivered)
            self._delivered = []

    async def _wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self._room.clear()
            await self._room.wait()

    async def _one(self, account: LinkedAccount) -> None:
        try:
            try:
                async with self._slots:
                    info = await self._fetch(account)
            except Exception as exc:
                loop = asyncio.get_running_loop()
                try:
                    await loop.run_in_executor(self.workers, self.fail, account, exc)
                except Exception:  # fail() reports its own errors; never lose the loop
                    logger.exception("Recording the failure of account %s failed", account.pk)
            else:
                self._deliver(account, info)
        finally:
            self._active -= 1
            self._room.set()
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _fetch(self, account: LinkedAccount) -> UserInfo:
        """``sync.fetch_userinfo``, with the HTTP on the loop and the refresh on a worker."""
        fetcher = self._fetcher(account.data_center)
        token = tokens.stored_access_token(account)
        if token is None:
            token = await self._blocking(tokens.refresh_access_token, account)
        try:
            body = await fetcher.userinfo(token)
        except AccessTokenRejected:
            refresh = partial(tokens.refresh_access_token, account, rejected_token=token)
            token = await self._blocking(refresh)
            body = await fetcher.userinfo(token)
        return parse_userinfo(body, expected_sub=account.sub)

    async def _blocking(self, fn: Callable[..., str], *args: Any) -> str:
        return await asyncio.get_running_loop().run_in_executor(self.workers, fn, *args)

    def _fetcher(self, data_center: str) -> fleet_http.AsyncUserInfo:
        fetcher = self._fetchers.get(data_center)
        if fetcher is None:
            client = get_client(data_center)
            limiter = client.rate_limiter  # one per budget: its claims are batched together
            claims = self._claims.get(id(limiter)) if limiter is not None else None
            if limiter is not None and claims is None:
                claims = self._claims[id(limiter)] = self._http.LoopClaims(
                    limiter, demand=lambda: self._active, executor=self.workers
                )
            fetcher = self._http.AsyncUserInfo(client, self._session, self._tls, claims)
            self._fetchers[data_center] = fetcher
        return fetcher

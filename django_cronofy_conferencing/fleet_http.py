"""UserInfo over aiohttp, for the fleet sync's event loop (``fleet``).

Why a second HTTP library: at a fleet sync's concurrency, threads spend most of a
request's CPU waking up and parsing headers in pure Python; ``benchmarks/
http_floor.py`` measured 0.54 ms of CPU per request for ``CronofyClient`` in 32
threads against 0.19 ms for aiohttp on one event loop (C parser, no thread
switches). Only ``sync_accounts`` uses it, for ``GET /v1/userinfo``; every
other call, and every token refresh, goes through ``client``. Imported only
when a fleet sync runs on the loop: a web process never loads aiohttp.

The contract is ``CronofyClient.userinfo``'s, taken from the thread-confined
client of the same data center: its headers, timeouts, ``REQUEST_DEADLINE``,
``MAX_RESPONSE_BYTES``, trust store, retries (``retry_delay``), rate limit
(its slots claimed several at a time: ``LoopClaims``) and errors
(``client_errors``), so a sync cannot tell which library fetched. Neither
follows a redirect (the bearer token goes to the data center's API host only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

import aiohttp
import requests
from django.views.decorators.debug import sensitive_variables
from requests.structures import CaseInsensitiveDict

from . import client_errors as errors
from .client import ERROR_BODY_READ_LIMIT, CronofyClient, decode_json
from .ratelimit import RateLimiter
from .redaction import remember_secret
from .transport import BodyTooLarge, DeadlineExceeded, Redacted

logger = logging.getLogger(__name__)

# Looked up at call time so tests can replace it (retries never sleep in tests).
async_sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

USERINFO_PATH = "/v1/userinfo"


def new_session(concurrency: int) -> aiohttp.ClientSession:
    """One session for the whole sync: at most ``concurrency`` connections.

    ``trust_env`` stays off: no ``.netrc`` credentials are ever sent, and
    ``fleet`` keeps a sync whose environment names a proxy on ``requests``.
    """
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, ttl_dns_cache=300)
    session = aiohttp.ClientSession(
        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    )
    # aiohttp sends a GET again, unpaced, when the connection drops; the request loop
    # retries (paced by the rate limit, counted against MAX_RETRIES) as requests does.
    # No public switch: tests/test_fleet_http.py counts the attempts if this goes.
    session._retry_connection = False
    return session


class TLS:
    """SSL contexts verifying as the client's session does (``session.verify``: the
    ``REQUESTS_CA_BUNDLE`` that ``transport.new_session`` read, else certifi), one
    per bundle, made on first use."""

    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}

    def context(self, verify: str | bool = True) -> ssl.SSLContext:
        bundle = verify if isinstance(verify, str) else requests.certs.where()
        context = self._contexts.get(bundle)
        if context is None:
            if os.path.isdir(bundle):  # requests takes a directory of CAs too
                context = ssl.create_default_context(capath=bundle)
            else:
                context = ssl.create_default_context(cafile=bundle)
            self._contexts[bundle] = context
        return context


class LoopClaims:
    """Rate-limit slots for one budget on an event loop, claimed several at a time.

    A claim is a round trip to the cache, which cost more CPU than the request
    it paced (a context switch each way). Here one round trip claims up to
    ``block`` consecutive slots (``RateLimiter.reserve_many``), for the
    requests waiting now and the next ones: a slot held is used while it is at
    most ``max_lateness`` old (which keeps every window within the limit) and
    dropped after. ``demand()`` is how many requests may want a slot soon, so
    a small sync claims no more than it uses. With the database cache a claim
    is a query, which Django forbids on an event loop: it runs on ``executor``.
    """

    block = 8

    def __init__(
        self,
        limiter: RateLimiter,
        demand: Callable[[], int] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.limiter = limiter
        self.demand = demand or (lambda: self.block)
        self.lateness = limiter.max_lateness
        # The database cache's claims are queries: on ``executor``, never on the loop.
        self.executor = executor if limiter.queries_the_database else None
        self._held: deque[float] = deque()  # claimed start times, earliest first
        self._waiting: list[asyncio.Future] = []

    async def wait_for_slot(self) -> None:
        at = self._take()
        if at is None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._waiting.append(future)
            if len(self._waiting) == 1:  # the others ready in this turn claim with it
                loop.call_soon(self._claim)
            at = await future
        wait = at - self.limiter.clock()
        if wait > self.limiter.min_sleep:
            await asyncio.sleep(wait)  # pacing: a real wait, also in tests

    def _take(self) -> float | None:
        oldest = self.limiter.clock() - self.lateness
        while self._held:
            at = self._held.popleft()
            if at >= oldest:
                return at
        return None

    def _claim(self) -> None:
        waiting, self._waiting = self._waiting, []
        count = max(len(waiting), min(self.block, self.demand()))
        if self.executor is None:
            try:
                times = self.limiter.claim_times(count)
            except Exception as exc:  # a misconfigured cache (an outage is guarded)
                self._settle(waiting, exc)
            else:
                self._settle(waiting, times)
            return
        claimed = asyncio.get_running_loop().run_in_executor(
            self.executor, self.limiter.claim_times, count
        )
        claimed.add_done_callback(
            lambda done: self._settle(waiting, done.exception() or done.result())
        )

    def _settle(self, waiting: list[asyncio.Future], times: list[float] | BaseException) -> None:
        if isinstance(times, BaseException):
            for future in waiting:
                if not future.done():
                    future.set_exception(times)
            return
        if len(set(times)) == len(times):  # not the fail-open answer (now, for each)
            self._held.extend(times[len(waiting) :])
        for future, at in zip(waiting, times, strict=False):
            if not future.done():  # not cancelled meanwhile
                future.set_result(at)


class AsyncUserInfo:
    """``CronofyClient.userinfo`` for one data center, on an event loop."""

    def __init__(
        self,
        client: CronofyClient,
        session: aiohttp.ClientSession,
        tls: TLS | None = None,
        claims: LoopClaims | None = None,
    ) -> None:
        self.client = client
        self.session = session
        limiter = client.rate_limiter
        self.claims = claims or (LoopClaims(limiter) if limiter is not None else None)
        self.url = client.data_center.api(USERINFO_PATH)
        self.where = f"GET {USERINFO_PATH} ({client.data_center.id})"
        self.headers = {
            "User-Agent": client.session.headers["User-Agent"],
            "Accept": "application/json",
        }
        connect, read = client.timeout
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        secure = self.url.startswith("https:")
        self.ssl: Any = (tls or TLS()).context(client.session.verify) if secure else None

    def __repr__(self) -> str:
        return f"<AsyncUserInfo {self.client.data_center.id} {self.url}>"

    @sensitive_variables("access_token", "headers", "secrets")
    async def userinfo(self, access_token: str) -> Any:
        """The decoded UserInfo body (validate it with ``payloads.parse_userinfo``)."""
        client = self.client
        remember_secret(access_token)
        headers = Redacted(self.headers, Authorization=f"Bearer {access_token}")
        secrets = (access_token,)
        deadline = client.clock() + client.deadline
        attempt, waited = 0, 0.0
        while True:
            if self.claims is not None:
                await self.claims.wait_for_slot()
            started = client.clock()
            try:
                status, answer_headers, body = await self._attempt(headers, deadline)
            except DeadlineExceeded:
                error, retryable = errors.deadline_error(self.where, client.deadline), False
            except BodyTooLarge:
                raise errors.too_large_error(self.where, client.max_body) from None
            except TimeoutError:  # aiohttp's connect and read timeouts
                error, retryable = errors.timeout_error(self.where), True
            except aiohttp.ClientError:
                # Refused, reset or cut short: what requests calls a ConnectionError.
                error, retryable = errors.unreachable_error(self.where, "ConnectionError"), True
            else:
                logger.debug(
                    "Cronofy GET %s -> %s in %.0f ms",
                    USERINFO_PATH,
                    status,
                    (client.clock() - started) * 1000,
                )
                if status < 400:
                    return decode_json(body, "UserInfo")
                response = as_response(status, answer_headers, body, self.url)
                error = errors.error_for(
                    "GET", USERINFO_PATH, client.data_center.id, response, secrets
                )
                retryable = errors.status_retryable(status, idempotent=True)
            delay = client.retry_delay(error, retryable, attempt, waited, deadline)
            if delay is None:
                raise error
            logger.info("Retrying Cronofy GET %s in %.2fs after: %s", USERINFO_PATH, delay, error)
            await async_sleep(delay)
            waited += delay
            attempt += 1

    @sensitive_variables("headers")
    async def _attempt(self, headers: dict, deadline: float) -> tuple[int, Any, bytes]:
        """One attempt within the deadline: status, headers and the body read against the cap."""
        remaining = deadline - self.client.clock()
        if remaining <= 0:
            raise DeadlineExceeded
        timer = asyncio.timeout(remaining)
        try:
            async with timer:
                return await self._get(headers)
        except TimeoutError:
            if timer.expired():
                raise DeadlineExceeded from None
            raise

    @sensitive_variables("headers")
    async def _get(self, headers: dict) -> tuple[int, Any, bytes]:
        async with self.session.get(
            self.url,
            headers=headers,
            timeout=self.timeout,
            ssl=self.ssl,
            allow_redirects=False,
        ) as answer:
            status = answer.status
            error = status >= 400
            limit = (
                min(self.client.max_body, ERROR_BODY_READ_LIMIT) if error else self.client.max_body
            )
            length = answer.content_length
            if not error and length is not None and length > limit:
                raise BodyTooLarge
            chunks: list[bytes] = []
            size = 0
            while chunk := await answer.content.readany():
                size += len(chunk)
                if size > limit:
                    if not error:
                        raise BodyTooLarge
                    chunks.append(chunk[: len(chunk) - (size - limit)])
                    break  # the rest stays unread; the connection is dropped
                chunks.append(chunk)
            return status, answer.headers, b"".join(chunks)


def as_response(status: int, headers: Any, body: bytes, url: str) -> requests.Response:
    """An error answer as the ``requests.Response`` that ``client_errors`` reads."""
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(headers)
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    response._content = body
    response.url = url
    return response

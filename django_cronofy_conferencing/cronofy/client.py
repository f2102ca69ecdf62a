"""The one place that speaks HTTP to Cronofy.

Modelled on django-anymail's HTTP base: one ``requests.Session`` per client,
timeouts and retries in one loop, every failure mapped onto ``exceptions``
(Cronofy's error answers by ``errors``).
Callers pass tokens per call; the client never stores one.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from json import loads as json_loads
from typing import Any
from urllib.parse import quote, urlencode

import requests
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from .. import __version__
from ..conf import app_settings, on_reload
from ..exceptions import CronofyAPIError, InvalidResponse
from . import telemetry
from .applications import get_application
from .datacenters import DataCenter, get_data_center
from .errors import (
    ERROR_BODY_LIMIT,
    deadline_error,
    error_for,
    status_retryable,
    timeout_error,
    too_large_error,
    unreachable_error,
)
from .ratelimit import Lane, RateLimiter, as_lane
from .redaction import remember_secret
from .transport import (
    Answer,
    BodyTooLarge,
    DeadlineExceeded,
    Redacted,
    call_deadline,
    new_session,
    read_body,
)

__all__ = [
    "ERROR_BODY_LIMIT",
    "USER_AGENT",
    "CronofyClient",
    "budget_for",
    "client_credentials",
    "decode_json",
    "get_bounded_client",
    "get_client",
    "reset_clients",
]

logger = logging.getLogger(__name__)

# Looked up at call time so tests can replace it (they never sleep for real).
_sleep: Callable[[float], None] = time.sleep

USER_AGENT = f"django-cronofy-conferencing/{__version__} python-requests/{requests.__version__}"

#: Bytes of an error response body read at most (the rest is dropped unread).
ERROR_BODY_READ_LIMIT = 64 * 1024


class CronofyClient:
    """Calls one data center. Thread-confined: use ``get_client`` for a per-thread one."""

    def __init__(
        self,
        data_center: DataCenter | str,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        rate_limiter: RateLimiter | None = None,
        max_retries: int | None = None,
        clock: Callable[[], float] | None = None,
        lane: Lane | str = Lane.USER,
    ) -> None:
        self.data_center = (
            data_center if isinstance(data_center, DataCenter) else get_data_center(data_center)
        )
        self.session = session or new_session(self.data_center.api_url)
        self.session.headers["User-Agent"] = app_settings.USER_AGENT or USER_AGENT
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.rate_limiter = rate_limiter
        #: Which part of the application's budget this client's calls use (``ratelimit``).
        self.lane = as_lane(lane)
        self.timeout = (float(app_settings.CONNECT_TIMEOUT), float(app_settings.REQUEST_TIMEOUT))
        self.max_retries = int(app_settings.MAX_RETRIES if max_retries is None else max_retries)
        self.backoff = float(app_settings.RETRY_BACKOFF)
        self.max_wait = float(app_settings.RETRY_MAX_WAIT)
        self.deadline = float(app_settings.REQUEST_DEADLINE)
        self.max_body = int(app_settings.MAX_RESPONSE_BYTES)
        self.clock = clock or time.monotonic

    def __repr__(self) -> str:
        lane = "" if self.lane is Lane.USER else f" ({self.lane.value})"
        return f"<CronofyClient {self.data_center.id} {self.data_center.api_url}{lane}>"

    # -- the request loop -------------------------------------------------

    def backoff_delay(self, attempt: int) -> float:
        return backoff(attempt, self.backoff, self.rng)

    @sensitive_variables("access_token", "json", "data", "secrets", "secret", "headers")
    def request(
        self,
        method: str,
        path: str,
        *,
        access_token: str | None = None,
        json: Any = None,
        data: dict | None = None,
        idempotent: bool = True,
        secrets: tuple[str | None, ...] = (),
    ) -> Answer:
        """Send with retries; return a 2xx/3xx answer (body read) or raise a ``CronofyError``.

        Timeouts, connection errors and 5xx are retried only when ``idempotent``
        (a code exchange must not be replayed); 429 always is, since Cronofy
        did not act on it. The whole call, retries and waits included, ends
        within ``REQUEST_DEADLINE`` seconds, however slowly Cronofy answers; a
        body larger than ``MAX_RESPONSE_BYTES`` is refused unread.
        """
        url = self.data_center.api(path)
        headers = Redacted(Accept="application/json")
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        if data is not None:
            data = Redacted(data)
        secrets = (access_token, *secrets)
        for secret in secrets:
            remember_secret(secret)
        where = f"{method} {path} ({self.data_center.id})"
        deadline = self.clock() + self.deadline
        attempt = 0
        waited = 0.0
        while True:
            if self.rate_limiter is not None:
                # The wait for a slot counts against the deadline (BudgetExhausted at
                # once when the slot lies beyond it: nothing was sent, nothing held).
                waited_for_slot = self.rate_limiter.acquire(
                    self.lane, within=max(0.0, deadline - self.clock())
                )
                telemetry.record_rate_limit_wait(waited_for_slot, self.data_center.id)
            # One span per attempt (OpenTelemetry, when installed: ``telemetry``).
            call = telemetry.CronofyCall.start(
                method, path, self.data_center.api_url, self.data_center.id, attempt
            )
            started = self.clock()
            try:
                response = self._send(method, url, headers, json, data, deadline)
            except DeadlineExceeded:
                # The request may have reached Cronofy; no time is left anyway.
                error, retryable = deadline_error(where, self.deadline), False
            except BodyTooLarge:
                too_large = too_large_error(where, self.max_body)
                call.end(error=too_large)
                raise too_large from None
            except requests.Timeout as exc:
                error = timeout_error(where)
                retryable = idempotent or isinstance(exc, requests.ConnectTimeout)
            except requests.RequestException as exc:
                error, retryable = unreachable_error(where, type(exc).__name__), idempotent
            except BaseException as exc:  # not a transport failure: end its span, propagate
                call.end(error=exc)
                raise
            else:
                logger.debug(
                    "Cronofy %s %s -> %s in %.0f ms",
                    method,
                    path,
                    response.status_code,
                    (self.clock() - started) * 1000,
                )
                if response.status_code < 400:
                    call.end(status_code=response.status_code)
                    return response
                error = error_for(method, path, self.data_center.id, response, secrets)
                retryable = status_retryable(response.status_code, idempotent)
            call.end(status_code=getattr(error, "status_code", None), error=error)
            delay = self.retry_delay(error, retryable, attempt, waited, deadline)
            if delay is None:
                raise error
            logger.info("Retrying Cronofy %s %s in %.2fs after: %s", method, path, delay, error)
            (self.sleep or _sleep)(delay)
            waited += delay
            attempt += 1

    def retry_delay(
        self, error: CronofyAPIError, retryable: bool, attempt: int, waited: float, deadline: float
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when ``error`` is final:
        not retryable, out of retries, or the wait would pass ``RETRY_MAX_WAIT`` or the
        call's deadline. A 429's ``Retry-After`` is the wait when Cronofy gives one."""
        if not retryable or attempt >= self.max_retries:
            return None
        retry_after = getattr(error, "retry_after", None)
        delay = retry_after if retry_after is not None else self.backoff_delay(attempt)
        if waited + delay > self.max_wait or self.clock() + delay >= deadline:
            return None
        return delay

    @sensitive_variables("headers", "json", "data")
    def _send(
        self, method: str, url: str, headers: dict, json: Any, data: Any, deadline: float
    ) -> Answer:
        """One attempt: send, then read the answer against the deadline and the cap.

        Every socket read, status line and headers included, gets at most the
        time left (``transport.call_deadline``): a server that trickles its
        headers a byte at a time is cut off at the deadline too.
        """
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise DeadlineExceeded
        connect_timeout, read_timeout = self.timeout
        with call_deadline(remaining) as bound:
            try:
                # Never follow a redirect: the bearer token and the client secret go to
                # the data center's API host only (Cronofy's API does not redirect).
                response = self.session.request(
                    method,
                    url,
                    headers=headers,
                    json=json,
                    data=data,
                    timeout=(min(connect_timeout, remaining), min(read_timeout, remaining)),
                    stream=True,
                    allow_redirects=False,
                )
                try:
                    error = response.status_code >= 400
                    limit = min(self.max_body, ERROR_BODY_READ_LIMIT) if error else self.max_body
                    body = read_body(response, deadline, limit, truncate=error, clock=self.clock)
                finally:
                    response.close()  # back to the pool when read to the end; else dropped
            except requests.Timeout:
                if bound.expired:
                    raise DeadlineExceeded from None
                raise
        return Answer(response.status_code, response.headers, body)

    def _json(self, response: Answer, what: str) -> Any:
        return decode_json(response.content, what)

    # -- endpoints --------------------------------------------------------

    @sensitive_variables("access_token")
    def userinfo(self, access_token: str) -> Any:
        """The decoded UserInfo body; validate it with ``userinfo.parse_userinfo``."""
        response = self.request("GET", "/v1/userinfo", access_token=access_token)
        return self._json(response, "UserInfo")

    @sensitive_variables("grant", "form", "secrets", "body")
    def request_token(self, grant: dict[str, str], *, idempotent: bool) -> dict[str, Any]:
        """POST /oauth/token with this data center's application; returns the decoded body."""
        form = {**client_credentials(self.data_center.id), **grant}
        secrets = tuple(grant.get(k) for k in ("code", "refresh_token"))
        response = self.request(
            "POST",
            "/oauth/token",
            data=form,
            idempotent=idempotent,
            secrets=(form["client_secret"], *secrets),
        )
        body = self._json(response, "token")
        if not isinstance(body, dict):
            raise InvalidResponse("Invalid token response: the body is not a JSON object.")
        return body

    @sensitive_variables("token", "form")
    def revoke_token(self, token: str) -> None:
        form = {**client_credentials(self.data_center.id), "token": token}
        self.request(
            "POST",
            "/oauth/token/revoke",
            data=form,
            secrets=(form["client_secret"], token),
        )

    @sensitive_variables("access_token")
    def create_conferencing_service_authorization(
        self, access_token: str, redirect_uri: str, provider_name: str | None = None
    ) -> dict[str, Any]:
        payload = {"redirect_uri": redirect_uri}
        if provider_name:
            payload["provider_name"] = provider_name
        response = self.request(
            "POST",
            "/v1/conferencing_service_authorizations",
            access_token=access_token,
            json=payload,
            idempotent=False,
        )
        return self._json(response, "conferencing service authorization")

    @sensitive_variables("access_token")
    def create_channel(self, access_token: str, callback_url: str) -> dict[str, Any]:
        response = self.request(
            "POST",
            "/v1/channels",
            access_token=access_token,
            json={"callback_url": callback_url},
            idempotent=False,
        )
        return self._json(response, "channel")

    @sensitive_variables("access_token")
    def list_channels(self, access_token: str) -> dict[str, Any]:
        response = self.request("GET", "/v1/channels", access_token=access_token)
        return self._json(response, "channels")

    @sensitive_variables("access_token")
    def upsert_event(self, access_token: str, calendar_id: str, event: dict[str, Any]) -> None:
        """``POST /v1/calendars/{calendar_id}/events``: create or update (by ``event_id``).

        Cronofy answers 202 with no body; a 422 (validation) raises ``CronofyAPIError``
        whose ``errors`` holds Cronofy's ``{field: [{"key", "description"}]}``. An
        upsert is idempotent by ``event_id``, so it is retried like a read.
        """
        self.request(
            "POST",
            f"/v1/calendars/{quote(calendar_id, safe='@')}/events",
            access_token=access_token,
            json=event,
        )

    @sensitive_variables("access_token")
    def read_events(
        self, access_token: str, *, tzid: str = "Etc/UTC", **params: Any
    ) -> dict[str, Any]:
        """``GET /v1/events`` (one page): ``{"pages": ..., "events": [...]}``."""
        query = urlencode({"tzid": tzid, **params}, doseq=True)
        response = self.request("GET", f"/v1/events?{query}", access_token=access_token)
        body = self._json(response, "read events")
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise InvalidResponse("Invalid read events response: no events array.")
        return body


def backoff(attempt: int, base: float, rng: Any = random, *, cap: float | None = None) -> float:
    """The app's one backoff: exponential with jitter, between half and all of
    ``base * 2**attempt`` (capped at ``cap``), so retries of many callers spread out."""
    ceiling = base * (2**attempt)
    if cap is not None:
        ceiling = min(ceiling, cap)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@sensitive_variables("text")
def decode_json(content: bytes, what: str) -> Any:
    """A response body as JSON, or ``InvalidResponse`` naming ``what`` was expected.

    JSON is UTF-8 (RFC 8259): no other charset is ever guessed.
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidResponse(f"Invalid {what} response: the body is not UTF-8.") from None
    try:
        return json_loads(text)
    except ValueError:
        raise InvalidResponse(f"Invalid {what} response: the body is not JSON.") from None
    except RecursionError:
        raise InvalidResponse(f"Invalid {what} response: the body is nested too deeply.") from None


def client_credentials(data_center: str) -> dict[str, str]:
    """The credentials of ``data_center``'s application, or ``ImproperlyConfigured``
    (``applications.NoApplication``) naming the setting to add."""
    return get_application(data_center).credentials()


_local = threading.local()
_state: dict[str, Any] = {"generation": 0, "limiters": {}}
_limiters_lock = threading.Lock()


def budget_for(data_center: str) -> str:
    """Whose rate limit a call to ``data_center`` draws from: its application's."""
    try:
        return get_application(data_center).budget_key
    except ImproperlyConfigured:
        # Accounts linked in a data center whose application was removed still
        # sync (bearer token) until their token expires: a budget of their own.
        return f"{data_center}:unconfigured"


def _rate_limiter(data_center: str) -> RateLimiter | None:
    budget = budget_for(data_center)
    with _limiters_lock:
        limiters = _state["limiters"]
        if budget not in limiters:
            limiters[budget] = RateLimiter.from_settings(budget)
        return limiters[budget]


def get_client(data_center: str, lane: Lane | str = Lane.USER) -> CronofyClient:
    """A client for this thread, data center and lane, reusing its connection pool.

    ``lane``: whose call it is (``ratelimit.Lane``): a user's by default; fleet
    work passes ``Lane.BACKGROUND``.
    """
    lane = as_lane(lane)
    if getattr(_local, "generation", None) != _state["generation"]:
        _local.clients = {}
        _local.generation = _state["generation"]
    client = _local.clients.get((data_center, lane))
    if client is None:
        client = _local.clients[(data_center, lane)] = CronofyClient(
            data_center, rate_limiter=_rate_limiter(data_center), lane=lane
        )
    return client


def get_bounded_client(data_center: str, lane: Lane | str = Lane.PUSH) -> CronofyClient:
    """A client that makes one attempt per call (no retries, no backoff sleeps), under
    the data center's shared rate limit: for work done inside someone else's request
    (a push notification from Cronofy, which must be answered fast)."""
    return CronofyClient(
        data_center, rate_limiter=_rate_limiter(data_center), max_retries=0, lane=lane
    )


def reset_clients() -> None:
    """Drop every thread's cached clients (settings changed, or a test wants a clean slate)."""
    with _limiters_lock:
        _state["generation"] += 1
        _state["limiters"] = {}


on_reload(reset_clients)

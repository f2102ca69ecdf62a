"""HTTP plumbing under ``client``: the session and adapter, prepared requests,
reading a body against a deadline and a cap, and header parsing.

Kept apart from the request loop so each reads on its own; nothing here knows
Cronofy's endpoints or what its errors mean (``client_errors``).
"""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable
from typing import Any

import requests
from django.views.decorators.debug import sensitive_variables
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

#: A ``Retry-After`` longer than this (a day) is treated as this long.
MAX_RETRY_AFTER = 86400.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), or None.

    Capped at ``MAX_RETRY_AFTER``: a header of hundreds of digits is a
    server's mistake, not a reason to overflow or to wait for ever. Only ASCII
    digits count (``"²".isdigit()`` is true too).
    """
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)  # float("9" * 400) is inf, not an error
    if len(value) > 64:  # longer than any HTTP-date
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    try:
        seconds = when.timestamp() - (time.time() if now is None else now)
    except (OverflowError, ValueError, OSError):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


READ_CHUNK = 64 * 1024


class DeadlineExceeded(Exception):
    """The call's overall deadline passed while the body was being read."""


class BodyTooLarge(Exception):
    """The body is (or declares itself) longer than the limit."""


def read_body(
    response: requests.Response,
    deadline: float,
    limit: int,
    *,
    truncate: bool,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """The (decoded) body, at most ``limit`` bytes (cut there if ``truncate``, else
    ``BodyTooLarge``), read before ``deadline`` (else ``DeadlineExceeded``).

    Each read returns what has arrived (``read1``), so a server that
    trickles a byte at a time is noticed between reads, not after the body.
    """
    length = response.headers.get("Content-Length", "")
    if not truncate and length.isascii() and length.isdigit() and int(length) > limit:
        raise BodyTooLarge
    raw = response.raw
    read = getattr(raw, "read1", None) or raw.read
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise DeadlineExceeded
        shorten_read_timeout(raw, remaining)
        try:
            chunk = read(READ_CHUNK, decode_content=True)
        except (Urllib3Error, OSError) as exc:  # as requests maps them when it reads
            raise map_read_error(exc) from None
        if not chunk:
            response._content_consumed = True
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            if truncate:
                chunks.append(chunk[: len(chunk) - (size - limit)])
                return b"".join(chunks)  # the rest stays unread; the connection is dropped
            raise BodyTooLarge
        chunks.append(chunk)


def shorten_read_timeout(raw: Any, remaining: float) -> None:
    """Let no single socket read outlive the deadline (best effort: urllib3's socket)."""
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        return
    try:
        current = sock.gettimeout()
        if current is None or current > remaining:
            sock.settimeout(max(remaining, 0.001))
    except OSError:
        pass


def map_read_error(exc: Exception) -> requests.RequestException:
    """A urllib3 error while reading the body, as the ``requests`` error it stands for."""
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return requests.ReadTimeout(type(exc).__name__)
    return requests.ConnectionError(type(exc).__name__)


class Redacted(dict):
    """A dict of request headers or form fields that hides its values from reprs.

    Passed to ``requests`` as is, so a frame of ``requests`` in an exception
    report (Django's technical 500 page, the mail of ``AdminEmailHandler``,
    an error tracker's local variables) shows keys only.
    """

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: '[redacted]'" for k in self) + "}"

    __str__ = __repr__


class HostAdapter(requests.adapters.HTTPAdapter):
    """requests' ``HTTPAdapter``, keeping what it would recompute on every request.

    Per request, ``HTTPAdapter.send`` parses the URL and rebuilds the
    connection pool's key (an ``os.path.isdir`` on the CA bundle among it),
    then checks the bundle on disk again in ``cert_verify``. For the same
    origin, ``verify``, ``cert`` and proxies the answers never change: each
    pool is looked up once (again only if urllib3 closed it) and verified
    once. Everything else is requests' own code path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pools: dict[tuple, Any] = {}
        self._verified: set[tuple] = set()

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        url = request.url or ""
        origin = url[: url.find("/", url.find("//") + 2)]  # scheme://host:port
        key = (origin, verify, cert, tuple(sorted(proxies.items())) if proxies else None)
        pool = self._pools.get(key)
        if pool is None or pool.pool is None:  # new, or closed by urllib3
            pool = super().get_connection_with_tls_context(
                request, verify, proxies=proxies, cert=cert
            )
            self._pools[key] = pool
        return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        key = (conn, url[:6].lower() == "https:", verify, cert)
        if key not in self._verified:
            super().cert_verify(conn, url, verify, cert)
            self._verified.add(key)

    def close(self) -> None:
        self._pools.clear()
        self._verified.clear()
        super().close()


class RequestPreparer:
    """Prepared requests for one session, sent with ``Session.send``.

    ``Session.request`` merges the session's settings and the environment's
    into every request and prepares the URL again (parsing, IDNA, requoting):
    for the same method and URL the answers never change, and computing them
    was a fifth of a fleet sync's CPU. Here they are computed once per method
    and URL: a request without a body is a copy of a template prepared then,
    with its own headers (validated as ``requests`` does) on top; one with a
    body is prepared in full. ``Session.send`` is requests' documented path
    for prepared requests: adapters, hooks and redirects as usual. Session
    cookies are not sent (the API has no use for them). At most
    ``max_templates`` URLs are kept (some carry a calendar or channel id).
    """

    max_templates = 256

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self._cache: dict[tuple[str, str], tuple[requests.PreparedRequest, dict]] = {}

    def _template(self, method: str, url: str) -> tuple[requests.PreparedRequest, dict]:
        entry = self._cache.get((method, url))
        if entry is None:
            session = self.session
            template = requests.Request(method, url, headers=dict(session.headers)).prepare()
            settings = session.merge_environment_settings(url, {}, True, None, None)
            if len(self._cache) >= self.max_templates:
                self._cache.clear()
            entry = self._cache[(method, url)] = (template, settings)
        return entry

    @sensitive_variables("headers", "header", "json", "data")
    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict,
        json: Any = None,
        data: Any = None,
        timeout: tuple[float, float],
    ) -> requests.Response:
        """Send one request (streamed: the caller reads the body)."""
        template, settings = self._template(method, url)
        if json is None and data is None:
            prepared = template.copy()
            for header in headers.items():
                requests.utils.check_header_validity(header)
            prepared.headers.update(headers)
        else:
            prepared = requests.Request(
                method, url, headers={**template.headers, **headers}, json=json, data=data
            ).prepare()
        # Never follow a redirect: the bearer token and the client secret go to the
        # data center's API host only (Cronofy's API does not redirect).
        return self.session.send(prepared, timeout=timeout, allow_redirects=False, **settings)


def requests_patched() -> bool:
    """Whether something replaced requests' transport (``responses``, ``requests-mock``,
    a mock): a call made with another HTTP library would escape that test double."""
    return (
        getattr(HostAdapter.send, "__module__", None) != "requests.adapters"
        or getattr(requests.Session.send, "__module__", None) != "requests.sessions"
        or getattr(requests.Session.get_adapter, "__module__", None) != "requests.sessions"
    )


def new_session(base_url: str) -> requests.Session:
    """A session for one host, with the environment's proxy and CA settings read once.

    ``requests`` re-reads ``os.environ`` (proxies, CA bundle) and ``~/.netrc``
    on every request when ``trust_env`` is on: a sizeable share of the CPU of a
    fleet sync. The result for this host is the same, computed here once; and
    ``.netrc`` credentials are never sent to Cronofy. Its adapters are
    ``HostAdapter``: requests' own, minus the per-request pool key and CA
    bundle checks.
    """
    session = requests.Session()
    for prefix in ("https://", "http://"):
        session.mount(prefix, HostAdapter())
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session

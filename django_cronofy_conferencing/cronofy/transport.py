"""HTTP plumbing under ``client``: the session, reading a body against a
deadline and a cap, and header parsing.

Kept apart from the request loop so each reads on its own; nothing here knows
Cronofy's endpoints or what its errors mean (``errors``).
"""

from __future__ import annotations

import email.utils
import http.client
import io
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from json import loads as json_loads
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from ..exceptions import BodyTooLarge, DeadlineExceeded

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


@dataclass(frozen=True)
class Answer:
    """A response as the client read it: status, headers and the (capped) body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json_loads(self.content.decode("utf-8-sig"))


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
    (Each socket read is bounded by the deadline too: ``DeadlineAdapter``.)
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
        try:
            chunk = read(READ_CHUNK, decode_content=True)
        except (Urllib3Error, OSError) as exc:  # as requests maps them when it reads
            raise map_read_error(exc) from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            if truncate:
                chunks.append(chunk[: len(chunk) - (size - limit)])
                return b"".join(chunks)  # the rest stays unread; the connection is dropped
            raise BodyTooLarge
        chunks.append(chunk)


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


# -- the deadline of a whole call, down to each socket read ---------------------------
#
# requests and urllib3 bound each socket operation (REQUEST_TIMEOUT), never a
# whole response: a server that sends "HTTP/1.1 200 OK" and then one header byte
# a second resets the read timeout with every byte, and http.client reads up
# to 64 KiB of headers. So the response's socket reads go through
# ``_DeadlineReader``, which gives each read at most the time left until the
# call's deadline: status line, headers and body alike. The deadline reaches
# the connection through a context variable that the client sets around each
# attempt (``call_deadline``); the connections come from ``DeadlineAdapter``'s
# pools (urllib3's public ``ConnectionCls`` and ``pool_classes_by_scheme``).
# Connecting is bounded by the connect timeout, which the client caps at the
# time left. Not bounded: name resolution, and sending a request body (a few
# hundred bytes, which the socket buffer takes at once).


class CallDeadline:
    """When the current call must have ended (``time.monotonic()``), and whether a
    socket read was cut short by it (``expired``)."""

    __slots__ = ("at", "expired")

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + max(0.0, seconds)
        self.expired = False

    def remaining(self) -> float:
        return self.at - time.monotonic()


_current_deadline: ContextVar[CallDeadline | None] = ContextVar(
    "cronofy_call_deadline", default=None
)


@contextmanager
def call_deadline(seconds: float) -> Iterator[CallDeadline]:
    """Bound every socket read of responses received in this block to ``seconds`` from now."""
    deadline = CallDeadline(seconds)
    token = _current_deadline.set(deadline)
    try:
        yield deadline
    finally:
        _current_deadline.reset(token)


class _DeadlineReader(io.RawIOBase):
    """A response's socket reads, each allowed ``min(read timeout, time left)``."""

    def __init__(self, sock: Any, deadline: CallDeadline) -> None:
        super().__init__()
        self.sock = sock
        self.raw = sock.makefile("rb", buffering=0)  # the socket's own reader (its refcount)
        self.deadline = deadline
        self.read_timeout = sock.gettimeout()  # what urllib3 set: REQUEST_TIMEOUT

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self.deadline.remaining()
        if remaining <= 0:
            self.deadline.expired = True
            raise TimeoutError("REQUEST_DEADLINE passed")
        capped = self.read_timeout is None or remaining < self.read_timeout
        self.sock.settimeout(remaining if capped else self.read_timeout)
        try:
            return self.raw.readinto(buffer)
        except TimeoutError:
            self.deadline.expired = capped
            raise

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()


class _DeadlineSocket:
    """What ``http.client.HTTPResponse`` needs of the socket (``makefile``), bounded."""

    def __init__(self, sock: Any, deadline: CallDeadline) -> None:
        self.sock = sock
        self.deadline = deadline

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self.sock, self.deadline))


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading through ``_DeadlineReader`` inside ``call_deadline``."""

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        deadline = _current_deadline.get()
        super().__init__(
            sock if deadline is None else _DeadlineSocket(sock, deadline), *args, **kwargs
        )


class _DeadlineHTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _DeadlineHTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_DEADLINE_POOLS = {"http": _DeadlineHTTPConnectionPool, "https": _DeadlineHTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections bound each response to ``call_deadline``
    (HTTP proxies included; a SOCKS proxy's connections are left as they are)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _DEADLINE_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _DEADLINE_POOLS
        return manager


def new_session(base_url: str) -> requests.Session:
    """A session for one host, with the environment's proxy and CA settings read once,
    so ``~/.netrc`` credentials are never sent to Cronofy (``trust_env`` off), and
    ``DeadlineAdapter`` for http and https."""
    session = requests.Session()
    for scheme in ("https://", "http://"):
        session.mount(scheme, DeadlineAdapter())
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session

"""HTTP plumbing under ``client``: the session, reading a body against a
deadline and a cap, and header parsing.

Kept apart from the request loop so each reads on its own; nothing here knows
Cronofy's endpoints or what its errors mean (``errors``).
"""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from json import loads as json_loads
from typing import Any

import requests
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
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            if truncate:
                chunks.append(chunk[: len(chunk) - (size - limit)])
                return b"".join(chunks)  # the rest stays unread; the connection is dropped
            raise BodyTooLarge
        chunks.append(chunk)


def shorten_read_timeout(raw: Any, remaining: float) -> None:
    """Let no single socket read outlive the deadline (best effort: urllib3 2's
    ``HTTPResponse.connection``, an ``http.client.HTTPConnection`` with its ``sock``)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
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


def new_session(base_url: str) -> requests.Session:
    """A session for one host, with the environment's proxy and CA settings read once,
    so ``~/.netrc`` credentials are never sent to Cronofy (``trust_env`` off)."""
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session

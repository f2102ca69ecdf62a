"""A request rate limit per Cronofy application, shared through Django's cache.

Each rate (``"50/s"``, ``"500/m"``) becomes an even schedule of *slots*: a
request may start only at a slot time, one request per slot, slots
``period / limit`` seconds apart (a little more: see ``safety_margin``). A
caller claims the first free slot at or after now with ``cache.add`` (atomic
"set if absent" on every backend that supports several processes: Redis,
Memcached, the database cache), then sleeps until its slot. With Redis every
thread, process and machine claims from the same schedule; with the
local-memory cache, every thread of one process does.

This is the generic cell rate algorithm (GCRA) built on ``add`` alone, so any
window of ``period`` seconds holds at most ``limit`` requests, wherever it
starts: unlike fixed windows it never lets two full windows' worth through
around a boundary, and it paces instead of bursting, which is what a server
enforcing a sliding window expects. Several rates are claimed slowest first,
each no earlier than the slot of the previous one.

Use a cache that every process of the fleet shares (``RATE_LIMIT_CACHE``);
a ``DummyCache`` disables the limit and a per-process cache only limits each
process on its own.

**When the cache is down** (``guarded``, the one place this is decided) the
app fails *open*: the call goes ahead unpaced and a warning is logged (at most
once a minute per process). A cache outage must not become an outage of every
view, worker and the push receiver; Cronofy enforces its own limits and its
429s are retried with its ``Retry-After``. The per-user budgets
(``userlimits``) follow the same policy.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.cache import InvalidCacheBackendError, caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured, SynchronousOnlyOperation

from .conf import SETTINGS_NAME, app_settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between two warnings about the same unreachable cache.
OUTAGE_WARNING_INTERVAL = 60.0
_last_warning: dict[str, float] = {}
_warning_lock = threading.Lock()


def guarded(what: str, call: Callable[[], T], fallback: T) -> T:
    """Run a cache operation; on a cache outage, warn and return ``fallback`` (fail open).

    The app's one cache-outage policy (see the module docstring). A
    misconfigured cache (unknown alias, bad settings) is no outage: it raises.
    """
    try:
        return call()
    except (InvalidCacheBackendError, ImproperlyConfigured, SynchronousOnlyOperation):
        raise  # a mistake to fix, not an outage to ride out
    except Exception as exc:  # each backend has its own errors (redis, pymemcache, database)
        now = time.monotonic()
        with _warning_lock:
            last = _last_warning.get(what)
            due = last is None or now - last >= OUTAGE_WARNING_INTERVAL
            if due:
                _last_warning[what] = now
        if due:
            logger.warning(
                "The cache behind %s is unreachable (%s: %s); going ahead without it.",
                what,
                type(exc).__name__,
                str(exc)[:200],
            )
        return fallback


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_UNIT_SECONDS |= {"h": 3600, "hour": 3600}


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"

    @property
    def interval(self) -> float:
        """Seconds between two requests at exactly this rate."""
        return self.period / self.limit


def parse_rate(text: str) -> Rate:
    match = _RATE.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) < 1:
        raise ImproperlyConfigured(
            f"{SETTINGS_NAME}['RATE_LIMITS'] entries look like '50/s' or '500/m'; got {text!r}."
        )
    multiplier = int(match.group(2) or 1)
    return Rate(int(match.group(1)), multiplier * _UNIT_SECONDS[match.group(3)])


class _HeldConnection:
    """One connection from a redis-py pool, kept by one thread for its claims.

    Back in the pool when the thread ends (its ``threading.local`` goes, and
    this with it). A connection the server dropped (idle timeout, restart) is
    reconnected once before the error counts as an outage (``guarded``).
    """

    def __init__(self, pool: Any) -> None:
        from redis.exceptions import ConnectionError, TimeoutError

        self.dropped = (ConnectionError, TimeoutError)
        self.pool = pool
        try:
            self.connection = pool.get_connection()
        except TypeError:  # redis-py 5 wants a command name
            self.connection = pool.get_connection("SET")

    def set_many_if_absent(self, items: list[tuple[str, int]]) -> list[bool]:
        """``SET key 1 EX timeout NX`` for each item, pipelined: one round trip."""
        try:
            return self._set_many(items)
        except self.dropped:
            # Once more, on a new connection. Some may have been set: slots
            # claimed and never used, which is safe.
            return self._set_many(items)

    def _set_many(self, items: list[tuple[str, int]]) -> list[bool]:
        connection = self.connection
        try:
            commands = [("SET", key, 1, "EX", timeout, "NX") for key, timeout in items]
            connection.send_packed_command(connection.pack_commands(commands))
            return [connection.read_response() is not None for _ in items]
        except BaseException:
            # Dropped, or replies half read: the next send connects afresh.
            connection.disconnect()
            raise

    def __del__(self) -> None:
        # At interpreter shutdown the pool may be gone already.
        with contextlib.suppress(Exception):
            self.pool.release(self.connection)


class RateLimiter:
    """Blocks in ``acquire()`` until the request's slot in every rate has come."""

    key_prefix = "cronofy_conferencing:ratelimit"
    # Slots are spaced this much wider than the exact rate, so that a request
    # delayed a little more on its way than the one ``limit`` slots later (a
    # busy thread, the network) still arrives inside the limit at the server.
    safety_margin = 0.03
    max_min_sleep = 0.001  # seconds

    def __init__(
        self,
        rates: Sequence[Rate],
        cache_alias: str = "default",
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        safety_margin: float | None = None,
        budget: str = "",
    ) -> None:
        # Slowest first: its slot is the latest, and the faster rates are
        # claimed from there on, which wastes none of their slots.
        self.rates = sorted(rates, key=lambda r: r.interval, reverse=True)
        self.cache_alias = cache_alias
        #: Whose budget this is (a Cronofy application): each has its own slots.
        self.budget = budget
        self.clock = clock
        self.sleep = sleep
        margin = self.safety_margin if safety_margin is None else safety_margin
        self.intervals = [rate.interval * (1 + margin) for rate in self.rates]
        # A wait shorter than this is not slept: it is within the margin (a
        # tenth of it), and a sleep would cost a thread switch per request
        # when the rate is far from reached. Zero without a margin.
        self.min_sleep = min(
            [self.max_min_sleep] + [rate.period * margin / 10 for rate in self.rates]
        )
        # The last slot this process claimed per rate: where the search for a
        # free one starts, so threads of one process rarely try a taken slot.
        self._hints = [0] * len(self.rates)
        self._hint_lock = threading.Lock()
        self._add: Callable[[str, int], bool] | None = None

    def __repr__(self) -> str:
        rates = ", ".join(str(rate) for rate in self.rates)
        budget = f" for {self.budget}" if self.budget else ""
        return f"<RateLimiter {rates}{budget} via cache {self.cache_alias!r}>"

    @classmethod
    def from_settings(cls, budget: str = "") -> RateLimiter | None:
        """``RATE_LIMITS`` for one budget (Cronofy limits each application on its own)."""
        rates = app_settings.RATE_LIMITS or []
        if not rates:
            return None
        return cls([parse_rate(r) for r in rates], app_settings.RATE_LIMIT_CACHE, budget=budget)

    def _key(self, rate: Rate, slot: int) -> str:
        budget = f"{self.budget}:" if self.budget else ""
        return f"{self.key_prefix}:{budget}{rate.limit}:{rate.period}:{slot}"

    def _adder(self) -> Callable[[list[tuple[str, int]]], list[bool]]:
        """``cache.add(key, 1, timeout)`` for each ``(key, timeout)``, made once per limiter.

        On Django's ``RedisCache`` a ``SET key 1 EX timeout NX`` (what its
        ``add`` sends: same keys, same values) each, pipelined, on a connection
        each thread keeps from the cache's own pool (``_HeldConnection``).
        Through ``cache.add`` a claim cost about 150 us of CPU (the backend
        builds a client per call; redis-py checks a connection out of the pool
        and back in); on a held connection, about 60 us; pipelined, a fraction
        of that per key. Other backends use ``cache.add``, one key at a time.
        """
        if self._add is None:
            cache = caches[self.cache_alias]
            if isinstance(cache, RedisCache):
                pool = cache._cache.get_client(write=True).connection_pool
                make_key = cache.make_key  # our keys are short ASCII: no validation needed
                held = threading.local()

                def add(items: list[tuple[str, int]]) -> list[bool]:
                    connection = getattr(held, "connection", None)
                    if connection is None:
                        connection = held.connection = _HeldConnection(pool)
                    keys = [(make_key(key), timeout) for key, timeout in items]
                    return connection.set_many_if_absent(keys)

            else:

                def add(items: list[tuple[str, int]]) -> list[bool]:
                    cache = caches[self.cache_alias]
                    return [cache.add(key, 1, timeout=timeout) for key, timeout in items]

            self._add = add
        return self._add

    def _claim(self, index: int, not_before: list[float], now: float) -> list[float]:
        """Claim a free slot at or after each ``not_before``; returns their times, in order.

        One request per candidate slot, all in one round trip; a slot someone
        else holds is tried again further on.
        """
        add = self._adder()
        rate, interval = self.rates[index], self.intervals[index]
        with self._hint_lock:
            cursor = self._hints[index] + 1
        claimed: list[float] = []
        pending = sorted(not_before)
        while pending:
            slots = []
            for earliest in pending:
                slot = max(math.ceil(earliest / interval), cursor)
                slots.append(slot)
                cursor = slot + 1
            # A key must outlive its slot time on every clock; then nobody can
            # look for it any more (searches start at "now").
            items = [
                (self._key(rate, slot), math.ceil(max(0.0, slot * interval - now)) + 2)
                for slot in slots
            ]
            taken = []
            for earliest, slot, ok in zip(pending, slots, add(items), strict=True):
                if ok:
                    claimed.append(slot * interval)
                else:
                    taken.append(earliest)
            pending = taken
        with self._hint_lock:
            self._hints[index] = max(self._hints[index], cursor - 1)
        return sorted(claimed)

    def reserve_many(self, count: int) -> list[float]:
        """Claim ``count`` requests' slots in every rate; returns the times (``clock``)
        they may start, earliest first."""
        now = self.clock()
        times = [now] * count
        for index in range(len(self.rates)):
            times = self._claim(index, times, now)
        return times

    def reserve(self) -> float:
        """Claim a slot in every rate; returns the time (``clock``) the request may start."""
        return self.reserve_many(1)[0]

    @property
    def queries_the_database(self) -> bool:
        """Whether a claim is a query (the database cache): never on an event loop."""
        from django.core.cache.backends.db import BaseDatabaseCache

        return isinstance(caches[self.cache_alias], BaseDatabaseCache)

    def claim_times(self, count: int) -> list[float]:
        """``reserve_many``, failing open: with the cache unreachable, now for each
        (``guarded``, warned)."""
        start = self.clock()
        return guarded(
            f"the Cronofy rate limit (cache {self.cache_alias!r})",
            lambda: self.reserve_many(count),
            [start] * count,
        )

    @property
    def max_lateness(self) -> float:
        """Seconds after its slot time a request claimed ahead may still start.

        Requests that each start within ``D`` after their slots put at most
        ``limit * (1 + D / period) / (1 + margin)`` in any window of ``period``:
        within the limit while ``D`` is less than ``margin * period``. Half of
        it for the shortest period, the other half left for the network's delays.
        """
        margins = [
            (interval - rate.interval) * rate.limit
            for rate, interval in zip(self.rates, self.intervals, strict=True)
        ]
        return min(margins) / 2

    def claim(self) -> float:
        """Claim the request's slot without waiting; returns the seconds until it
        (0 with the cache unreachable: ``guarded``)."""
        return max(0.0, self.claim_times(1)[0] - self.clock())

    def acquire(self) -> float:
        """Wait for the request's slot (``claim``, then sleep); returns the seconds to it."""
        wait = self.claim()
        if wait > self.min_sleep:
            self.sleep(wait)
        return wait

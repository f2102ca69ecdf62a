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

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured

from ..conf import SETTINGS_NAME, app_settings

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
    except (InvalidCacheBackendError, ImproperlyConfigured):
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


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_UNIT_SECONDS |= {"h": 3600, "hour": 3600, "d": 86400, "day": 86400}


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


def parse_rate(text: str, setting: str = f"{SETTINGS_NAME}['RATE_LIMITS'] entries") -> Rate:
    """The app's one rate grammar: ``"50/s"``, ``"500/m"``, ``"10/5m"``, ``"12/minute"``,
    ``"1000/d"`` (what DRF's throttle rates accept too); ``setting`` names the key in errors."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) < 1:
        raise ImproperlyConfigured(f"{setting} look like '50/s' or '500/m'; got {text!r}.")
    multiplier = int(match.group(2) or 1)
    return Rate(int(match.group(1)), multiplier * _UNIT_SECONDS[match.group(3)])


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

    def _claim(self, index: int, earliest: float, now: float) -> float:
        """Claim the first free slot of rate ``index`` at or after ``earliest``; returns its time.

        A slot someone else holds (``cache.add`` refused) is tried again further on.
        """
        cache = caches[self.cache_alias]
        rate, interval = self.rates[index], self.intervals[index]
        with self._hint_lock:
            slot = max(math.ceil(earliest / interval), self._hints[index] + 1)
        # A key must outlive its slot time on every clock; then nobody can
        # look for it any more (searches start at "now").
        while not cache.add(
            self._key(rate, slot), 1, timeout=math.ceil(max(0.0, slot * interval - now)) + 2
        ):
            slot += 1
        with self._hint_lock:
            self._hints[index] = max(self._hints[index], slot)
        return slot * interval

    def reserve(self) -> float:
        """Claim a slot in every rate; returns the time (``clock``) the request may start."""
        now = self.clock()
        start = now
        for index in range(len(self.rates)):
            start = self._claim(index, start, now)
        return start

    def claim(self) -> float:
        """Claim the request's slot without waiting; returns the seconds until it
        (0 with the cache unreachable: ``guarded``)."""
        start = self.clock()
        slot = guarded(f"the Cronofy rate limit (cache {self.cache_alias!r})", self.reserve, start)
        return max(0.0, slot - self.clock())

    def acquire(self) -> float:
        """Wait for the request's slot (``claim``, then sleep); returns the seconds to it."""
        wait = self.claim()
        if wait > self.min_sleep:
            self.sleep(wait)
        return wait

    # -- what the operators see (cronofy_status, the admin's fleet page) ---------------

    #: Seconds back from now whose slots ``usage`` counts (a slot's key outlives its time
    #: by at least two seconds, see ``_claim``).
    usage_window = 1.0

    def usage(self) -> list[RateUsage]:
        """Each rate's use now, read from the shared cache (one ``get_many`` per rate):
        the share of the last ``usage_window`` seconds' slots that were taken, and how
        many slots are already claimed ahead (callers waiting, or about to).

        Fails open like the limiter (``guarded``): an unreachable cache reads as unused.
        """
        now = self.clock()
        found: list[RateUsage] = []
        for rate, interval in zip(self.rates, self.intervals, strict=True):
            current = math.floor(now / interval)
            recent = max(1, min(rate.limit, math.floor(self.usage_window / interval)))
            slots = range(current - recent + 1, current + rate.limit + 1)
            keys = {self._key(rate, slot): slot for slot in slots}
            cache = caches[self.cache_alias]
            taken = guarded(
                f"the Cronofy rate limit (cache {self.cache_alias!r})",
                lambda cache=cache, keys=keys: cache.get_many(list(keys)),
                {},
            )
            used = sum(1 for key in taken if keys[key] <= current)
            ahead = [keys[key] for key in taken if keys[key] > current]
            found.append(
                RateUsage(
                    rate=rate,
                    in_use=used / recent,
                    queued=len(ahead),
                    queued_seconds=max(0.0, max(ahead) * interval - now) if ahead else 0.0,
                )
            )
        return found


@dataclass(frozen=True)
class RateUsage:
    """One rate's use now (``RateLimiter.usage``)."""

    rate: Rate
    #: Share (0-1) of the slots of the last ``usage_window`` seconds that were taken.
    in_use: float
    #: Slots claimed after now, within one period: requests waiting for their turn.
    queued: int
    #: Seconds until the last claimed slot: how long a new request would wait, about.
    queued_seconds: float

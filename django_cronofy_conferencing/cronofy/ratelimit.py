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

**Two lanes** (issue 21). What a user started and waits for (``Lane.USER``:
linking, Sync now, the API, the page) may use every slot and claims the first
free one, ahead of time like above. Background work may use only the slots
of ``FLEET_BUDGET_SHARE`` (``fleet_slot``: four in five at 0.8, evenly spread,
so any window holds at most that share of the limit) and claims them *just in
time*: a sweep (``Lane.BACKGROUND``) takes the current slot when it is free,
else sleeps until the next fleet slot and tries again, and so never holds a
slot ahead of now. A user's call therefore waits at most one slot behind
background work, however many sweep threads and workers there are.
Push-triggered resyncs (``Lane.PUSH``) use the fleet's slots too but claim
ahead, so they go before the sweep threads waiting for a slot.

**An idle budget's slot is now.** A request may take the current slot,
whose time has just passed, and start late: when it starts within half the
safety margin of the slot (``late_allowance``), the margin keeps every window
within the limit; later than that, it also takes the slot ``limit`` slots
on, which nobody else may then use, so no window ever holds one too many.

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
from enum import StrEnum
from fractions import Fraction
from typing import TypeVar

from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured

from ..conf import SETTINGS_NAME, app_settings
from ..exceptions import BudgetExhausted

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


class Lane(StrEnum):
    """Whose call it is, and so which part of an application's budget it may use."""

    #: What a user started and waits for: every slot, the first free one.
    USER = "user"
    #: A resync a push notification asked for: the fleet's share, claimed ahead.
    PUSH = "push"
    #: Fleet sweeps and the queued fan-out: the fleet's share, just in time.
    BACKGROUND = "background"


def as_lane(value: Lane | str | None, default: Lane = Lane.USER) -> Lane:
    """A lane from a task argument or a caller (``None``: ``default``); a clear error
    for anything else."""
    if value is None:
        return default
    try:
        return Lane(value)
    except ValueError:
        choices = ", ".join(repr(lane.value) for lane in Lane)
        raise ValueError(f"Unknown rate-limit lane {value!r}: use one of {choices}.") from None


# Slot arithmetic tolerates this much floating-point error (seconds).
_EPSILON = 1e-9


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
        fleet_share: float = 1.0,
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
        #: Seconds a request may start after its slot and still need no second slot:
        #: half the margin (the other half stays for the network).
        self.late_allowance = [rate.period * margin / 2 for rate in self.rates]
        #: The share of the slots background lanes may use (``FLEET_BUDGET_SHARE``).
        self.fleet_share = Fraction(fleet_share).limit_denominator(1000)
        if not 0 < self.fleet_share <= 1:
            raise ValueError(f"fleet_share must be in (0, 1]; got {fleet_share!r}.")
        # This process's sweep threads queue for the fleet's slots here (a slot each, in
        # turn), so each wakes for its own slot instead of all of them for every slot;
        # only the shared cache decides who gets it (``_claim``). Never held across a sleep.
        self._fleet_lock = threading.Lock()
        self._fleet_next = 0

    def __repr__(self) -> str:
        rates = ", ".join(str(rate) for rate in self.rates)
        budget = f" for {self.budget}" if self.budget else ""
        share = "" if self.fleet_share == 1 else f", fleet {float(self.fleet_share):.0%}"
        return f"<RateLimiter {rates}{budget}{share} via cache {self.cache_alias!r}>"

    @classmethod
    def from_settings(cls, budget: str = "") -> RateLimiter | None:
        """``RATE_LIMITS`` for one budget (Cronofy limits each application on its own),
        with ``FLEET_BUDGET_SHARE`` for the background lanes."""
        rates = app_settings.RATE_LIMITS or []
        if not rates:
            return None
        return cls(
            [parse_rate(r) for r in rates],
            app_settings.RATE_LIMIT_CACHE,
            budget=budget,
            fleet_share=float(app_settings.FLEET_BUDGET_SHARE),
        )

    def _key(self, rate: Rate, slot: int) -> str:
        budget = f"{self.budget}:" if self.budget else ""
        return f"{self.key_prefix}:{budget}{rate.limit}:{rate.period}:{slot}"

    def fleet_slot(self, slot: int) -> bool:
        """Whether background lanes may use ``slot``: ``FLEET_BUDGET_SHARE`` of the
        slots, evenly spread (any ``n`` consecutive slots hold at most
        ``ceil(n * share)`` of them)."""
        p, q = self.fleet_share.numerator, self.fleet_share.denominator
        return (slot + 1) * p // q > slot * p // q

    def _next_fleet_slot(self, slot: int) -> int:
        while not self.fleet_slot(slot):
            slot += 1
        return slot

    def _add(self, index: int, slot: int, now: float, held: list[str]) -> bool:
        """Take ``slot`` of rate ``index`` (``cache.add``); remember its key in ``held``."""
        key = self._key(self.rates[index], slot)
        # A key must outlive its slot time on every clock; then nobody can
        # look for it any more (searches start at "now").
        timeout = math.ceil(max(0.0, slot * self.intervals[index] - now)) + 2
        if caches[self.cache_alias].add(key, 1, timeout=timeout):
            held.append(key)
            return True
        return False

    def _release(self, held: list[str]) -> None:
        if held:
            caches[self.cache_alias].delete_many(held)
            held.clear()

    def _claim(
        self, index: int, earliest: float, now: float, lane: Lane, held: list[str]
    ) -> float | None:
        """Claim a slot of rate ``index`` for a request starting at ``earliest`` or later;
        returns when it may start, or None when a just-in-time lane finds no slot now.

        The current slot (its time passed at most one interval ago) is taken late
        when it is free: at once if within ``late_allowance``, else together with the
        slot ``limit`` on. Then the next free slot (of the fleet's, for background
        lanes), unless the lane claims just in time.
        """
        interval, limit = self.intervals[index], self.rates[index].limit
        fleet = lane is not Lane.USER
        current = math.floor(earliest / interval + _EPSILON)
        lateness = max(0.0, earliest - current * interval)
        if not fleet or self.fleet_slot(current):
            mark = len(held)
            if self._add(index, current, now, held):
                if lateness <= self.late_allowance[index] + _EPSILON:
                    return max(earliest, current * interval)
                if self._add(index, current + limit, now, held):
                    return earliest
                self._release(held[mark:])
                del held[mark:]
        if lane is Lane.BACKGROUND and index == 0:
            return None  # just in time: never a slot ahead of now
        slot = current + 1
        while True:
            if fleet:
                slot = self._next_fleet_slot(slot)
            if self._add(index, slot, now, held):
                return slot * interval
            slot += 1

    def _reserve(self, lane: Lane, now: float, held: list[str]) -> float | None:
        start = now
        for index in range(len(self.rates)):
            found = self._claim(index, start, now, lane, held)
            if found is None:
                self._release(held)
                return None
            start = found
        return start

    def reserve(self, lane: Lane = Lane.USER) -> float | None:
        """Claim a slot in every rate; returns the time (``clock``) the request may start,
        or None when a just-in-time lane (``Lane.BACKGROUND``) finds none free now."""
        return self._reserve(as_lane(lane), self.clock(), [])

    def next_fleet_time(self, now: float) -> float:
        """When the next slot background lanes may use begins (the slowest rate's) that no
        other sweep thread of this process is waiting for."""
        interval = self.intervals[0]
        with self._fleet_lock:
            slot = max(self._fleet_next, math.floor(now / interval + _EPSILON) + 1)
            slot = self._next_fleet_slot(slot)
            self._fleet_next = slot + 1
        return slot * interval

    def claim(self, lane: Lane = Lane.USER) -> float | None:
        """Claim the request's slot without waiting; returns the seconds until it
        (0 with the cache unreachable: ``guarded``), or None as ``reserve``."""
        start = self.clock()
        slot = guarded(
            f"the Cronofy rate limit (cache {self.cache_alias!r})",
            lambda: self.reserve(lane),
            start,
        )
        return None if slot is None else max(0.0, slot - self.clock())

    def acquire(self, lane: Lane = Lane.USER, *, within: float | None = None) -> float:
        """Wait for the request's slot in ``lane``; returns the seconds waited.

        ``within``: the seconds the caller can wait at most (what is left of its
        deadline). When the first slot lies beyond it, ``BudgetExhausted`` is raised
        at once, holding no slot, instead of sleeping into a deadline that has passed.
        """
        lane = as_lane(lane)
        started = self.clock()
        latest = None if within is None else started + within
        what = f"the Cronofy rate limit (cache {self.cache_alias!r})"
        waited = 0.0
        while True:
            now = self.clock()
            held: list[str] = []
            slot = guarded(what, lambda now=now, held=held: self._reserve(lane, now, held), now)
            if slot is None:  # just in time: sleep until the next fleet slot, then try it
                slot = self.next_fleet_time(now)
                if latest is not None and slot > latest + _EPSILON:
                    raise self._exhausted(lane, within, slot - now)
                waited += max(0.0, slot - now)
                self.sleep(max(0.0, slot - now))
                continue
            if latest is not None and slot > latest + _EPSILON:
                guarded(what, lambda held=held: self._release(held), None)
                raise self._exhausted(lane, within, slot - now)
            wait = max(0.0, slot - self.clock())
            if wait > self.min_sleep:
                self.sleep(wait)
            return waited + wait

    def _exhausted(self, lane: Lane, within: float | None, retry_after: float) -> BudgetExhausted:
        budget = f" of {self.budget}" if self.budget else ""
        return BudgetExhausted(
            f"The Cronofy rate limit{budget} has no {lane.value} slot within the "
            f"{within:.1f}s left of this call (CRONOFY_CONFERENCING['RATE_LIMITS'], "
            f"['REQUEST_DEADLINE']): nothing was sent.",
            retry_after=retry_after,
        )

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

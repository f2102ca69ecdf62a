"""An app-wide request rate limit shared through Django's cache.

Each rate (``"50/s"``, ``"500/m"``) is a fixed window counted with
``cache.incr``: with Redis every thread, process and machine draws from the
same counters; with the local-memory cache, every thread of one process does.
A caller that finds a window full sleeps until the next one; nothing is lost.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from .conf import SETTINGS_NAME, app_settings

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_UNIT_SECONDS |= {"h": 3600, "hour": 3600}


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


def parse_rate(text: str) -> Rate:
    match = _RATE.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) < 1:
        raise ImproperlyConfigured(
            f"{SETTINGS_NAME}['RATE_LIMITS'] entries look like '50/s' or '500/m'; got {text!r}."
        )
    multiplier = int(match.group(2) or 1)
    return Rate(int(match.group(1)), multiplier * _UNIT_SECONDS[match.group(3)])


class RateLimiter:
    """Blocks in ``acquire()`` until every configured window has room."""

    key_prefix = "cronofy_conferencing:ratelimit"

    def __init__(
        self,
        rates: Sequence[Rate],
        cache_alias: str = "default",
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rates = list(rates)
        self.cache_alias = cache_alias
        self.clock = clock
        self.sleep = sleep

    @classmethod
    def from_settings(cls) -> RateLimiter | None:
        rates = app_settings.RATE_LIMITS or []
        if not rates:
            return None
        return cls([parse_rate(r) for r in rates], app_settings.RATE_LIMIT_CACHE)

    def _take(self, rate: Rate, now: float) -> float:
        """Count one request in the current window; return seconds to wait if full."""
        cache = caches[self.cache_alias]
        window = int(now // rate.period)
        key = f"{self.key_prefix}:{rate.limit}:{rate.period}:{window}"
        cache.add(key, 0, timeout=rate.period * 2 + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=rate.period * 2 + 1)
            count = 1
        if count <= rate.limit:
            return 0.0
        return (window + 1) * rate.period - now

    def acquire(self) -> float:
        """Wait for a slot in every window; returns the seconds spent waiting.

        After any wait every window is checked again, so a crowd woken at a
        minute boundary still respects the per-second rate.
        """
        waited = 0.0
        while True:
            wait = 0.0
            for rate in self.rates:
                wait = self._take(rate, self.clock())
                if wait > 0:
                    break
            if wait <= 0:
                return waited
            self.sleep(wait)
            waited += wait

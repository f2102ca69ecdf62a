"""Rate limits as a server enforces them: a strict sliding window per rate, and
the count that checks a log of arrival times against one (the HTTP server's
429s and the tests' "never more than N in any window")."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable


class SlidingWindowLimit:
    """The simulated server's own limit: at most ``limit`` requests in any ``period`` seconds.

    Strict (a log of arrival times, not fixed windows): a client pacing its
    requests correctly never sees a 429, one that bursts across a window
    boundary does. Rejected requests do not count.
    """

    def __init__(self, rates: Iterable[str], clock: Callable[[], float] = time.monotonic) -> None:
        from ..cronofy.ratelimit import parse_rate

        self.rates = [parse_rate(r) for r in rates]
        self.clock = clock
        self._logs: list[deque[float]] = [deque() for _ in self.rates]
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            for rate, log in zip(self.rates, self._logs, strict=True):
                while log and log[0] <= now - rate.period:
                    log.popleft()
                if len(log) >= rate.limit:
                    return False
            for log in self._logs:
                log.append(now)
            return True


def max_in_window(times: Iterable[float], seconds: float) -> int:
    """The most timestamps that fall in any window of ``seconds`` (half-open)."""
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best

"""One per-user budget for every call to Cronofy a user can cause.

The app-wide ``RATE_LIMITS`` keep the whole fleet under Cronofy's limits; this
keeps one user (a double click, a reload loop, a script with a session
cookie, an ``<img>`` on another site) from spending that budget for
everybody. Every user-reachable path that calls Cronofy spends from one
budget per user: the API's sync, unlink and conferencing authorization (a DRF
throttle, ``api.throttling.CronofyUserRateThrottle``), the browser's OAuth
callback, conferencing connect and return, and the packaged page's Sync now
and Unlink (``allow(user, action)``). Scope ``cronofy_sync``, rate
``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["cronofy_sync"]`` when the host sets
one (``None`` there disables it), else ``CRONOFY_CONFERENCING["API_SYNC_THROTTLE_RATE"]``
(``"12/m"``; ``None`` disables it).

Counted in the ``RATE_LIMIT_CACHE`` cache, so every process sharing it shares
the budget: a window opens with a user's first call and holds at most
``limit`` calls for ``period`` seconds. A cache outage fails open, like the
app-wide limit (``ratelimit.guarded``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import caches

from ..conf import SETTINGS_NAME, app_settings
from . import ratelimit
from .ratelimit import guarded

logger = logging.getLogger(__name__)

SCOPE = "cronofy_sync"
KEY_PREFIX = "cronofy_conferencing:user_budget"

#: The actions that spend from the budget (for logs and the docs; one budget for all).
ACTIONS = (
    "sync",
    "unlink",
    "conferencing_authorization",
    "conferencing_return",
    "oauth_callback",
    "add_provider",
)


def rate_for(action: str = "") -> str | None:
    """The budget's rate (``"12/m"``), or None when the host disabled it. One for every action."""
    from rest_framework.settings import api_settings

    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    if SCOPE in rates:
        return rates[SCOPE]
    return app_settings.API_SYNC_THROTTLE_RATE


def parse_rate(rate: str) -> tuple[int, int]:
    """``"12/m"`` -> (12, 60), in the app's one rate grammar (``ratelimit.parse_rate``)."""
    parsed = ratelimit.parse_rate(
        rate, f"{SETTINGS_NAME}['API_SYNC_THROTTLE_RATE'] (or DEFAULT_THROTTLE_RATES['{SCOPE}'])"
    )
    return parsed.limit, parsed.period


def check(ident: str, action: str = "", *, now: float | None = None) -> tuple[bool, float]:
    """Spend one call of ``ident``'s budget: (allowed, seconds until the window reopens)."""
    rate = rate_for(action)
    if rate is None:
        return True, 0.0
    limit, period = parse_rate(rate)
    now = time.time() if now is None else now
    base = f"{KEY_PREFIX}:{ident}"

    def spend() -> tuple[int, float]:
        cache = caches[app_settings.RATE_LIMIT_CACHE]
        cache.add(f"{base}:start", now, timeout=period)
        start = cache.get(f"{base}:start", now)
        # The count belongs to its window: a backend whose incr() resets the
        # expiry (database, file) cannot stretch a window past ``period``.
        count_key = f"{base}:n:{start!r}"
        cache.add(count_key, 0, timeout=period)
        try:
            return cache.incr(count_key), start
        except ValueError:  # expired between add and incr
            cache.add(count_key, 1, timeout=period)
            return 1, start

    count, start = guarded("the per-user Cronofy budget", spend, (0, now))
    wait = max(0.0, start + period - now)
    return count <= limit, wait


def allow(user: Any, action: str) -> bool:
    """Whether ``user`` may make one more Cronofy call now (``action`` names it in logs).

    Counts the call when allowed. Anonymous users have no budget (False).
    """
    if rate_for(action) is None:
        return True
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    allowed = check(ident(user), action)[0]
    if not allowed:
        logger.info("User %s is over the per-user Cronofy budget: %s refused", user.pk, action)
    return allowed


def ident(user: Any) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return "anonymous"
    return f"user:{user.pk}"

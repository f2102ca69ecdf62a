"""One per-user budget for the Cronofy calls a user can set off from a browser page.

The app-wide ``RATE_LIMITS`` protect the application's budget at Cronofy;
this one keeps a single user (a double click, a reload loop, a script with a
session cookie) from spending it. The packaged page's Cronofy calls (Sync
now, Unlink) ask ``allow(user, action)`` first; other user-reachable paths
(adding a provider, the API) can share it the same way. All actions of one
user share one budget of
``API_SYNC_THROTTLE_RATE`` (``"12/m"`` by default; ``None`` disables it),
counted in fixed windows in the ``RATE_LIMIT_CACHE`` cache, so every process
sharing that cache shares the budget.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import caches

from .conf import app_settings
from .ratelimit import parse_rate

logger = logging.getLogger(__name__)

KEY = "cronofy_conferencing:userlimit:{user}:{window}"


def allow(user, action: str) -> bool:
    """Whether ``user`` may make one more Cronofy call now (``action`` names it in logs).

    Counts the call when allowed. Anonymous users have no budget (False).
    """
    rate_text = app_settings.API_SYNC_THROTTLE_RATE
    if rate_text is None:
        return True
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    rate = parse_rate(rate_text)
    window = int(time.time() // rate.period)
    key = KEY.format(user=user.pk, window=window)
    cache = caches[app_settings.RATE_LIMIT_CACHE]
    # add() is atomic "set if absent": the first call of a window creates the counter.
    if cache.add(key, 1, timeout=rate.period + 1):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, timeout=rate.period + 1)
            count = 1
    if count > rate.limit:
        logger.info(
            "User %s is over the per-user Cronofy budget (%s): %s refused",
            user.pk,
            rate_text,
            action,
        )
        return False
    return True

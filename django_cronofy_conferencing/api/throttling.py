"""The throttle on every API action that calls Cronofy: one per-user budget, scope ``cronofy_sync``.

``POST accounts/<id>/sync/``, ``POST accounts/<id>/conferencing-authorization/``
and ``DELETE accounts/<id>/`` (unlink: a revoke at Cronofy) spend from the same
budget as the browser views (``userlimits``).
"""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle

from ..cronofy import userlimits


class CronofyUserRateThrottle(BaseThrottle):
    """Per user (or client IP), scope ``cronofy_sync``, counted by ``userlimits``.

    The rate is ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["cronofy_sync"]`` when
    the host sets one (``None`` there disables the throttle), otherwise
    ``CRONOFY_CONFERENCING["API_SYNC_THROTTLE_RATE"]``. The scope is fixed here
    rather than read from the view, so a host's own ``ScopedRateThrottle`` is
    not forced to know it. A cache outage lets the request through (logged).
    """

    scope = userlimits.SCOPE

    def __init__(self, action: str = "") -> None:
        self.action = action
        self._wait = 0.0

    def allow_request(self, request, view) -> bool:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = userlimits.ident(user)
        else:
            ident = f"ip:{self.get_ident(request)}"
        allowed, self._wait = userlimits.check(ident, self.action or getattr(view, "action", ""))
        return allowed

    def wait(self) -> float | None:
        return self._wait


#: The name this throttle had when only ``sync`` was throttled.
CronofySyncRateThrottle = CronofyUserRateThrottle

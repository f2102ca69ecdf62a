"""The throttle on ``POST accounts/<id>/sync/``: ``ScopedRateThrottle`` scope ``cronofy_sync``."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from ..conf import app_settings


class CronofySyncRateThrottle(ScopedRateThrottle):
    """Per user (or client IP), scope ``cronofy_sync``.

    The rate is ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["cronofy_sync"]`` when
    the host sets one (``None`` there disables the throttle), otherwise
    ``CRONOFY_CONFERENCING["API_SYNC_THROTTLE_RATE"]``. The scope is fixed here
    rather than read from the view, so a host's own ``ScopedRateThrottle`` is
    not forced to know it.
    """

    scope = "cronofy_sync"

    def get_rate(self) -> str | None:
        # Read the settings now (DRF binds THROTTLE_RATES at import time).
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        if self.scope in rates:
            return rates[self.scope]
        return app_settings.API_SYNC_THROTTLE_RATE

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return SimpleRateThrottle.allow_request(self, request, view)

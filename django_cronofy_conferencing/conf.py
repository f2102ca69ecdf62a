"""The app's settings: one ``CRONOFY_CONFERENCING`` dict, read through ``app_settings``.

Modelled on Django REST framework's ``settings.py``: defaults live here, the
host overrides only what it needs, and the cache is dropped on
``setting_changed`` so ``override_settings`` works in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

SETTINGS_NAME = "CRONOFY_CONFERENCING"

DEFAULTS: dict[str, Any] = {
    # OAuth application credentials (required for OAuth, refresh, revoke, push).
    "CLIENT_ID": "",
    "CLIENT_SECRET": "",
    # Secrets that are still accepted on push notifications while rotating.
    "PREVIOUS_CLIENT_SECRETS": [],
    # The three above are the application in DEFAULT_DATA_CENTER; one more per
    # further data center: {"de": {"CLIENT_ID": ..., "CLIENT_SECRET": ...}} (applications.py).
    "DEFAULT_DATA_CENTER": "us",
    "APPLICATIONS": {},
    "SCOPE": "read_account",
    # Fernet keys; the first encrypts, all decrypt. None derives one from SECRET_KEY.
    "ENCRYPTION_KEYS": None,
    # Extra or overridden data centers: {id: {"api_url": ..., "app_url": ...}}.
    "DATA_CENTERS": {},
    # HTTP behaviour.
    "CONNECT_TIMEOUT": 5,
    "REQUEST_TIMEOUT": 10,  # seconds per socket read
    # Seconds a whole Cronofy call may take, retries and waits included, however
    # slowly Cronofy sends its answer; also bounds how long a refresh holds its row lock.
    "REQUEST_DEADLINE": 30,
    # Bytes of a response body read at most; a larger body is refused unread.
    "MAX_RESPONSE_BYTES": 5 * 1024 * 1024,
    "MAX_RETRIES": 3,
    "RETRY_BACKOFF": 0.5,
    "RETRY_MAX_WAIT": 30,
    "USER_AGENT": "",
    # Refresh the access token when it expires within this many seconds.
    "TOKEN_REFRESH_MARGIN": 300,
    # Fleet sync.
    "SYNC_STALE_AFTER": 3600,
    "SYNC_CONCURRENCY": 8,
    "RATE_LIMITS": ["50/s", "500/m"],
    "RATE_LIMIT_CACHE": "default",
    # Accounts whose push channel Cronofy confirmed within this many seconds (created,
    # listed by cronofy_channels, or a signed notification) are polled only this often.
    "SYNC_CONFIRM_AFTER": 86400,
    # The share of each application's RATE_LIMITS that background work (sweeps, the
    # queued fan-out, push-triggered resyncs) may use; users' calls may use all of it.
    "FLEET_BUDGET_SHARE": 0.8,
    # Browser flow.
    # The packaged "My conferencing" page (a URL name, a path or a URL).
    "LINK_REDIRECT_URL": "cronofy_conferencing:profiles",
    "LINK_CONFLICT_MESSAGE": (
        "This Cronofy account is already linked to another user of this site."
    ),
    "STATE_MAX_AGE": 600,
    # Push notifications: absolute URL of the receiver; empty disables channels.
    "PUSH_NOTIFICATIONS_CALLBACK_URL": "",
    # Admin.
    "ADMIN_SYNC_MAX_ACCOUNTS": 10,
    # API.
    "API_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
    ],
    "API_SYNC_THROTTLE_RATE": "12/m",
    # Where syncs are queued when there is a choice (admin, API, push, cronofy_sync
    # --queue): None (inline), "celery" or "django" (Django's tasks framework).
    "TASK_QUEUE": None,
    # Push notifications: a notification-triggered resync of one account happens at
    # most once per this many seconds, whatever the notification type.
    "PUSH_RESYNC_DEBOUNCE": 10,
    # Operators (issue 23): received push notifications are kept this many days in
    # PushNotification (pruned by cronofy_sync and prune_push_notifications_task);
    # 0 keeps none.
    "PUSH_LOG_DAYS": 30,
    # The relink loop (web.attention, accounts.reminders).
    # Relink reminders: None (off), or {"DAYS": [0, 1, 3, 7]}: email the user on each of
    # those days after a conferencing profile disconnected, until it works again.
    # Optional keys: "EMAIL" (False: only the relink_reminder_due signal), "FROM_EMAIL"
    # (default DEFAULT_FROM_EMAIL), "PAGE_URL" (absolute URL of the "My conferencing"
    # page; default: PUSH_NOTIFICATIONS_CALLBACK_URL's origin and the page's path).
    "RELINK_REMINDERS": None,
    # The calendar service's name as end users see it ("Cronofy", or your own product's):
    # None says "calendar account" and "Connect your calendar" instead of a vendor's name.
    "PRODUCT_NAME": None,
}


class AppSettings:
    """Attribute access to the merged settings, with a clear error for typos."""

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = defaults or DEFAULTS
        self._cached: dict[str, Any] = {}
        self._user: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._user is None:
            value = getattr(settings, SETTINGS_NAME, None)
            if value is None:
                value = {}
            if not isinstance(value, dict):
                # Check E017 says so at startup; here a clear error instead of a traceback.
                raise ImproperlyConfigured(
                    f"{SETTINGS_NAME} must be a dict of settings, got {type(value).__name__}."
                )
            self._user = value
        return self._user

    def is_usable(self) -> bool:
        """Whether ``CRONOFY_CONFERENCING`` is a dict (or unset) that settings can be read
        from; the checks report nothing else while it is not (E017 says what is wrong)."""
        value = getattr(settings, SETTINGS_NAME, None)
        return value is None or isinstance(value, dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.defaults:
            raise AttributeError(f"Invalid {SETTINGS_NAME} setting: {name!r}")
        if name not in self._cached:
            self._cached[name] = self.user_settings.get(name, self.defaults[name])
        return self._cached[name]

    def unknown_keys(self) -> list[str]:
        return sorted(set(self.user_settings) - set(self.defaults))

    def reload(self) -> None:
        self._cached.clear()
        self._user = None


app_settings = AppSettings()

_reload_callbacks: list[Callable[[], object]] = []


def on_reload(callback: Callable[[], object]) -> Callable[[], object]:
    """Register a cache-clearing callback run whenever the settings change."""
    _reload_callbacks.append(callback)
    return callback


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTINGS_NAME, "SECRET_KEY", "CACHES"):
        app_settings.reload()
        for callback in _reload_callbacks:
            callback()


setting_changed.connect(_reload)

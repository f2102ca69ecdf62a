"""The OAuth ``state`` parameter: random, single use, bound to the session, short lived.

``issue`` stores what the callback needs (data center, redirect URI, optional
provider and next URL) in the session under a fresh random value; ``consume``
takes it out again, so a value works once, only in the session that started
the flow, for the user who started it, and for ``STATE_MAX_AGE`` seconds. The
data center the callback uses comes from here, never from the query string.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from ..conf import app_settings
from ..exceptions import InvalidState

SESSION_KEY = "_cronofy_conferencing_oauth_states"
# Several tabs may start a flow at once; beyond this the oldest is forgotten.
MAX_PENDING = 5
STATE_BYTES = 32


@dataclass(frozen=True)
class PendingAuthorization:
    state: str
    data_center: str
    redirect_uri: str
    provider_name: str = ""
    next_url: str = ""
    user_id: str = ""
    created: float = 0.0


def _now() -> float:
    return time.time()


def _max_age() -> float:
    return float(app_settings.STATE_MAX_AGE)


def _pending(session) -> dict[str, dict]:
    value = session.get(SESSION_KEY)
    return dict(value) if isinstance(value, dict) else {}


def _prune(pending: dict[str, dict], now: float) -> dict[str, dict]:
    max_age = _max_age()
    fresh = {
        key: entry
        for key, entry in pending.items()
        if isinstance(entry, dict) and 0 <= now - float(entry.get("created", 0)) <= max_age
    }
    # Keep the newest MAX_PENDING - 1 so the one about to be added fits.
    newest = sorted(fresh.items(), key=lambda item: item[1].get("created", 0), reverse=True)
    return dict(newest[: MAX_PENDING - 1])


def issue(
    request,
    *,
    data_center: str,
    redirect_uri: str,
    provider_name: str = "",
    next_url: str = "",
) -> str:
    """A new state value for this session; remembers what the callback needs."""
    now = _now()
    value = secrets.token_urlsafe(STATE_BYTES)
    pending = _prune(_pending(request.session), now)
    pending[value] = {
        "data_center": data_center,
        "redirect_uri": redirect_uri,
        "provider_name": provider_name or "",
        "next_url": next_url or "",
        "user_id": _user_id(request),
        "created": now,
    }
    request.session[SESSION_KEY] = pending
    return value


def consume(request, value: str | None) -> PendingAuthorization:
    """Take the state out of the session (single use) or raise ``InvalidState``."""
    if not value or not isinstance(value, str) or len(value) > 200:
        raise InvalidState("The request has no valid state parameter.")
    pending = _pending(request.session)
    match = None
    for key in list(pending):
        # Constant-time comparison: the value is a bearer secret for this flow.
        if hmac.compare_digest(key.encode(), value.encode()):
            match = key
    if match is None:
        raise InvalidState("The state parameter is unknown, already used or from another session.")
    entry = pending.pop(match)
    request.session[SESSION_KEY] = pending
    age = _now() - float(entry.get("created", 0))
    if not 0 <= age <= _max_age():
        raise InvalidState("The state parameter has expired.")
    if entry.get("user_id", "") != _user_id(request):
        raise InvalidState("The state parameter was issued to another user.")
    return PendingAuthorization(
        state=match,
        data_center=str(entry.get("data_center", "")),
        redirect_uri=str(entry.get("redirect_uri", "")),
        provider_name=str(entry.get("provider_name", "")),
        next_url=str(entry.get("next_url", "")),
        user_id=str(entry.get("user_id", "")),
        created=float(entry.get("created", 0)),
    )


def _user_id(request) -> str:
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return str(user.pk)


# -- the conferencing return: one sync per flow the user started ---------------

#: Seconds a conferencing flow may take (signing in to Zoom, Teams, ... included).
RETURN_MAX_AGE = 3600
_RETURN_KEY = "cronofy_conferencing:conferencing_return"


def issue_return(user, account_id: int) -> str:
    """A single-use value for the URL Cronofy sends the browser back to after a conferencing flow.

    Kept in Django's default cache, not the session: an API client may start
    the flow and a browser without its session complete it. A cache outage
    issues a value that will not be found (the return then syncs nothing).
    """
    from django.core.cache import caches

    from ..cronofy.ratelimit import guarded

    value = secrets.token_urlsafe(STATE_BYTES)
    owner = f"{getattr(user, 'pk', '')}:{account_id}"
    guarded(
        "the conferencing return values",
        lambda: caches["default"].set(f"{_RETURN_KEY}:{value}", owner, timeout=RETURN_MAX_AGE),
        None,
    )
    return value


def consume_return(user, account_id: int, value: str | None) -> bool:
    """Whether ``value`` was issued to ``user`` for ``account_id`` and not used yet (then it is).

    Single use even under concurrency: of two requests with the same value,
    only the one whose ``delete`` removed the key wins.
    """
    from django.core.cache import caches

    from ..cronofy.ratelimit import guarded

    if not value or not isinstance(value, str) or len(value) > 200 or not value.isascii():
        return False
    key = f"{_RETURN_KEY}:{value}"
    owner = f"{getattr(user, 'pk', '')}:{account_id}"

    def take() -> bool:
        cache = caches["default"]
        stored = cache.get(key)
        if not isinstance(stored, str) or not hmac.compare_digest(stored, owner):
            return False
        return bool(cache.delete(key))

    return guarded("the conferencing return values", take, False)

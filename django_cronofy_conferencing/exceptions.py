"""The error hierarchy every caller catches.

``CronofyError`` > ``CronofyAPIError`` > ``ReauthorizationRequired``,
``RateLimited``, ``CronofyUnavailable``; ``InvalidResponse`` for bodies that fail
validation. Messages are built from redacted text only.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError

from .cronofy.redaction import redact

MAX_BODY_IN_MESSAGE = 300


class CronofyError(Exception):
    """Base class of every error this app raises about Cronofy."""

    #: Set once the failure was written on its account (``last_sync_error``,
    #: ``consecutive_failures``), so whoever catches it further up counts it once.
    recorded_on_account: bool = False


class CronofyAPIError(CronofyError):
    """Cronofy answered with an error status (or could not be reached)."""

    def __init__(self, message: str, *, status_code: int | None = None, body: str = "") -> None:
        self.status_code = status_code
        self.body = redact(body)[:MAX_BODY_IN_MESSAGE]
        super().__init__(redact(message))


class ReauthorizationRequired(CronofyAPIError):
    """The account's grant is gone: the user must connect Cronofy again."""


class AccessTokenRejected(ReauthorizationRequired):
    """A 401: the access token was not recognised (refresh, then retry once)."""


class InvalidGrant(ReauthorizationRequired):
    """A 400 from the token endpoint: the code or refresh token is dead."""

    def __init__(self, message: str, *, error: str = "", **kwargs) -> None:
        self.error = error
        super().__init__(message, **kwargs)


class RateLimited(CronofyAPIError):
    """A 429 that outlived the retries."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class BudgetExhausted(RateLimited):
    """The app's own rate limit (``RATE_LIMITS``) has no slot for this call before its
    deadline (``REQUEST_DEADLINE``): nothing was sent and no slot is held.

    ``retry_after``: seconds until the first slot that was free. A ``RateLimited``, so
    the queues retry it like Cronofy's 429.
    """


class NothingDue(Exception):
    """A fleet sync found the account synced by someone else since it was selected:
    nothing to do, and no token refreshed for it."""


class CronofyUnavailable(CronofyAPIError):
    """5xx, timeouts and connection errors that outlived the retries."""


class InvalidResponse(CronofyError):
    """A body that is not what Cronofy documents; nothing is stored from it."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class InvalidField(InvalidResponse):
    """One value of a body fails validation: ``path`` (its JSON path) ``problem``.

    Raised inside ``cronofy.userinfo``, which turns it into a ``SectionProblem``
    for a section of UserInfo that stands on its own; elsewhere an
    ``InvalidResponse`` like any other.
    """

    def __init__(self, message: str, *, path: str, problem: str) -> None:
        self.path = redact(path)
        self.problem = redact(problem)
        super().__init__(message)


class TokenDecryptionError(CronofyError):
    """A stored token that none of the configured keys can decrypt."""


class CronofyValidationError(CronofyAPIError):
    """A 422: Cronofy refused the request's content.

    ``errors`` is Cronofy's ``{field: [{"key": ..., "description": ...}]}``
    (bounded and redacted), for a form to show next to its fields.
    """

    def __init__(self, message: str, *, errors: dict[str, list[dict[str, str]]], **kwargs):
        self.errors = errors
        super().__init__(message, **kwargs)


class ConferencingUnavailable(Exception):
    """A conferencing choice that cannot work now: disconnected, removed, foreign, unknown.

    ``profile`` is the account's ``ConferencingProfile`` concerned (None for an
    unknown or another account's profile, and for "integrated"), ``relink_url``
    the link that fixes it (None when relinking is not the fix).
    """

    def __init__(
        self,
        message: str,
        *,
        profile: Any = None,
        relink_url: str | None = None,
    ) -> None:
        self.profile = profile
        self.relink_url = relink_url
        super().__init__(message)


class InvalidSelection(ValueError):
    """A field value that names no account of the user, or is malformed."""


class SyncStopped(CronofyError):
    """``sync_accounts`` was interrupted before this account's query ran."""


class DatabaseConnectionLost(OperationalError):
    """``sync_accounts`` lost its database connection and could not go on: inside the
    caller's transaction (which a new connection cannot continue), or again right
    after reopening it. ``report`` is the ``SyncReport`` of what was done until then."""

    def __init__(self, message: str, *, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class InvalidState(Exception):
    """Missing, unknown (forged, reused, another session's) or expired state."""


class AccountLinkConflict(CronofyError):
    """The Cronofy account is already linked to another user; nothing was changed."""


class DeadlineExceeded(Exception):
    """The call's overall deadline passed while the body was being read."""


class BodyTooLarge(Exception):
    """The body is (or declares itself) longer than the limit."""


class NoApplication(ImproperlyConfigured, CronofyError):
    """No Cronofy application is configured for a data center (or its credentials are
    missing). Also a ``CronofyError``: an account whose data center lost its
    application fails its sync with this recorded, not with a 500 (check W004)."""


class UnknownDataCenter(ValueError):
    pass


class ConditionError(ValueError):
    """A ``cronofy_status --fail-when`` condition that cannot be read (the message says why)."""

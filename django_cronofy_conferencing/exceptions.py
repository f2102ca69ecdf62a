"""The error hierarchy every caller catches.

``CronofyError`` > ``CronofyAPIError`` > ``ReauthorizationRequired``,
``RateLimited``, ``CronofyUnavailable``; ``InvalidResponse`` for bodies that fail
validation. Messages are built from redacted text only.
"""

from __future__ import annotations

from .redaction import redact

MAX_BODY_IN_MESSAGE = 300


class CronofyError(Exception):
    """Base class of every error this app raises about Cronofy."""


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


class CronofyUnavailable(CronofyAPIError):
    """5xx, timeouts and connection errors that outlived the retries."""


class InvalidResponse(CronofyError):
    """A body that is not what Cronofy documents; nothing is stored from it."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


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

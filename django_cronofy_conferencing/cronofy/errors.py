"""Cronofy's error answers, as the exceptions in ``exceptions``.

Kept beside ``client`` (its only user): which status means what, and how much
of a body an exception may carry (redacted first, then cut).
"""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables

from ..exceptions import (
    AccessTokenRejected,
    CronofyAPIError,
    CronofyUnavailable,
    CronofyValidationError,
    InvalidGrant,
    InvalidResponse,
    RateLimited,
)
from .redaction import redact
from .transport import Answer, parse_retry_after

#: Characters of an error response body handed (redacted) to a ``CronofyAPIError``.
ERROR_BODY_LIMIT = 2000
# How much of the body is redacted before the cut: longer than any token past the limit.
_ERROR_BODY_SCAN = ERROR_BODY_LIMIT + 8192


@sensitive_variables("secrets", "body")
def error_for(
    method: str, path: str, data_center: str, response: Answer, secrets: tuple
) -> CronofyAPIError:
    """The exception for an error answer, its body redacted and bounded."""
    status = response.status_code
    # Redact, then cut: a cut first could leave the head of a secret that
    # straddles the limit unrecognised. Only a bounded prefix is scanned.
    body = redact(response.text[:_ERROR_BODY_SCAN], secrets)[:ERROR_BODY_LIMIT]
    where = f"{method} {path} ({data_center})"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(
            f"Cronofy rate limit reached on {where}.",
            status_code=status,
            body=body,
            retry_after=retry_after,
        )
    if status >= 500:
        return CronofyUnavailable(
            f"Cronofy failed with HTTP {status} on {where}.", status_code=status, body=body
        )
    if status == 401:
        return AccessTokenRejected(
            f"Cronofy rejected the access token on {where} (HTTP 401).",
            status_code=status,
            body=body,
        )
    if status == 422:
        errors = validation_errors(response, secrets)
        fields = ", ".join(sorted(errors)) or "no field named"
        return CronofyValidationError(
            f"Cronofy refused the request on {where} (HTTP 422: {fields}).",
            status_code=status,
            body=body,
            errors=errors,
        )
    error_code = oauth_error(response) if status == 400 else ""
    if error_code == "invalid_grant" and path.startswith("/oauth/"):
        # Only a dead grant means "connect again"; invalid_client is our config.
        return InvalidGrant(
            f"Cronofy refused the grant on {where}: invalid_grant.",
            status_code=status,
            body=body,
            error=error_code,
        )
    detail = f" ({error_code})" if error_code else ""
    return CronofyAPIError(
        f"Cronofy answered HTTP {status}{detail} on {where}.", status_code=status, body=body
    )


def status_retryable(status: int, idempotent: bool) -> bool:
    """A 429 is always retried (Cronofy did nothing); a 5xx only when replaying is safe."""
    return status == 429 or (idempotent and status >= 500)


# The failures no answer explains.


def deadline_error(where: str, seconds: float) -> CronofyUnavailable:
    return CronofyUnavailable(
        f"Cronofy did not answer {where} within REQUEST_DEADLINE ({seconds:g} s)."
    )


def timeout_error(where: str) -> CronofyUnavailable:
    return CronofyUnavailable(f"Cronofy timed out on {where}.")


def unreachable_error(where: str, kind: str) -> CronofyUnavailable:
    """``kind``: what went wrong, as ``requests`` names it (``ConnectionError``, ...)."""
    return CronofyUnavailable(f"Could not reach Cronofy for {where}: {kind}.")


def too_large_error(where: str, limit: int) -> InvalidResponse:
    return InvalidResponse(
        f"Invalid response to {where}: the body is larger than MAX_RESPONSE_BYTES ({limit} bytes)."
    )


def validation_errors(response: Answer, secrets: tuple) -> dict[str, list[dict[str, str]]]:
    """Cronofy's 422 body ``{"errors": {field: [{"key", "description"}]}}``, bounded."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return {}
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, dict):
        return {}
    result: dict[str, list[dict[str, str]]] = {}
    for name, problems in list(errors.items())[:50]:
        if not isinstance(name, str) or not isinstance(problems, list):
            continue
        result[redact(name[:100], secrets)] = [
            {
                "key": redact(str(p.get("key", ""))[:100], secrets),
                "description": redact(str(p.get("description", ""))[:500], secrets),
            }
            for p in problems[:10]
            if isinstance(p, dict)
        ]
    return result


def oauth_error(response: Answer) -> str:
    """The OAuth ``error`` of a 400 body (``invalid_grant``, ...), or ""."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) and error.isascii() and len(error) < 64 else ""

"""Token endpoint JSON (``POST /oauth/token``) -> a validated ``TokenSet``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..exceptions import InvalidResponse
from .userinfo import _PRINTABLE_ASCII, MAX_SCOPE, MAX_SUB, _type_name


@dataclass(frozen=True)
class TokenSet:
    """A token endpoint response. Tokens are kept out of ``repr``."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int | None
    scope: str
    sub: str = ""
    linking_profile: dict[str, Any] | None = None


@sensitive_variables("data", "access_token", "refresh_token")
def parse_token_response(data: Any, *, expect_sub: bool) -> TokenSet:
    """Validate ``POST /oauth/token``; a refresh may omit ``refresh_token`` (kept blank).

    ``expect_sub``: a code grant, which must carry a refresh token; its ``sub``
    may still be missing (blank in the result).
    """

    def fail(problem: str) -> InvalidResponse:
        return InvalidResponse(f"Invalid token response: {problem}.")

    if not isinstance(data, dict):
        raise fail(f"the body must be a JSON object, got {_type_name(data)}")
    token_type = data.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise fail("token_type must be 'bearer'")
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not _PRINTABLE_ASCII.match(access_token):
        raise fail("access_token is missing or not a token string")
    refresh_token = data.get("refresh_token")
    if refresh_token is None:
        refresh_token = ""
    elif not isinstance(refresh_token, str) or not _PRINTABLE_ASCII.match(refresh_token):
        raise fail("refresh_token is not a token string")
    expires_in = data.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 0
    ):
        raise fail("expires_in must be a non-negative integer")
    scope = data.get("scope") or ""
    if not isinstance(scope, str) or len(scope) > MAX_SCOPE:
        raise fail("scope must be a string")
    # ``sub`` is optional: Cronofy's SDK test suites answer code grants without it
    # (``linking.exchange_code`` then asks UserInfo). When present it must be an id.
    sub = data.get("sub") or ""
    if sub and (not isinstance(sub, str) or len(sub) > MAX_SUB or not _PRINTABLE_ASCII.match(sub)):
        raise fail("sub is not an id")
    if expect_sub and not refresh_token:
        raise fail("refresh_token is missing")
    linking_profile = data.get("linking_profile")
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=expires_in,
        scope=scope,
        sub=sub if isinstance(sub, str) else "",
        linking_profile=linking_profile if isinstance(linking_profile, dict) else None,
    )

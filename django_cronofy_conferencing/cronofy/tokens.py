"""Token endpoint JSON (``POST /oauth/token``) -> a validated ``TokenSet``.

As strict as UserInfo: every value the app stores or computes with is checked
(type, range, length, characters), so a hostile answer is an ``InvalidResponse``
and never an ``OverflowError``, a ``UnicodeEncodeError`` or a database error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..exceptions import InvalidResponse
from .userinfo import _PRINTABLE_ASCII, MAX_SCOPE, MAX_SUB, _type_name

#: Seconds an access token may live, at most: Cronofy's live an hour (Enterprise
#: Connect's half that). Past this an answer is not believed; far past it the
#: expiry would not even be a date (``OverflowError``).
MAX_EXPIRES_IN = 366 * 24 * 3600
#: Characters of a token, at most (Cronofy's have 32; the column is unbounded text).
MAX_TOKEN = 4096
# RFC 6749 section 3.3: scope tokens of printable ASCII but '"' and '\', separated by
# spaces. No NUL, no surrogate, no control character can get through.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*\Z")


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
    if (
        not isinstance(access_token, str)
        or len(access_token) > MAX_TOKEN
        or not _PRINTABLE_ASCII.match(access_token)
    ):
        raise fail("access_token is missing or not a token string")
    refresh_token = data.get("refresh_token")
    if refresh_token is None:
        refresh_token = ""
    elif (
        not isinstance(refresh_token, str)
        or len(refresh_token) > MAX_TOKEN
        or not _PRINTABLE_ASCII.match(refresh_token)
    ):
        raise fail("refresh_token is not a token string")
    expires_in = data.get("expires_in")
    if expires_in is not None:
        # 3600.0 is a whole number of seconds; 1e12, 2**63, NaN and 1.5 are not believed.
        if isinstance(expires_in, float) and expires_in.is_integer():
            expires_in = int(expires_in)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 0:
            raise fail("expires_in must be a non-negative integer")
        if expires_in > MAX_EXPIRES_IN:
            raise fail(f"expires_in must be at most {MAX_EXPIRES_IN} seconds")
    scope = data.get("scope")
    if scope is None or scope == "":
        scope = ""
    elif not isinstance(scope, str) or len(scope) > MAX_SCOPE:
        raise fail(f"scope must be a string of at most {MAX_SCOPE} characters")
    elif not _SCOPE.match(scope):
        raise fail("scope must be space-separated printable ASCII scope tokens")
    # ``sub`` is optional: Cronofy's SDK test suites answer code grants without it
    # (``linking.exchange_code`` then asks UserInfo). When present it must be an id.
    sub = data.get("sub")
    if sub is None or sub == "":
        sub = ""
    elif not isinstance(sub, str) or len(sub) > MAX_SUB or not _PRINTABLE_ASCII.match(sub):
        raise fail("sub is not an id")
    if expect_sub and not refresh_token:
        raise fail("refresh_token is missing")
    linking_profile = data.get("linking_profile")
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=expires_in,
        scope=scope,
        sub=sub,
        linking_profile=linking_profile if isinstance(linking_profile, dict) else None,
    )

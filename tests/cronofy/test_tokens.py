"""Token answers are validated as strictly as UserInfo (issue 20 §2.4): a hostile
``expires_in``, ``scope`` or token is an ``InvalidResponse``, never an
``OverflowError``, a ``UnicodeEncodeError`` or a database error later."""

from __future__ import annotations

import json

import pytest

from django_cronofy_conferencing.accounts.tokens import expires_at
from django_cronofy_conferencing.cronofy.tokens import (
    MAX_EXPIRES_IN,
    MAX_TOKEN,
    parse_token_response,
)
from django_cronofy_conferencing.exceptions import InvalidResponse

BASE = {
    "token_type": "bearer",
    "access_token": "at_0123456789",
    "refresh_token": "rt_0123456789",
    "expires_in": 3600,
    "scope": "read_account",
    "sub": "acc_5700a00eb0ccd07000000000",
}

#: (id, the JSON text of the answer's changed value(s), the message must contain)
HOSTILE = [
    ("expires-1e12-float", '"expires_in": 1e12', "expires_in must be at most"),
    ("expires-1e12-int", '"expires_in": 1000000000000', "expires_in must be at most"),
    ("expires-2-63", '"expires_in": 9223372036854775808', "expires_in must be at most"),
    ("expires-huge", '"expires_in": ' + "9" * 400, "expires_in must be at most"),
    ("expires-1e400", '"expires_in": 1e400', "expires_in must be a non-negative integer"),
    ("expires-nan", '"expires_in": NaN', "expires_in must be a non-negative integer"),
    ("expires-fraction", '"expires_in": 1.5', "expires_in must be a non-negative integer"),
    ("expires-negative", '"expires_in": -1', "expires_in must be a non-negative integer"),
    ("expires-string", '"expires_in": "3600"', "expires_in must be a non-negative integer"),
    ("scope-lone-surrogate", '"scope": "read\\ud800"', "scope must be space-separated"),
    ("scope-nul", '"scope": "read\\u0000account"', "scope must be space-separated"),
    ("scope-newline", '"scope": "read_account\\n"', "scope must be space-separated"),
    ("scope-tab", '"scope": "read\\taccount"', "scope must be space-separated"),
    ("scope-quote", '"scope": "read\\"account"', "scope must be space-separated"),
    ("scope-non-ascii", '"scope": "read_\\u00e9"', "scope must be space-separated"),
    ("scope-double-space", '"scope": "read  account"', "scope must be space-separated"),
    ("scope-array", '"scope": ["read_account"]', "scope must be a string"),
    ("scope-too-long", '"scope": "' + "s" * 4097 + '"', "scope must be a string of at most"),
    ("access-too-long", '"access_token": "' + "a" * (MAX_TOKEN + 1) + '"', "access_token"),
    ("refresh-too-long", '"refresh_token": "' + "r" * (MAX_TOKEN + 1) + '"', "refresh_token"),
    ("refresh-nul", '"refresh_token": "rt\\u0000"', "refresh_token"),
    ("access-surrogate", '"access_token": "at\\udfff"', "access_token"),
    ("sub-false", '"sub": false', "sub is not an id"),
    ("sub-surrogate", '"sub": "acc_\\ud800"', "sub is not an id"),
]


def answer(change: str) -> dict:
    """BASE with ``change`` (JSON text of key: value pairs) parsed the way the client does."""
    text = json.dumps(BASE)[:-1] + ", " + change + "}"
    return json.loads(text)


@pytest.mark.parametrize(
    "change, message", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
@pytest.mark.parametrize("grant", ["code", "refresh"])
def test_a_hostile_answer_is_an_invalid_response(change, message, grant):
    with pytest.raises(InvalidResponse) as excinfo:
        parse_token_response(answer(change), expect_sub=grant == "code")
    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith("Invalid token response: ")


def test_the_limits_are_inclusive_and_the_expiry_is_a_date():
    tokens = parse_token_response({**BASE, "expires_in": MAX_EXPIRES_IN}, expect_sub=True)
    assert tokens.expires_in == MAX_EXPIRES_IN
    assert expires_at(tokens).year < 9999
    long_tokens = {**BASE, "access_token": "a" * MAX_TOKEN, "refresh_token": "r" * MAX_TOKEN}
    assert parse_token_response(long_tokens, expect_sub=True).access_token == "a" * MAX_TOKEN
    assert MAX_EXPIRES_IN == 366 * 24 * 3600


@pytest.mark.parametrize("value, expected", [(3600.0, 3600), (0, 0), (1800, 1800), (None, None)])
def test_ordinary_expiries_are_read(value, expected):
    assert parse_token_response({**BASE, "expires_in": value}, expect_sub=True).expires_in == (
        expected
    )


@pytest.mark.parametrize(
    "scope",
    ["read_account", "read_events create_event delete_event", "", None, "a/b:c!#$%&'()*+,-.~"],
)
def test_ordinary_scopes_are_read(scope):
    tokens = parse_token_response({**BASE, "scope": scope}, expect_sub=True)
    assert tokens.scope == (scope or "")

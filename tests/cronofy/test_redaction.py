"""redact(): known secrets and credential-shaped pairs are masked everywhere."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_cronofy_conferencing.cronofy import redaction
from django_cronofy_conferencing.cronofy.redaction import REDACTED, redact, remember_secret
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET


def test_remembered_secrets_are_masked_anywhere():
    remember_secret("remembered-token-0001")
    assert redact("xx remembered-token-0001yy") == f"xx {REDACTED}yy"
    assert redact(ValueError("bad remembered-token-0001")) == f"bad {REDACTED}"


def test_short_values_are_not_remembered():
    remember_secret("abc")
    remember_secret("")
    remember_secret(None)
    assert redact("abc abcdef") == "abc abcdef"


def test_configured_client_secrets_are_masked(settings):
    assert redact(f"secret={DEFAULT_CLIENT_SECRET}!") == f"secret={REDACTED}!"
    assert redact(f"... {DEFAULT_CLIENT_SECRET} ...") == f"... {REDACTED} ..."
    config = {**settings.CRONOFY_CONFERENCING, "PREVIOUS_CLIENT_SECRETS": ["old-client-secret-1"]}
    with override_settings(CRONOFY_CONFERENCING=config):
        assert redact("was old-client-secret-1") == f"was {REDACTED}"


def test_extra_secrets():
    assert redact("one-off-value-9 here", ("one-off-value-9",)) == f"{REDACTED} here"
    assert redact("one-off-value-9 here") == "one-off-value-9 here"


@pytest.mark.parametrize(
    "text, hidden",
    [
        ("Authorization: Bearer abc.DEF-123_x", "abc.DEF-123_x"),
        ("bearer zzz999", "zzz999"),
        ("access_token=tok1&x=1", "tok1"),
        ("refresh_token: tok2", "tok2"),
        ('{"access_token": "tok3", "b": 1}', "tok3"),
        ("{'refresh_token': 'tok4'}", "tok4"),
        ("client_secret=shh5", "shh5"),
        ("code=authcode6&state=x", "authcode6"),
        ('{"token":"tok7"}', "tok7"),
        ("password = hunter2", "hunter2"),
        ("Authorization=Bearer tok8", "tok8"),
        ("csrf_token=tok9", "tok9"),
        ('{"id_token": "tok10"}', "tok10"),
        ("x-access-token: tok11", "tok11"),
    ],
)
def test_credential_shaped_pairs_are_masked(text, hidden):
    result = redact(text)
    assert hidden not in result
    assert REDACTED in result


@pytest.mark.parametrize(
    "text",
    [
        "status_code: 503",
        '{"status_code": 503, "error": "maintenance"}',
        "error_code=rate_limited",
        '{"token_type": "bearer"}',
        "token_count = 5",
    ],
)
def test_a_credential_name_inside_a_longer_key_is_not_a_credential(text):
    assert redact(text) == text


def test_harmless_text_is_untouched():
    text = "Cronofy answered HTTP 503 on GET /v1/userinfo (us)."
    assert redact(text) == text
    assert redact(None) == ""
    assert redact("") == ""
    assert redact(42) == "42"


def test_longest_secret_first():
    remember_secret("overlap-secret")
    remember_secret("overlap-secret-longer")
    assert redact("overlap-secret-longer") == REDACTED


def test_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(redaction, "_remembered", {})
    monkeypatch.setattr(redaction, "_MAX_REMEMBERED", 3)
    for i in range(5):
        remember_secret(f"bounded-secret-{i}")
    assert list(redaction._remembered) == [f"bounded-secret-{i}" for i in (2, 3, 4)]
    assert redact("bounded-secret-4") == REDACTED


def test_a_secret_in_use_again_is_forgotten_last(monkeypatch):
    """Least recently used goes first: a token used again (a refresh token kept for
    months, synced every hour) is not dropped while it is in flight."""
    monkeypatch.setattr(redaction, "_remembered", {})
    monkeypatch.setattr(redaction, "_MAX_REMEMBERED", 3)
    remember_secret("long-lived-refresh")
    remember_secret("access-token-1")
    remember_secret("access-token-2")
    remember_secret("long-lived-refresh")  # used again
    remember_secret("access-token-3")
    assert "long-lived-refresh" in redaction._remembered
    assert redact("echo long-lived-refresh") == f"echo {REDACTED}"
    assert "access-token-1" not in redaction._remembered


# -- survivors of tools/mutate.py (issue #10 item 10) -----------------------------------


def test_the_shortest_secret_remembered_is_six_characters():
    from django_cronofy_conferencing.cronofy.redaction import REDACTED, redact, remember_secret

    remember_secret("s6-abc")
    remember_secret("s5-ab")
    assert redact("x s6-abc y") == f"x {REDACTED} y"
    assert redact("x s5-ab y") == "x s5-ab y"


def test_configured_secrets_of_six_characters_count_and_empty_ones_never(settings):
    from django.test import override_settings

    from django_cronofy_conferencing.cronofy.redaction import REDACTED, redact

    app = {
        **settings.CRONOFY_CONFERENCING,
        "CLIENT_SECRET": "",
        "PREVIOUS_CLIENT_SECRETS": ["abc", None, "sixsix"],
    }
    with override_settings(CRONOFY_CONFERENCING=app):
        assert redact("hello abc") == "hello abc"
        assert redact("hello sixsix") == f"hello {REDACTED}"

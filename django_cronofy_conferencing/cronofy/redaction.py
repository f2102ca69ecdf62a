"""Keep tokens and the client secret out of every message, log line and stored error.

Two nets: the secrets the process knows (registered as they are used, plus the
configured client secrets) are replaced wherever they appear, and anything
shaped like a credential in a ``key=value`` or JSON pair is masked as well:
keys ending in ``token``, and ``client_secret``, ``code``, ``authorization``
and ``password`` as whole words (``status_code: 503`` is no credential).
"""

from __future__ import annotations

import re
import threading

REDACTED = "[redacted]"

_CREDENTIAL_PAIR = re.compile(
    r"""(?ix)
    (["']?\b(?:\w*token|client_secret|code|authorization|password)\b["']?
    \s*[:=]\s*["']?)
    (?:bearer\s+)?
    ([^"'&\s,}]+)
    """
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")

_remembered: dict[str, None] = {}  # least recently used first, bounded
_lock = threading.Lock()
_MAX_REMEMBERED = 10_000


def remember_secret(value: str | None) -> None:
    """Mark a token as secret so ``redact`` masks it wherever it appears.

    A value seen again moves to the back: the bound drops the tokens used
    longest ago, not one that was just sent to Cronofy.
    """
    if not value or len(value) < 6:
        return
    with _lock:
        if value in _remembered:
            del _remembered[value]
        elif len(_remembered) >= _MAX_REMEMBERED:
            _remembered.pop(next(iter(_remembered)))
        _remembered[value] = None


def _configured_secrets() -> list[str]:
    from ..conf import app_settings

    secrets = [app_settings.CLIENT_SECRET, *(app_settings.PREVIOUS_CLIENT_SECRETS or [])]
    return [s for s in secrets if isinstance(s, str) and len(s) >= 6]


def redact(text: object, extra: tuple[str | None, ...] = ()) -> str:
    """Return ``text`` as a string with every known secret masked."""
    result = "" if text is None else str(text)
    if not result:
        return result
    with _lock:
        known = list(_remembered)
    secrets = {*known, *_configured_secrets(), *(e for e in extra if e)}
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in result:
            result = result.replace(secret, REDACTED)
    result = _BEARER.sub(lambda m: m.group(1) + REDACTED, result)
    return _CREDENTIAL_PAIR.sub(
        lambda m: m.group(1) + (m.group(2) if m.group(2) == REDACTED else REDACTED), result
    )

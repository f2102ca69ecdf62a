"""System checks with stable ids; each message names the exact key to fix.

E001 CLIENT_ID missing            E002 CLIENT_SECRET missing
E003 DEFAULT_DATA_CENTER unknown  E004 ENCRYPTION_KEYS malformed
E005 DATA_CENTERS malformed       E006 RATE_LIMITS malformed
E007 a number setting is not a non-negative number
W001 token keys derived from SECRET_KEY
W002 unknown key in CRONOFY_CONFERENCING (a typo?)
"""

from __future__ import annotations

from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .conf import SETTINGS_NAME, app_settings

ID = "cronofy_conferencing.{}"

NUMBER_SETTINGS = (
    "CONNECT_TIMEOUT",
    "REQUEST_TIMEOUT",
    "MAX_RETRIES",
    "RETRY_BACKOFF",
    "RETRY_MAX_WAIT",
    "TOKEN_REFRESH_MARGIN",
    "SYNC_STALE_AFTER",
    "SYNC_CONCURRENCY",
    "STATE_MAX_AGE",
    "ADMIN_SYNC_MAX_ACCOUNTS",
)


def _key(name: str) -> str:
    return f"{SETTINGS_NAME}['{name}']"


@register(Tags.security, "cronofy_conferencing")
def check_settings(app_configs=None, **kwargs) -> list:
    from .datacenters import get_data_centers
    from .fields import configured_keys
    from .ratelimit import parse_rate

    messages: list = []
    for number, name in ((1, "CLIENT_ID"), (2, "CLIENT_SECRET")):
        value = getattr(app_settings, name)
        if not value or not isinstance(value, str):
            messages.append(
                Error(
                    f"{_key(name)} is not set.",
                    hint=f"Copy it from your Cronofy application's dashboard into {_key(name)}.",
                    id=ID.format(f"E00{number}"),
                )
            )

    try:
        registry = get_data_centers()
    except ImproperlyConfigured as exc:
        registry = {}
        messages.append(Error(str(exc), id=ID.format("E005")))
    default = app_settings.DEFAULT_DATA_CENTER
    if registry and default not in registry:
        messages.append(
            Error(
                f"{_key('DEFAULT_DATA_CENTER')} is {default!r}, which is not a known data center.",
                hint="Use one of: " + ", ".join(sorted(registry)) + ".",
                id=ID.format("E003"),
            )
        )

    try:
        configured_keys()
    except ImproperlyConfigured as exc:
        messages.append(Error(str(exc), id=ID.format("E004")))
    else:
        if app_settings.ENCRYPTION_KEYS is None:
            messages.append(
                Warning(
                    f"{_key('ENCRYPTION_KEYS')} is not set: Cronofy tokens are encrypted with a "
                    "key derived from SECRET_KEY, so changing SECRET_KEY makes them unreadable.",
                    hint="Generate a key with cryptography.fernet.Fernet.generate_key() and set "
                    f"{_key('ENCRYPTION_KEYS')} = ['<key>'].",
                    id=ID.format("W001"),
                )
            )

    rates = app_settings.RATE_LIMITS
    try:
        if not isinstance(rates, list | tuple):
            raise ImproperlyConfigured(f"{_key('RATE_LIMITS')} must be a list such as ['50/s'].")
        for rate in rates:
            parse_rate(rate)
    except ImproperlyConfigured as exc:
        messages.append(Error(str(exc), id=ID.format("E006")))

    for name in NUMBER_SETTINGS:
        value = getattr(app_settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            messages.append(
                Error(f"{_key(name)} must be a non-negative number.", id=ID.format("E007"))
            )

    for name in app_settings.unknown_keys():
        messages.append(
            Warning(
                f"{_key(name)} is not a setting of django-cronofy-conferencing.",
                hint="Check the spelling against the settings reference in the README.",
                id=ID.format("W002"),
            )
        )
    return messages

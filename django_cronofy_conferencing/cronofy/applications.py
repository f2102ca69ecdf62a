"""One Cronofy application per data center.

Cronofy's data centers are separate instances: an application (client id and
secret) exists in exactly one of them, and an account's tokens only work
there. ``CLIENT_ID`` / ``CLIENT_SECRET`` / ``PREVIOUS_CLIENT_SECRETS`` are the
application in ``DEFAULT_DATA_CENTER``; ``APPLICATIONS`` adds one per further
data center::

    "APPLICATIONS": {
        "de": {"CLIENT_ID": "...", "CLIENT_SECRET": "...", "PREVIOUS_CLIENT_SECRETS": []},
    }

Every call with client credentials asks ``get_application(data_center)``;
connect offers only ``linkable_data_centers()``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache

from django.core.exceptions import ImproperlyConfigured

from ..conf import SETTINGS_NAME, app_settings, on_reload
from ..exceptions import NoApplication
from .datacenters import DataCenter, get_data_centers

APPLICATION_KEYS = ("CLIENT_ID", "CLIENT_SECRET", "PREVIOUS_CLIENT_SECRETS")


@dataclass(frozen=True)
class Application:
    """A Cronofy application: its data center and credentials. Secrets stay out of repr."""

    data_center: str
    client_id: str
    client_secret: str = field(repr=False)
    previous_client_secrets: tuple[str, ...] = field(default=(), repr=False)
    #: Where the credentials come from, for messages: the settings key.
    setting: str = ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets a push notification may be signed with: current first; never empty."""
        return tuple(s for s in (self.client_secret, *self.previous_client_secrets) if s)

    @property
    def budget_key(self) -> str:
        """A stable, secret-free id for this application's rate-limit budget."""
        digest = hashlib.sha256(f"{self.data_center}\0{self.client_id}".encode()).hexdigest()
        return f"{self.data_center}:{digest[:16]}"

    def credentials(self) -> dict[str, str]:
        """The form fields of Cronofy's token endpoints, or ``NoApplication`` naming the key."""
        for key, value in (("CLIENT_ID", self.client_id), ("CLIENT_SECRET", self.client_secret)):
            if not value:
                raise NoApplication(
                    f"{self.setting}['{key}'] is required to talk to Cronofy's OAuth endpoints "
                    f"in data center {self.data_center!r}."
                    if self.setting != SETTINGS_NAME
                    else f"{SETTINGS_NAME}['{key}'] is required to talk to Cronofy's OAuth "
                    "endpoints."
                )
        return {"client_id": self.client_id, "client_secret": self.client_secret}


def _where(dc_id: str) -> str:
    return f"{SETTINGS_NAME}['APPLICATIONS'][{dc_id!r}]"


def _previous(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(f"{where}['PREVIOUS_CLIENT_SECRETS'] must be a list of strings.")
    if not all(isinstance(item, str) for item in value):
        raise ImproperlyConfigured(f"{where}['PREVIOUS_CLIENT_SECRETS'] must be a list of strings.")
    # Empty strings are dropped: an empty HMAC key would accept any forger's signature.
    return tuple(item for item in value if item)


def _string(entry: dict, key: str, where: str) -> str:
    value = entry.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ImproperlyConfigured(f"{where}['{key}'] must be a string.")
    return value


def configured_applications() -> dict[str, Application]:
    """Every configured application by data center id; raises ``ImproperlyConfigured``
    naming the exact key when ``APPLICATIONS`` is malformed."""
    return dict(_applications())


@cache
def _applications() -> tuple[tuple[str, Application], ...]:
    registry = get_data_centers()
    found: dict[str, Application] = {}
    default = app_settings.DEFAULT_DATA_CENTER
    client_id, client_secret = app_settings.CLIENT_ID, app_settings.CLIENT_SECRET
    if isinstance(client_id, str) and client_id and isinstance(client_secret, str):
        found[default] = Application(
            data_center=default,
            client_id=client_id,
            client_secret=client_secret,
            previous_client_secrets=_previous(
                app_settings.PREVIOUS_CLIENT_SECRETS,
                SETTINGS_NAME,
            ),
            setting=SETTINGS_NAME,
        )
    extra = app_settings.APPLICATIONS
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise ImproperlyConfigured(f"{SETTINGS_NAME}['APPLICATIONS'] must be a dict.")
    for dc_id, entry in extra.items():
        where = _where(dc_id)
        if dc_id not in registry:
            raise ImproperlyConfigured(
                f"{where}: {dc_id!r} is not a known data center (known: "
                + ", ".join(sorted(registry))
                + "; add it to DATA_CENTERS first)."
            )
        if dc_id == default and default in found:
            # CLIENT_ID / CLIENT_SECRET are the default data center's application;
            # the check (E013) reports the duplicate entry, which is ignored.
            continue
        if not isinstance(entry, dict):
            raise ImproperlyConfigured(
                f"{where} must be a dict with 'CLIENT_ID' and 'CLIENT_SECRET'."
            )
        unknown = sorted(set(entry) - set(APPLICATION_KEYS), key=str)
        if unknown:
            raise ImproperlyConfigured(
                f"{where}[{unknown[0]!r}] is not an application setting "
                f"(use {', '.join(APPLICATION_KEYS)})."
            )
        values = {key: _string(entry, key, where) for key in ("CLIENT_ID", "CLIENT_SECRET")}
        for key, value in values.items():
            if not value:
                raise ImproperlyConfigured(f"{where}['{key}'] is missing or empty.")
        found[dc_id] = Application(
            data_center=dc_id,
            client_id=values["CLIENT_ID"],
            client_secret=values["CLIENT_SECRET"],
            previous_client_secrets=_previous(entry.get("PREVIOUS_CLIENT_SECRETS"), where),
            setting=where,
        )
    return tuple(found.items())


on_reload(_applications.cache_clear)


def get_application(data_center: DataCenter | str) -> Application:
    """The application of ``data_center``, or ``NoApplication`` naming the setting to add."""
    dc_id = data_center.id if isinstance(data_center, DataCenter) else data_center
    applications = configured_applications()
    try:
        return applications[dc_id]
    except (KeyError, TypeError):
        pass
    if dc_id == app_settings.DEFAULT_DATA_CENTER:
        # The default data center's application with CLIENT_ID missing: say so.
        return Application(dc_id, "", "", setting=SETTINGS_NAME)
    raise NoApplication(
        f"No Cronofy application is configured for data center {dc_id!r}: add "
        f"{SETTINGS_NAME}['APPLICATIONS'][{dc_id!r}] = "
        "{'CLIENT_ID': ..., 'CLIENT_SECRET': ...}."
    )


def linkable_data_centers() -> dict[str, DataCenter]:
    """The data centers users may link accounts from: those with an application, in
    registry order."""
    try:
        applications = configured_applications()
    except ImproperlyConfigured:
        return {}
    return {
        dc_id: dc
        for dc_id, dc in get_data_centers().items()
        if dc_id in applications and applications[dc_id].client_id
    }

"""Cronofy's data centers, and the only way the app turns an id into a host.

Every URL the client calls comes from this registry, so a value a user submits
(``?data_center=...``) can select a data center but never name a host.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured, ValidationError

from ..conf import SETTINGS_NAME, app_settings, on_reload
from ..exceptions import UnknownDataCenter


@dataclass(frozen=True)
class DataCenter:
    id: str
    api_url: str
    app_url: str
    label: str = ""

    def api(self, path: str) -> str:
        return self.api_url + path

    def app(self, path: str) -> str:
        return self.app_url + path


BUILTIN_DATA_CENTERS: dict[str, DataCenter] = {
    dc.id: dc
    for dc in (
        DataCenter("us", "https://api.cronofy.com", "https://app.cronofy.com", "United States"),
        DataCenter(
            "uk", "https://api-uk.cronofy.com", "https://app-uk.cronofy.com", "United Kingdom"
        ),
        DataCenter("de", "https://api-de.cronofy.com", "https://app-de.cronofy.com", "Germany"),
        DataCenter("au", "https://api-au.cronofy.com", "https://app-au.cronofy.com", "Australia"),
        DataCenter("ca", "https://api-ca.cronofy.com", "https://app-ca.cronofy.com", "Canada"),
        DataCenter("sg", "https://api-sg.cronofy.com", "https://app-sg.cronofy.com", "Singapore"),
    )
}


def _clean_base_url(dc_id: str, key: str, value: object) -> str:
    where = f"{SETTINGS_NAME}['DATA_CENTERS'][{dc_id!r}][{key!r}]"
    if not isinstance(value, str):
        raise ImproperlyConfigured(f"{where} must be a URL string.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImproperlyConfigured(f"{where} must be an absolute http(s) URL, got {value!r}.")
    if parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{where} must not have a query or fragment.")
    return value.rstrip("/")


@cache
def get_data_centers() -> dict[str, DataCenter]:
    """The six built-in data centers plus those from ``DATA_CENTERS``."""
    registry = dict(BUILTIN_DATA_CENTERS)
    extra = app_settings.DATA_CENTERS
    if not isinstance(extra, dict):
        raise ImproperlyConfigured(f"{SETTINGS_NAME}['DATA_CENTERS'] must be a dict.")
    for dc_id, entry in extra.items():
        if not isinstance(dc_id, str) or not dc_id or len(dc_id) > 32:
            raise ImproperlyConfigured(
                f"{SETTINGS_NAME}['DATA_CENTERS'] keys must be ids of 1-32 characters."
            )
        if not isinstance(entry, dict):
            raise ImproperlyConfigured(
                f"{SETTINGS_NAME}['DATA_CENTERS'][{dc_id!r}] must be a dict with "
                "'api_url' and 'app_url'."
            )
        registry[dc_id] = DataCenter(
            id=dc_id,
            api_url=_clean_base_url(dc_id, "api_url", entry.get("api_url")),
            app_url=_clean_base_url(dc_id, "app_url", entry.get("app_url")),
            label=str(entry.get("label") or dc_id),
        )
    return registry


on_reload(get_data_centers.cache_clear)


def get_data_center(dc_id: object) -> DataCenter:
    try:
        return get_data_centers()[dc_id]  # type: ignore[index]
    except (KeyError, TypeError):
        raise UnknownDataCenter(f"Unknown Cronofy data center {dc_id!r}.") from None


def validate_data_center(value: str) -> None:
    """Model/form validator: the value must name a registered data center."""
    if value not in get_data_centers():
        raise ValidationError(
            "%(value)s is not a known Cronofy data center.",
            code="unknown_data_center",
            params={"value": value},
        )

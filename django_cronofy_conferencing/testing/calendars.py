"""The simulated Cronofy's calendar profiles: the entries UserInfo lists under
``cronofy.data.profiles`` (the shape of Cronofy's documented example and of
cronofy-csharp's ``GetUserInfo`` test), and the calendars events go in."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from .records import set_profile_connected

#: Integrated conferencing by calendar provider: what "integrated" generates.
INTEGRATED_CONFERENCING = {
    "google": "google_meet",
    "office365": "ms_teams",
    "exchange": "ms_teams",
    "live_connect": "ms_teams",
}


def _id(prefix: str, length: int = 10) -> str:
    return prefix + secrets.token_hex(length // 2)


def calendar(
    name: str = "Work",
    *,
    calendar_id: str | None = None,
    primary: bool = False,
    readonly: bool = False,
    deleted: bool = False,
    integrated: bool = True,
) -> dict[str, Any]:
    """A ``profile_calendars`` entry as UserInfo lists it."""
    return {
        "calendar_id": calendar_id or _id("cal_", 16),
        "calendar_name": name,
        "calendar_readonly": readonly,
        "calendar_deleted": deleted,
        "calendar_primary": primary,
        "calendar_integrated_conferencing_available": integrated,
        "calendar_attachments_available": False,
        "permission_level": "unrestricted",
    }


def calendar_profile(
    provider_name: str = "google",
    *,
    provider_service: str | None = None,
    profile_name: str = "user@example.com",
    connected: bool = True,
    profile_id: str | None = None,
    relink_url: str | None = None,
    calendars: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``cronofy.data.profiles`` entry; by default one primary calendar with integrated
    conferencing where the provider has it (Google Meet, Microsoft Teams)."""
    if calendars is None:
        calendars = [
            calendar(
                profile_name,
                primary=True,
                integrated=provider_name in INTEGRATED_CONFERENCING,
            )
        ]
    entry: dict[str, Any] = {
        "provider_name": provider_name,
        "provider_service": provider_service or provider_name,
        "profile_id": profile_id or _id("pro_"),
        "profile_name": profile_name,
        "profile_connected": connected,
        "profile_initial_sync_required": False,
        "profile_calendars": calendars,
    }
    if not connected:
        entry["profile_relink_url"] = relink_url or _relink_url(provider_name, profile_name)
    return entry


def set_calendar_profile_connected(
    account: Any, profile_id: str, connected: bool
) -> dict[str, Any]:
    for profile in account.calendar_profiles:
        if profile["profile_id"] == profile_id:
            return set_profile_connected(profile, connected, _relink_url)
    raise KeyError(profile_id)


def _relink_url(provider_name: str, profile_name: str) -> str:
    return "https://app.cronofy.com/relink/{}?{}".format(
        provider_name, urlencode({"email": profile_name})
    )


def find_calendar(account: Any, calendar_id: str):
    for profile in account.calendar_profiles:
        for entry in profile.get("profile_calendars") or []:
            if entry["calendar_id"] == calendar_id:
                return profile, entry
    return None, None

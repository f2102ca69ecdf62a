"""What passes between a transport and the simulated Cronofy, and what it keeps.

Requests and responses as plain data (``SimRequest``, ``SimResponse``), the
faults a test injects, the requests it records, and the accounts it holds:
shared by the simulator, its endpoints and every transport adapter.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

ENDPOINTS = {
    ("GET", "/v1/userinfo"): "userinfo",
    ("POST", "/oauth/token"): "token",
    ("POST", "/oauth/token/revoke"): "revoke",
    ("POST", "/v1/conferencing_service_authorizations"): "conferencing_service_authorizations",
    ("POST", "/v1/channels"): "channels",
    ("GET", "/v1/channels"): "list_channels",
}


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + secrets.token_hex(length // 2)


def new_token() -> str:
    return secrets.token_urlsafe(24)


class NoPushChannel(LookupError):
    """``notification()`` for an account that has no push channel at the simulator."""


@dataclass
class SimRequest:
    method: str
    path: str
    host: str
    headers: dict[str, str]
    body: bytes = b""
    query: str = ""

    def form(self) -> dict[str, str]:
        content_type = self.headers.get("content-type", "").lower()
        text = self.body.decode("utf-8", "replace") if self.body else ""
        if "json" in content_type:
            try:
                data = json.loads(text or "{}")
            except ValueError:
                return {}
            return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        return dict(parse_qsl(text))

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def bearer(self) -> str:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else ""


@dataclass
class SimResponse:
    status: int
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    exception: BaseException | type[BaseException] | None = None
    delay: float = 0.0

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> SimResponse:
        return cls(
            status, json.dumps(data), {"Content-Type": "application/json", **(headers or {})}
        )


@dataclass
class Fault:
    """An injected failure: a status/body, an exception, or a delay, ``times`` times."""

    endpoint: str
    status: int | None = None
    body: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    exception: BaseException | type[BaseException] | None = None
    delay: float = 0.0
    times: int | None = 1  # None: forever
    sub: str | None = None


@dataclass
class SimAccount:
    sub: str
    data_center: str
    email: str
    name: str = ""
    zoneinfo: str = "Europe/London"
    account_type: str = "account"
    scope: str = "read_account"
    conferencing_profiles: list[dict[str, Any]] = field(default_factory=list)
    calendar_profiles: list[dict[str, Any]] = field(default_factory=list)  # see calendars.py
    userinfo_body: Any = None  # an exact body to serve instead of the built one
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_in: int = 3600

    def profile(self, profile_id: str) -> dict[str, Any]:
        for profile in self.conferencing_profiles:
            if profile["profile_id"] == profile_id:
                return profile
        raise KeyError(profile_id)


@dataclass
class RecordedRequest:
    endpoint: str
    method: str
    path: str
    data_center: str | None
    sub: str | None
    status: int | None
    form: dict[str, str] = field(repr=False, default_factory=dict)
    json: Any = field(repr=False, default=None)
    #: When the simulator answered it (its ``clock``): pacing is checked at the server.
    at: float = 0.0


def endpoint_name(method: str, path: str) -> str:
    """The endpoint name of a request (``ENDPOINTS``, or a path with an id in it)."""
    found = ENDPOINTS.get((method, path))
    if found:
        return found
    if method == "DELETE" and path.startswith("/v1/channels/") and path.count("/") == 3:
        return "close_channel"
    return "unknown"


def default_relink_url(provider_name: str, profile_name: str) -> str:
    # Always https: the app refuses anything else, as it must with real Cronofy.
    return "https://app.cronofy.com/v2/relink/{}?{}".format(
        provider_name, urlencode({"email": profile_name})
    )


def set_profile_connected(
    profile: dict[str, Any], connected: bool, relink_url: Callable[[str, str], str]
) -> dict[str, Any]:
    """Flip a conferencing or calendar profile entry: a disconnected one carries
    ``relink_url(provider_name, profile_name)``, a connected one none."""
    profile["profile_connected"] = connected
    if connected:
        profile.pop("profile_relink_url", None)
    else:
        profile["profile_relink_url"] = relink_url(
            profile["provider_name"], profile["profile_name"]
        )
    return profile


def with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)

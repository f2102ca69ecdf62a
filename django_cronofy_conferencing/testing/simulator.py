"""The simulated Cronofy's state: accounts, tokens, codes, channels, faults, and the
helpers tests drive it with. Its endpoints are in ``endpoints``, the data it
exchanges with transports in ``records``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .calendars import calendar as sim_calendar
from .calendars import calendar_profile as sim_calendar_profile
from .calendars import set_calendar_profile_connected
from .endpoints import CronofyEndpoints
from .events import EventStore
from .events import generate as generate_event_conferencing
from .records import (
    ENDPOINTS,
    Fault,
    NoPushChannel,
    RecordedRequest,
    SimAccount,
    SimRequest,
    SimResponse,
    default_relink_url,
    new_id,
    new_token,
    set_profile_connected,
    with_query,
)

DEFAULT_CLIENT_ID = "sim_client_id"
DEFAULT_CLIENT_SECRET = "sim_client_secret_0123456789"


def simulated_application(data_center: str) -> dict[str, str]:
    """The simulator's Cronofy application in ``data_center`` (other than the default
    one), in the form of ``CRONOFY_CONFERENCING["APPLICATIONS"][data_center]``."""
    return {
        "CLIENT_ID": f"{DEFAULT_CLIENT_ID}_{data_center}",
        "CLIENT_SECRET": f"{DEFAULT_CLIENT_SECRET}_{data_center}",
    }


def simulated_applications(data_centers: Any) -> dict[str, dict[str, str]]:
    """``APPLICATIONS`` for the simulator's applications in ``data_centers``::

    CRONOFY_CONFERENCING["APPLICATIONS"] = simulated_applications(["uk", "de"])
    """
    return {dc: simulated_application(dc) for dc in data_centers}


__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "ENDPOINTS",
    "Fault",
    "NoPushChannel",
    "RecordedRequest",
    "SimAccount",
    "SimRequest",
    "SimResponse",
    "SimulatedCronofy",
    "simulated_application",
    "simulated_applications",
]


class SimulatedCronofy(CronofyEndpoints):
    """In-memory Cronofy: accounts, tokens, conferencing profiles and fault injection.

    Like Cronofy, each data center has its own application: ``client_id`` /
    ``client_secret`` in ``default_data_center`` (None: the host's
    ``DEFAULT_DATA_CENTER``), ``applications[dc]`` (``{"CLIENT_ID", "CLIENT_SECRET"}``)
    where given, else ``simulated_application(dc)``. Credentials of another data
    center's application are refused (``invalid_client``), as Cronofy does.
    """

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        clock: Callable[[], float] = time.time,
        refresh_returns_refresh_token: bool = True,
        applications: dict[str, dict[str, str]] | None = None,
        default_data_center: str | None = None,
        code_response_omits: frozenset[str] | set[str] = frozenset(),
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.applications = dict(applications or {})
        self.default_data_center = default_data_center
        #: Keys left out of the authorization-code token response, as in shapes seen in
        #: Cronofy's SDK test suites (e.g. {"sub", "account_id", "linking_profile"}).
        self.code_response_omits = frozenset(code_response_omits)
        self.clock = clock
        self.refresh_returns_refresh_token = refresh_returns_refresh_token
        #: Each refresh issues a new refresh token and the one sent stops working
        #: (OAuth refresh token rotation): a lost or unsaved answer kills the grant.
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.accounts: dict[str, SimAccount] = {}
        self.access_tokens: dict[str, tuple[str, float]] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.conferencing_authorizations: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.events = EventStore()
        #: The client's waits between retries under ``simulated_cronofy()`` (not slept).
        self.retry_waits: list[float] = []
        self.lock = threading.RLock()

    # -- applications -------------------------------------------------------

    def credentials_for(self, data_center: str | None) -> tuple[str, str]:
        """(client id, client secret) of the application in ``data_center``."""
        default = self.default_data_center
        if default is None:
            try:
                from ..conf import app_settings

                default = app_settings.DEFAULT_DATA_CENTER
            except Exception:  # no Django settings: a stand-alone simulator
                default = "us"
        if data_center in self.applications:
            entry = self.applications[data_center]
            return entry["CLIENT_ID"], entry["CLIENT_SECRET"]
        if data_center is None or data_center == default:
            return self.client_id, self.client_secret
        entry = simulated_application(data_center)
        return entry["CLIENT_ID"], entry["CLIENT_SECRET"]

    def _client_ok(self, form: dict[str, str], data_center: str | None) -> bool:
        client_id, client_secret = self.credentials_for(data_center)
        return hmac.compare_digest(form.get("client_id", ""), client_id) and hmac.compare_digest(
            form.get("client_secret", ""), client_secret
        )

    # -- state ------------------------------------------------------------

    @staticmethod
    def profile(
        provider_name: str = "zoom",
        *,
        profile_name: str = "user@example.com",
        connected: bool = True,
        profile_id: str | None = None,
        relink_url: str | None = None,
    ) -> dict[str, Any]:
        """A conferencing profile entry as UserInfo lists it."""
        entry: dict[str, Any] = {
            "provider_name": provider_name,
            "profile_id": profile_id or new_id("pro_", 10),
            "profile_name": profile_name,
            "profile_connected": connected,
        }
        if not connected:
            default = default_relink_url(provider_name, profile_name)
            entry["profile_relink_url"] = relink_url or default
        return entry

    #: Calendar profiles and events (``testing.calendars``, ``testing.events``).
    calendar_profile = staticmethod(sim_calendar_profile)
    calendar = staticmethod(sim_calendar)

    def set_calendar_profile_connected(
        self, sub: str, profile_id: str, connected: bool
    ) -> dict[str, Any]:
        with self.lock:
            return set_calendar_profile_connected(self.accounts[sub], profile_id, connected)

    def generate_conferencing(self, sub: str | None = None) -> None:
        """Run the pending conferencing generation now (see ``EventStore.pending_reads``)."""
        generate_event_conferencing(self, sub)

    def add_account(
        self,
        *,
        sub: str | None = None,
        data_center: str = "us",
        email: str | None = None,
        name: str = "Jane Doe",
        conferencing_profiles: list[dict[str, Any]] | None = None,
        userinfo_body: Any = None,
        expires_in: int = 3600,
        **extra: Any,
    ) -> SimAccount:
        """An account with a live grant; its tokens are on the returned object."""
        if userinfo_body is not None and sub is None and isinstance(userinfo_body, dict):
            sub = userinfo_body.get("sub")
        sub = sub or new_id("acc_")
        with self.lock:
            account = SimAccount(
                sub=sub,
                data_center=data_center,
                email=email if email is not None else f"{sub}@example.com",
                name=name,
                conferencing_profiles=list(conferencing_profiles or []),
                userinfo_body=userinfo_body,
                expires_in=expires_in,
                **extra,
            )
            self.accounts[sub] = account
            self._issue_tokens(account)
        return account

    def _issue_tokens(self, account: SimAccount, *, new_refresh: bool = True) -> None:
        account.access_token = new_token()
        self.access_tokens[account.access_token] = (account.sub, self.clock() + account.expires_in)
        if new_refresh:
            account.refresh_token = new_token()
            self.refresh_tokens[account.refresh_token] = account.sub

    def set_connected(self, sub: str, profile_id: str, connected: bool) -> dict[str, Any]:
        with self.lock:
            profile = self.accounts[sub].profile(profile_id)
            return set_profile_connected(profile, connected, default_relink_url)

    def remove_profile(self, sub: str, profile_id: str) -> None:
        with self.lock:
            account = self.accounts[sub]
            account.conferencing_profiles = [
                p for p in account.conferencing_profiles if p["profile_id"] != profile_id
            ]

    def expire_access_token(self, sub: str) -> None:
        """Make Cronofy answer 401 to the account's current access token."""
        with self.lock:
            token = self.accounts[sub].access_token
            if token in self.access_tokens:
                self.access_tokens[token] = (sub, self.clock() - 1)

    def revoke_grant(self, sub: str) -> None:
        """The user disconnected the app: every token of the account dies."""
        with self.lock:
            for store in (self.access_tokens, self.refresh_tokens):
                for token in [
                    t for t, v in store.items() if (v[0] if isinstance(v, tuple) else v) == sub
                ]:
                    del store[token]

    def fail(self, endpoint: str, **kwargs: Any) -> Fault:
        """Inject a fault on ``endpoint`` (see ``ENDPOINTS``): ``status=``, ``body=``,
        ``headers=``, ``exception=``, ``delay=``, ``times=`` (None for ever), ``sub=``."""
        fault = Fault(endpoint, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def count(self, endpoint: str | None = None, *, status: int | None = None) -> int:
        with self.lock:
            return sum(
                1
                for r in self.requests
                if (endpoint is None or r.endpoint == endpoint)
                and (status is None or r.status == status)
            )

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r.endpoint for r in self.requests)

    # -- browser-side flows (consent pages) -------------------------------

    def authorize(
        self,
        authorize_url: str,
        *,
        account: SimAccount | None = None,
        approve: bool = True,
    ) -> str:
        """Play the user on Cronofy's consent page; returns the redirect back to the app."""
        params = dict(parse_qsl(urlsplit(authorize_url).query))
        redirect_uri = params.get("redirect_uri", "")
        data_center = self._dc_for(authorize_url)
        if params.get("client_id") != self.credentials_for(data_center)[0]:
            raise ValueError(f"authorize: unknown client_id for data center {data_center!r}")
        if params.get("response_type") != "code" or not redirect_uri:
            raise ValueError("authorize: response_type=code and redirect_uri are required")
        back: dict[str, str] = {}
        if approve:
            with self.lock:
                account = account or self.add_account(data_center=data_center)
                code = new_token()
                self.codes[code] = {
                    "sub": account.sub,
                    "redirect_uri": redirect_uri,
                    "expires_at": self.clock() + 600,
                    "used": False,
                    "scope": params.get("scope", ""),
                    "data_center": account.data_center,
                }
            back["code"] = code
        else:
            back["error"] = "access_denied"
        if "state" in params:
            back["state"] = params["state"]
        return with_query(redirect_uri, back)

    def complete_conferencing_authorization(
        self,
        url: str,
        *,
        approve: bool = True,
        provider_name: str | None = None,
        profile_name: str = "user@example.com",
    ) -> str:
        """Play the user linking a conferencing provider; returns the redirect back."""
        auth_id = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        with self.lock:
            pending = self.conferencing_authorizations[auth_id]
            if not approve:
                return with_query(pending["redirect_uri"], {"error": "access_denied"})
            profile = self.profile(
                provider_name or pending["provider_name"] or "zoom", profile_name=profile_name
            )
            self.accounts[pending["sub"]].conferencing_profiles.append(profile)
        return with_query(
            pending["redirect_uri"], {"last_linked_profile_id": profile["profile_id"]}
        )

    def notification(
        self, sub: str, notification_type: str = "profile_disconnected", **fields: Any
    ) -> tuple[bytes, dict[str, str]]:
        """A push notification body for the account's channel and its headers, signed
        with the secret of the account's data center's application."""
        with self.lock:
            account = self.accounts.get(sub)
            found = [(cid, c) for cid, c in self.channels.items() if c["sub"] == sub]
            if account is None or not found:
                known = "" if account is not None else " (and the simulator has no such account)"
                raise NoPushChannel(
                    f"Simulated Cronofy account {sub!r} has no push channel{known}. A channel "
                    "is made when the app links the account with "
                    "CRONOFY_CONFERENCING['PUSH_NOTIFICATIONS_CALLBACK_URL'] set "
                    "(linking.link_account), or by linking.ensure_push_channel(account)."
                )
            channel_id, channel = found[-1]
            body = json.dumps(
                {
                    "notification": {"type": notification_type, **fields},
                    "channel": {
                        "channel_id": channel_id,
                        "callback_url": channel["callback_url"],
                        "filters": {},
                    },
                }
            ).encode()
        secret = self.credentials_for(account.data_center)[1]
        return body, {"Cronofy-HMAC-SHA256": self.sign(body, secret)}

    def sign(self, body: bytes, secret: str | None = None) -> str:
        digest = hmac.new((secret or self.client_secret).encode(), body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def close_channel(self, channel_id: str) -> None:
        """Cronofy forgot the channel (closed, or expired): it is no longer listed."""
        with self.lock:
            self.channels.pop(channel_id, None)
